"""Seeding a new volume from its image (`cp -a`, possibly a lot of data) runs in a worker with a
pending reply: other clients keep getting answers meanwhile (was: the copy ran on tcrd's event
loop, and every client waited for it).

tcrd runs with a `cp` shim first in its PATH that blocks on a FIFO until the test lets it go, so
"the copy is in progress" lasts exactly as long as the test wants, without timing.
"""

import contextlib
import json
import os
import subprocess

import pytest

from test.fixtures.daemon import managed_tcrd
from test.fixtures.process import wait_for
from test.root.hw_image import build_hw

pytestmark = pytest.mark.root

IMG = "hwbox"


@pytest.fixture
def gated(tmp_path, monkeypatch):
    """(tcrd, release(ok)): tcrd's `cp` waits until release() is called; ok=False makes it fail."""
    shim = tmp_path / "shim"
    shim.mkdir()
    fifo = tmp_path / "gate"
    os.mkfifo(fifo)
    started = tmp_path / "cp-started"
    (shim / "cp").write_text(
        "#!/bin/sh\n"
        f"touch {started}\n"
        f"read verdict < {fifo}\n"
        '[ "$verdict" = ok ] || { echo "cp: cannot copy: the test said no" >&2; exit 1; }\n'
        'exec /bin/cp "$@"\n')
    (shim / "cp").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}:{os.environ.get('PATH', '/usr/bin:/bin')}")

    def open_gate():
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: the shim has touched its mark but not opened the FIFO yet
            return None

    def release(ok: bool = True) -> None:
        fd = wait_for(open_gate, 30, "the cp shim to wait on its FIFO")
        try:
            os.write(fd, b"ok\n" if ok else b"no\n")
        finally:
            os.close(fd)
        started.unlink()

    with managed_tcrd(prefix="tcrd-seed") as d:
        r = d.cli("image", "load", build_hw(str(tmp_path)))
        assert r.returncode == 0, r.stderr
        d.cp_started = started
        yield d, release
        for cid in d.cli("ps", "-aq", "--no-trunc").stdout.split():
            d.cli("rm", "-f", "-v", cid)
        for v in d.cli("volume", "ls", "-q").stdout.split():
            d.cli("volume", "rm", v)


def _run_bg(d, *args):
    return subprocess.Popen(d.cli_argv(*args), env=d.cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def _finish(proc):
    try:
        return proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def seeding(gated, *args):
    """A request that seeds a volume, run in the background and held at the copy: yields (proc,
    let_go); let_go(ok) releases the copy and returns the client's (stdout, stderr). On any way
    out of the body the copy is released and the client reaped."""
    d, release = gated
    proc = _run_bg(d, *args)
    released = False

    def let_go(ok: bool = True):
        nonlocal released
        release(ok)
        released = True
        return _finish(proc)

    try:
        wait_for(d.cp_started.exists, 30, "the seed copy to start")
        yield proc, let_go
    finally:
        if not released:
            if d.cp_started.exists():
                release(True)
            _finish(proc)


def test_other_clients_are_answered_while_a_volume_is_seeded(gated):
    d, _ = gated
    assert d.cli("volume", "create", "data1").returncode == 0
    with seeding(gated, "run", "-d", "--name", "seeded", "--network", "none", "-v", "data1:/seed", IMG,
                 "sleep", "60") as (proc, let_go):
        # The copy is in progress: tcrd answers everyone else (timeout: the old loop was stuck).
        r = d.cli("ps", "-a", "--format", "{{.Names}}", timeout=10)
        assert r.returncode == 0, r.stderr
        assert "seeded" in r.stdout.split()  # created, waiting for its volume
        assert d.cli("volume", "ls", "-q", timeout=10).stdout.split() == ["data1"]
        assert proc.poll() is None  # the run's reply waits for the copy
        out, err = let_go(True)
    assert proc.returncode == 0, err
    r = d.cli("exec", "seeded", "cat", "/seed/hello.txt", "/seed/sub/deep.txt")
    assert r.stdout.split() == ["from", "the", "image", "deep"], r.stderr
    info = json.loads(d.cli("volume", "inspect", "data1").stdout)[0]
    assert os.stat(info["Mountpoint"]).st_uid == 1000  # cp -a kept the image's owner
    assert not os.path.exists(os.path.join(os.path.dirname(info["Mountpoint"]), "_seed.tmp"))


def test_a_failed_seed_is_one_line_and_leaves_the_volume_empty(gated):
    d, _ = gated
    with seeding(gated, "run", "--rm", "--network", "none", "-v", "data2:/seed", IMG,
                 "true") as (proc, let_go):
        out, err = let_go(False)
    assert proc.returncode == 125, (out, err)
    assert len(err.strip().splitlines()) == 1 and "volume data2: cannot seed it" in err, err
    assert d.cli("ps", "-aq").stdout == ""  # --rm: no phantom container
    info = json.loads(d.cli("volume", "inspect", "data2").stdout)[0]
    assert os.listdir(info["Mountpoint"]) == []
    assert not os.path.exists(os.path.join(os.path.dirname(info["Mountpoint"]), "_seed.tmp"))
    # The next start seeds it.
    with seeding(gated, "run", "--rm", "--network", "none", "-v", "data2:/seed", IMG, "cat",
                 "/seed/hello.txt") as (proc, let_go):
        out, err = let_go(True)
    assert proc.returncode == 0 and out == "from the image\n", err


@pytest.mark.parametrize("verb", ["start", "restart"])
def test_start_and_restart_of_a_created_container_seed_in_a_worker(gated, verb):
    d, _ = gated
    r = d.cli("create", "--name", "later", "--network", "none", "-v", "data3:/seed", IMG, "sleep", "60")
    assert r.returncode == 0, r.stderr
    with seeding(gated, verb, "later") as (proc, let_go):
        assert d.cli("ps", "-a", timeout=10).returncode == 0  # answered while the copy runs
        assert proc.poll() is None
        out, err = let_go(True)
    assert proc.returncode == 0, err
    r = d.cli("exec", "later", "cat", "/seed/hello.txt")
    assert r.stdout == "from the image\n", r.stderr
