"""Idle costs nothing: with containers running on the default network and no client, tcrd sleeps
in epoll_wait with no timeout (no periodic timer armed, nothing polled) and runs one thread.

Not a timed assertion: /proc/PID/syscall shows the system call tcrd is blocked in and its
arguments; epoll_wait's timeout argument is -1 exactly when the loop's timer heap is empty
(tcr.daemon.loop). The wake-up count over 60 s is measured by bench/bench_memory.py."""

import os
import subprocess
import sys

import pytest

from test.fixtures.daemon import _env
from test.fixtures.process import wait_for
from test.root.test_containers_image import build

pytestmark = pytest.mark.root

# (machine, syscall number) of the epoll waits whose 4th argument is the timeout in ms
EPOLL_WAIT = {("x86_64", 232), ("x86_64", 281), ("aarch64", 22), ("armv7l", 252), ("armv7l", 346),
              ("riscv64", 22)}


def blocked_in(pid: int):
    """(syscall number, args) of the call tcrd is blocked in, or None while it is running."""
    with open(f"/proc/{pid}/syscall") as f:
        parts = f.read().split()
    if not parts or parts[0] in ("running", "-1"):
        return None
    return int(parts[0]), [int(x, 16) for x in parts[1:7]]


def idle_wait(pid: int):
    """Wait (bounded) until tcrd blocks in an epoll wait; return its timeout argument."""
    machine = os.uname().machine
    seen = {}

    def sleeping():
        got = blocked_in(pid)
        if got and (machine, got[0]) in EPOLL_WAIT:
            seen["args"] = got[1]
            return True
        return False

    wait_for(sleeping, what="tcrd blocked in epoll_wait")
    timeout = seen["args"][3] & 0xFFFFFFFF  # an int: -1 arrives as 0xffffffff or sign-extended
    return -1 if timeout == 0xFFFFFFFF else timeout


def tcrd_cli_argv(tcrd):
    return [sys.executable, "-m", "tcr.cli.main", "--socket", tcrd.socket]


def test_idle_daemon_arms_no_timer_with_containers_running(tcrd, tmp_path):
    if os.uname().machine not in {m for m, _n in EPOLL_WAIT}:
        pytest.skip("epoll_wait syscall numbers not known for this architecture")
    img = build(str(tmp_path))
    assert tcrd.cli("image", "load", img).returncode == 0
    names = [f"idle-{i}" for i in range(3)]
    try:
        for n in names:  # default network: bridge, nft, DNS forwarder sockets on the loop
            r = tcrd.cli("run", "-d", "--name", n, "busybox", "sleep", "600")
            assert r.returncode == 0, r.stderr
        # a DNS lookup from a container goes through the forwarder's sockets on the loop
        tcrd.cli("exec", names[0], "nslookup", names[1])
        assert idle_wait(tcrd.pid) == -1, "an idle tcrd has a timer armed (periodic work?)"
        assert os.listdir(f"/proc/{tcrd.pid}/task") == [str(tcrd.pid)], "tcrd runs extra threads"
        assert tcrd.cli("ps").returncode == 0  # a request in between changes nothing
        assert idle_wait(tcrd.pid) == -1
        # The probe sees an armed timer: `stop -t 30` of a container whose PID 1 ignores SIGTERM
        # (busybox sleep) arms the SIGKILL timer for 30 s.
        stopper = subprocess.Popen([*tcrd_cli_argv(tcrd), "stop", "-t", "30", names[2]], env=_env(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: 0 < idle_wait(tcrd.pid) <= 30000, what="the stop timer in epoll_wait")
        finally:
            stopper.kill()
            stopper.wait()
    finally:
        tcrd.cli("rm", "-f", *names)
