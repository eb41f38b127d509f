"""Limits and signals (issue 11 section 4): the fd limit, stray signals, the pidfile, failed runs,
names matched whole, loop devices running out.
"""

import errno
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from test.fixtures.process import wait_for
from test.root.test_containers_image import build

pytestmark = pytest.mark.root


def ok(d, *args, timeout=60):
    r = d.cli(*args, timeout=timeout)
    assert r.returncode == 0, f"tcr {args}: rc={r.returncode}\n{r.stdout}\n{r.stderr}\n{d.log()}"
    return r.stdout


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def d(tcrd, tmp_path):
    r = tcrd.cli("image", "load", build(str(tmp_path)))
    assert r.returncode == 0, r.stderr
    return tcrd


# ---- the fd limit ---------------------------------------------------------------------------------


def test_fd_limit_pauses_listening_and_exits_are_still_handled(d):
    ok(d, "run", "-d", "--name", "short", "--restart", "on-failure:1", "--network", "none", "busybox",
       "sh", "-c", "sleep 1; exit 3")
    # Soft limit 64; the hard limit stays, so crun can still give a restarted container its own.
    subprocess.run(["prlimit", "--pid", str(d.pid), "--nofile=64:"], check=True)
    clients = []
    try:
        for _ in range(100):  # idle clients: connected, never sending
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.setblocking(False)
            try:
                s.connect(d.socket)
            except (BlockingIOError, OSError) as exc:
                if getattr(exc, "errno", None) not in (errno.EAGAIN, errno.EINPROGRESS, None):
                    s.close()
                    raise
            clients.append(s)
        log0 = os.path.getsize(d.logfile)
        cpu0 = cpu_seconds(d.pid)
        time.sleep(6)  # "short" exits twice in this window: once restarted, then for good
        cpu = cpu_seconds(d.pid) - cpu0
        grown = os.path.getsize(d.logfile) - log0
        flood_end = time.time()
    finally:
        for s in clients:
            s.close()
    assert cpu < 0.6, f"tcrd used {cpu:.2f} s of CPU in 6 s at the fd limit (accept spin?)"
    assert grown < 64 * 1024, f"tcrd's log grew {grown} bytes in 6 s at the fd limit"
    # Listening resumed: answers again, and the exits that happened meanwhile were acted on.
    info = json.loads(ok(d, "inspect", "short", timeout=30))[0]
    assert info["state"] == "exited" and info["exitCode"] == 3 and info["restartCount"] == 1, info
    assert info["finishedAt"] < flood_end
    assert "Traceback" not in d.log()


# ---- signals and the pidfile ----------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM])
def test_stray_signals_do_not_kill_tcrd(tcrd, sig):
    os.kill(tcrd.pid, sig)
    time.sleep(0.5)  # give a default disposition the chance to kill it
    assert tcrd.running(), f"tcrd died of {sig.name}:\n{tcrd.log()}"
    assert tcrd.cli("ps").returncode == 0
    assert os.path.exists(tcrd.socket) and os.path.exists(tcrd.pidfile)
    wait_for(lambda: sig.name in tcrd.log(), timeout=10, what=f"a log line about {sig.name}")


def test_signals_are_not_ignored_in_containers(d):
    # tcrd's handlers must not become SIG_IGN inherited by crun and the container's processes.
    out = ok(d, "run", "--rm", "--network", "none", "busybox", "grep", "SigIgn", "/proc/self/status")
    mask = int(out.split()[1], 16)
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGPIPE):
        assert not mask & (1 << (sig - 1)), f"{sig.name} is ignored in the container: {out}"


def test_stale_pidfile_is_removed_even_when_start_fails(tcrd):
    tcrd.stop()
    with open(tcrd.pidfile, "w") as f:
        f.write("999999\n")  # a crash left it behind
    good_socket = tcrd.socket
    blocker = os.path.join(tcrd.base, "not-a-dir")
    with open(blocker, "w") as f:
        f.write("x")
    tcrd.socket = os.path.join(blocker, "tcrd.sock")  # listening fails after recovery
    try:
        with pytest.raises(RuntimeError):
            tcrd.start()
    finally:
        tcrd.socket = good_socket
    assert not os.path.exists(tcrd.pidfile), "a stale pidfile naming a dead pid survived the start"
    with open(tcrd.pidfile, "w") as f:
        f.write("999999\n")
    tcrd.start()
    with open(tcrd.pidfile) as f:
        assert f.read().strip() == str(tcrd.pid)


