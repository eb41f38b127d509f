"""Foreground containers belong to tcrd (issue 13 §1, §2): the client only attaches.

Each test here failed on the code where the client exec'd crun itself.
"""

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

from test.fixtures.process import wait_for
from test.root.test_containers import cli, d, inspect  # noqa: F401  (fixture)

pytestmark = pytest.mark.root

NONE = ("--network", "none")


def popen(d, *args, **kw):  # noqa: F811
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(d.cli_argv(*args), env=d.cli_env(), **kw)


def state(d, name):  # noqa: F811
    return inspect(d, name)["state"]


def read_until(fd, marker: bytes, timeout: float = 20.0) -> bytes:
    buf = b""
    end = time.monotonic() + timeout
    while marker not in buf:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {marker!r} in {buf!r}")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"EOF before {marker!r}: {buf!r}")
            buf += chunk
    return buf


def test_foreground_run_is_supervised_logged_and_restartable(d):  # noqa: F811
    r = d.cli("run", "--name", "fg", *NONE, "busybox", "sh", "-c", "echo out; echo err >&2; exit 4")
    assert (r.returncode, r.stdout, r.stderr) == (4, "out\n", "err\n")
    assert "Exited (4)" in cli(d, "ps", "-a").stdout
    assert cli(d, "wait", "fg").stdout.strip() == "4"
    assert inspect(d, "fg")["exitCode"] == 4
    logs = cli(d, "logs", "fg")
    assert (logs.stdout, logs.stderr) == ("out\n", "err\n")  # stdout and stderr kept apart
    # start works on any stopped container; start -a attaches and gives the exit code
    cli(d, "start", "fg")
    assert cli(d, "wait", "fg").stdout.strip() == "4"
    r = d.cli("start", "-a", "fg")
    assert (r.returncode, r.stdout, r.stderr) == (4, "out\n", "err\n")
    assert cli(d, "logs", "fg").stdout == "out\n" * 3


