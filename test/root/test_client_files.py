"""Files a client names (--env-file, --config) can neither stall nor bloat tcrd (issue 11 section 3).

A FIFO used to freeze the whole daemon (open() blocks the one thread), /dev/zero grew it to 1.3 GB.
Now each is refused in one line, at once, while other clients keep getting answers.
"""

import os
import subprocess
import sys

import pytest

from test.fixtures.daemon import _env

pytestmark = pytest.mark.root


def _hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


RAW = """
import sys
from tcr.rpc import client
s = client.connect(sys.argv[1])
try:
    r = client.call(s, "run", sys.argv[2:])
    print("result", r)
except client.RpcError as e:
    sys.stderr.write(e.message + "\\n")
    sys.exit(1)
"""


def raw_run(tcrd, *args: str, **kw) -> subprocess.Popen:
    """`run ARGS` sent to tcrd as is: the tcr CLI reads --env-file itself (client side), so this
    is what another client (a script, the C client) makes tcrd read."""
    return subprocess.Popen([sys.executable, "-c", RAW, tcrd.socket, *args], env=_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def _unblock(fifo: str) -> None:
    """Give a reader blocked on the FIFO (old code) its EOF, so the daemon can be torn down."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    except OSError:
        pass


@pytest.mark.parametrize("flag", ["--env-file", "--config"])
def test_fifo_is_refused_and_others_keep_answers(tcrd, tmp_path, flag):
    fifo = str(tmp_path / "pipe")
    os.mkfifo(fifo)
    p = raw_run(tcrd, flag, fifo, "busybox", "true")
    try:
        ps = tcrd.cli("ps", "-a", timeout=15)  # answered while the other request is (was) stuck
        assert ps.returncode == 0, ps.stderr
        out, err = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        _unblock(fifo)
        p.kill()
        p.communicate()
        pytest.fail(f"{flag} naming a FIFO stalled tcrd")
    assert p.returncode != 0
    assert "not a regular file" in err and "cannot read" in err, err
    assert len(err.strip().splitlines()) <= 2


@pytest.mark.parametrize("flag", ["--env-file", "--config"])
def test_dev_zero_and_huge_files_are_refused_without_growing_tcrd(tcrd, tmp_path, flag):
    huge = str(tmp_path / "huge")
    with open(huge, "wb") as f:
        f.truncate(3 * 1024 ** 3)  # sparse: 3 GiB of zeros that take no disk space
    before = _hwm_kib(tcrd.pid)
    for path, why in (("/dev/zero", "not a regular file"), (huge, "too large")):
        p = raw_run(tcrd, flag, path, "busybox", "true")
        try:
            _out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            pytest.fail(f"{flag} {path} stalled tcrd")
        assert p.returncode != 0 and why in err, err
    grown = _hwm_kib(tcrd.pid) - before
    assert grown < 16 * 1024, f"tcrd's peak RSS grew by {grown} KiB"
    assert tcrd.cli("ps", "-a").returncode == 0