# ---- failed runs leave no phantom -----------------------------------------------------------------


@pytest.mark.parametrize("rm", [False, True])
def test_failed_run_crun_error_leaves_no_phantom_created(d, rm):
    args = ["run", "-d", *(["--rm"] if rm else []), "--name", "broken", "--network", "none",
            "-w", "/etc/passwd", "busybox", "true"]  # crun: chdir into a file fails
    r = d.cli(*args)
    assert r.returncode != 0
    ps = json.loads(ok(d, "ps", "-a", "--format", "json"))
    mine = [c for c in ps if c["Names"] == "broken"]
    if rm:
        assert mine == []
    else:  # docker keeps a container that failed to start, as exited with its error, never "Created"
        assert len(mine) == 1 and mine[0]["State"] == "exited", mine
        ok(d, "rm", "broken")
    ok(d, "run", "-d", "--rm", "--name", "broken", "--network", "none", "busybox", "true")


# ---- loop devices ---------------------------------------------------------------------------------


def test_no_free_loop_device_is_said_plainly(tmp_path, monkeypatch):
    from tcr.common.errors import TcrError
    from tcr.kernel import loopdev

    backing = tmp_path / "img"
    backing.write_bytes(b"\0" * 4096)
    real = loopdev.fcntl.ioctl

    def ioctl(fd, req, *args):
        if req == loopdev.LOOP_CTL_GET_FREE:  # what the kernel says at max_loop
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, req, *args)

    monkeypatch.setattr(loopdev.fcntl, "ioctl", ioctl)
    with pytest.raises(TcrError) as e:
        loopdev.attach(str(backing))
    assert e.value.render() == "no free loop device; load fewer images or raise max_loop"
    assert loopdev.find_by_backing(str(backing)) == []


# ---- names are matched whole; bad input is echoed short -------------------------------------------


@pytest.mark.parametrize("args", [
    ("run", "-d", "--name", "web\n", "--network", "none", "busybox", "true"),
    ("create", "--name", "web\n", "--network", "none", "busybox", "true"),
    ("run", "-d", "--hostname", "host\n", "--network", "none", "busybox", "true"),
    ("run", "-d", "--network", "net\n", "busybox", "true"),
    ("network", "create", "net\n"),
])
def test_names_ending_in_a_newline_are_refused(d, args):
    r = d.cli(*args)
    assert r.returncode != 0, f"accepted {args!r}: {r.stdout}"
    assert "invalid" in r.stderr, r.stderr
    assert ok(d, "ps", "-aq") == ""
    assert [n for n in ok(d, "network", "ls", "-q").split() if n.startswith("net")] == []


def test_state_keys_are_matched_whole(tmp_path):
    from tcr.common.errors import InvalidArgument
    from tcr.daemon.state import StateStore

    st = StateStore(str(tmp_path))
    with pytest.raises(InvalidArgument):
        st.path("containers", "abc\n")
    with pytest.raises(InvalidArgument):
        st.path("containers\n", "abc")
    os.makedirs(tmp_path / "containers")
    with open(tmp_path / "containers" / "abc\n.json", "w") as f:
        f.write('{"version": 1, "kind": "containers", "data": {}}')
    records, errors = st.load_all("containers")
    assert records == {} and len(errors) == 1


LONG = "A" * 5000 + "!"


@pytest.mark.parametrize("args", [
    ("run", "-d", "--name", LONG, "busybox", "true"),
    ("run", "-d", "--hostname", LONG, "busybox", "true"),
    ("run", "-d", "--network", LONG, "busybox", "true"),
    ("network", "create", LONG),
    ("network", "rm", LONG),
    ("rm", LONG),
    ("stop", LONG),
    ("inspect", LONG),
    ("logs", LONG),
    ("run", "--restart", LONG, "busybox", "true"),
    ("run", "-e", "=" + LONG, "busybox", "true"),
    ("run", "--user", LONG, "busybox", "true"),
    ("image", "rm", LONG),
    ("container", LONG),
    (LONG,),
])
def test_invalid_input_is_echoed_at_most_64_characters(d, args):
    r = d.cli(*args)
    assert r.returncode != 0
    assert r.stderr.strip(), r
    what = [a[:20] for a in args]
    assert "A" * 65 not in r.stderr, f"{what} echoed too much: {r.stderr[:300]!r}"
    assert len(r.stderr) < 400, (what, r.stderr[:400])