def test_killed_client_leaves_the_container_running_and_rm_removes_it_later(d):  # noqa: F811
    p = popen(d, "run", "--rm", "--name", "orphan", *NONE, "busybox", "sh", "-c",
              "echo started; sleep 3; echo finished")
    try:
        assert b"started" in read_until(p.stdout.fileno(), b"started")
        p.kill()
        p.wait(10)
        time.sleep(0.3)
        assert state(d, "orphan") == "running"
        wait_for(lambda: d.cli("ps", "-aq").stdout.strip() == "", what="--rm to remove it", timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_signals_to_the_client_are_forwarded(d):  # noqa: F811
    p = popen(d, "run", "--rm", *NONE, "busybox", "sh", "-c",
              "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done")
    try:
        read_until(p.stdout.fileno(), b"ready")
        p.send_signal(signal.SIGTERM)
        out, _err = p.communicate(timeout=20)
        assert p.returncode == 7 and b"got-term" in out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_restart_without_detach(d):  # noqa: F811
    r = d.cli("run", "--name", "rs", "--restart", "on-failure:2", *NONE, "busybox", "sh", "-c", "exit 3")
    assert r.returncode == 3, r.stderr
    wait_for(lambda: inspect(d, "rs")["restartCount"] == 2 and state(d, "rs") == "exited",
             what="two restarts", timeout=20)
    assert inspect(d, "rs")["exitCode"] == 3


def test_crun_start_errors_exit_125(d):  # noqa: F811
    r = d.cli("run", "--rm", *NONE, "-w", "/etc/passwd", "busybox", "true")
    assert r.returncode == 125 and "Not a directory" in r.stderr


def test_stdin_only_with_i(d):  # noqa: F811
    argv = " ".join(f"'{a}'" for a in d.cli_argv("run", "--rm", *NONE, "busybox", "true"))
    # tcr must not swallow the loop's stdin: both lines come through
    r = subprocess.run(["sh", "-c", f"printf 'a\\nb\\n' | while read x; do {argv}; echo \"$x\"; done"],
                       env=d.cli_env(), capture_output=True, text=True, timeout=60)
    assert r.stdout == "a\nb\n", r.stderr
    r = d.cli("run", "--rm", "-i", *NONE, "busybox", "cat", input="hello\nworld\n")
    assert (r.returncode, r.stdout) == (0, "hello\nworld\n")
    r = d.cli("run", "--rm", *NONE, "busybox", "cat", input="not for the container\n")
    assert (r.returncode, r.stdout) == (0, "")


def test_detached_tty_and_create_it_then_start(d):  # noqa: F811
    cli(d, "run", "-dit", "--name", "dit", *NONE, "busybox", "sh")
    cli(d, "run", "-dt", "--name", "dt", *NONE, "busybox", "sh", "-c", "tty; sleep 30")
    cli(d, "create", "-it", "--name", "cit", *NONE, "busybox", "sh")
    cli(d, "start", "cit")
    for name in ("dit", "dt", "cit"):
        assert state(d, name) == "running", d.log()
    wait_for(lambda: "/dev/pts/" in d.cli("logs", "dt").stdout, what="the tty name in the log")
    assert cli(d, "exec", "dit", "echo", "hi").stdout == "hi\n"


def test_di_keeps_stdin_for_attach_and_detach_keys_leave_it_running(d):  # noqa: F811
    cli(d, "run", "-di", "--name", "cat", *NONE, "busybox", "cat")
    for keys, seq in ((None, b"\x10\x11"), ("ctrl-a,d", b"\x01d")):
        args = ["attach"] + (["--detach-keys", keys] if keys else []) + ["cat"]
        p = popen(d, *args, stdin=subprocess.PIPE)
        try:
            p.stdin.write(b"hello\n")
            p.stdin.flush()
            read_until(p.stdout.fileno(), b"hello")
            p.stdin.write(seq)
            p.stdin.flush()
            assert p.wait(20) == 0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert state(d, "cat") == "running"
    assert cli(d, "logs", "cat").stdout == "hello\nhello\n"
    r = d.cli("attach", "nosuch")
    assert r.returncode != 0 and "no such container" in r.stderr


def _set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def test_run_it_gets_the_window_size_at_start_and_on_sigwinch(d):  # noqa: F811
    master, slave = pty.openpty()
    _set_size(slave, 33, 101)
    p = subprocess.Popen(d.cli_argv("run", "-it", "--rm", *NONE, "busybox", "sh", "-c",
                                    "stty size; trap 'stty size' WINCH; echo ready; "
                                    "while true; do sleep 0.1; done"),
                         env=d.cli_env(), stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    try:
        out = read_until(master, b"ready")
        assert b"33 101" in out, out
        _set_size(master, 40, 120)
        p.send_signal(signal.SIGWINCH)
        assert b"40 120" in read_until(master, b"40 120")
        os.write(master, b"\x03")  # ^C in raw mode goes to the container's terminal
        assert p.wait(20) == 130
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)


def test_ps_json_and_inspect_show_the_code_of_a_foreground_run(d):  # noqa: F811
    assert d.cli("run", "--name", "code", *NONE, "busybox", "sh", "-c", "exit 42").returncode == 42
    items = json.loads(cli(d, "ps", "-a", "--format", "json").stdout)
    assert [i["ExitCode"] for i in items if i["Names"] == "code"] == [42]


def test_a_client_without_the_attach_channel_still_gets_execargs(d):  # noqa: F811
    """The C client's contract (compat socket): a foreground run answers execArgs, unchanged."""
    import socket as _socket

    helper = subprocess.Popen(["sleep", "1"])  # stands for the C client's process (params.pid)
    try:
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        s.connect(d.socket)
        req = {"id": 1, "method": "run", "params": {"args": ["--rm", *NONE, "busybox", "true"], "pwd": "/",
                                                    "pid": helper.pid}}
        s.send(json.dumps(req).encode())
        reply = json.loads(s.recv(1 << 20))
        s.close()
        args = reply["result"]["execArgs"]
        assert "crun" in args[0] and "run" in args
    finally:
        helper.wait()
    # the client "went away" without running crun: tcrd cleans up after the pid it watched
    wait_for(lambda: d.cli("ps", "-aq").stdout.strip() == "", what="the compat run to be cleaned up")


def test_a_foreground_container_killed_from_outside_gives_137(d):  # noqa: F811
    p = popen(d, "run", "--name", "victim", *NONE, "busybox", "sh", "-c", "echo ready; sleep 60")
    try:
        read_until(p.stdout.fileno(), b"ready")
        cli(d, "kill", "victim")
        assert p.wait(20) == 137
        assert inspect(d, "victim")["exitCode"] == 137
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_run_i_stdin_ends_when_the_client_goes_away(d):  # noqa: F811
    """docker's StdinOnce: `run -i` without a tty; the container sees EOF once its client is gone."""
    p = popen(d, "run", "-i", "--name", "once", *NONE, "busybox", "sh", "-c",
              "echo ready; cat; echo stdin-closed", stdin=subprocess.PIPE)
    try:
        read_until(p.stdout.fileno(), b"ready")
        p.kill()
        p.wait(10)
        wait_for(lambda: "stdin-closed" in d.cli("logs", "once").stdout, what="EOF on the container's stdin")
        wait_for(lambda: inspect(d, "once")["state"] == "exited", what="the container to exit")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_a_client_that_stops_reading_costs_tcrd_bounded_memory(d):  # noqa: F811
    """`tcr run IMG yes` whose stdout nobody reads: tcrd stops reading the container (it blocks on
    its pipe) instead of buffering; when the client goes, the container goes on into its log."""
    with open(f"/proc/{d.pid}/clear_refs", "w") as f:
        f.write("5")
    with open(f"/proc/{d.pid}/status") as f:
        start = next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:"))
    p = popen(d, "run", "--name", "flood", *NONE, "--log-opt", "max-size=1m", "busybox", "yes")
    try:
        wait_for(lambda: d.cli("ps", "-q", "--no-trunc").stdout.strip() != "", what="the container")
        time.sleep(3)  # nobody reads p.stdout: the socket and tcrd's outbox fill up, then it waits
        with open(f"/proc/{d.pid}/status") as f:
            peak = next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:"))
        assert (peak - start) * 1024 < 16 * 1024 * 1024, f"tcrd grew by {peak - start} KiB"
        assert state(d, "flood") == "running"
    finally:
        p.kill()
        p.wait()
    wait_for(lambda: len(d.cli("logs", "-n", "1", "flood").stdout) > 0, what="the log to go on")
    assert state(d, "flood") == "running"
    cli(d, "rm", "-f", "flood")


def test_a_foreground_containers_pid_is_its_init(d):  # noqa: F811
    """stats/top/inspect need the container's init, not the crun that tcrd runs it under."""
    p = popen(d, "run", "--name", "pid", *NONE, "busybox", "sh", "-c", "echo ready; exec sleep 60")
    try:
        read_until(p.stdout.fileno(), b"ready")

        def init_is_sleep():
            pid = inspect(d, "pid")["pid"]
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    return f.read().startswith(b"sleep\0")
            except OSError:
                return False

        wait_for(init_is_sleep, what="inspect's pid to be the container's init")
        cli(d, "kill", "pid")
        assert p.wait(20) == 137
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
