"""EventLoop: readers, timers, signals and process watches with real fds and real processes."""

import os
import select
import signal
import socket
import subprocess
import sys

import pytest

from tcr.daemon.loop import EventLoop, _zombie_children

PY = sys.executable


@pytest.fixture(params=[True, False], ids=["pidfd", "sigchld"])
def loop(request):
    lp = EventLoop(use_pidfd=request.param)
    # A watchdog so a broken loop fails the test instead of hanging it.
    lp.call_later(30, lambda: (lp.stop(), pytest.fail("event loop watchdog fired")))
    yield lp
    lp.close()


@pytest.fixture
def plain_loop():
    lp = EventLoop()
    lp.call_later(30, lambda: (lp.stop(), pytest.fail("event loop watchdog fired")))
    yield lp
    lp.close()


def test_call_soon_runs_in_order(plain_loop):
    seen = []
    plain_loop.call_soon(lambda: seen.append(1))
    plain_loop.call_soon(lambda: seen.append(2))
    plain_loop.call_soon(plain_loop.stop)
    plain_loop.run()
    assert seen == [1, 2]


def test_timers_fire_in_deadline_order_and_cancel_works(plain_loop):
    seen = []
    plain_loop.call_later(0.03, lambda: seen.append("c"))
    plain_loop.call_later(0.01, lambda: seen.append("a"))
    h = plain_loop.call_later(0.02, lambda: seen.append("cancelled"))
    plain_loop.call_later(0.02, lambda: seen.append("b"))
    plain_loop.call_later(0.04, plain_loop.stop)
    h.cancel()
    plain_loop.run()
    assert seen == ["a", "b", "c"]


def test_callback_exception_does_not_kill_the_loop(plain_loop):
    seen = []
    plain_loop.call_soon(lambda: 1 / 0)
    plain_loop.call_soon(lambda: seen.append("alive"))
    plain_loop.call_soon(plain_loop.stop)
    plain_loop.run()
    assert seen == ["alive"]


def test_reader_fires_when_data_arrives_and_can_be_removed(plain_loop):
    a, b = socket.socketpair()
    got = []

    def on_read():
        got.append(a.recv(100))
        plain_loop.remove_reader(a.fileno())
        plain_loop.stop()

    plain_loop.add_reader(a.fileno(), on_read)
    plain_loop.call_later(0.01, lambda: b.send(b"ping"))
    plain_loop.run()
    assert got == [b"ping"]
    a.close()
    b.close()


def test_signal_handler_runs_from_the_loop(plain_loop):
    seen = []
    plain_loop.add_signal_handler(signal.SIGUSR1, lambda: (seen.append("usr1"), plain_loop.stop()))
    plain_loop.call_soon(lambda: os.kill(os.getpid(), signal.SIGUSR1))
    plain_loop.run()
    assert seen == ["usr1"]


def test_close_restores_signal_handlers():
    before = signal.getsignal(signal.SIGUSR2)
    lp = EventLoop()
    lp.add_signal_handler(signal.SIGUSR2, lambda: None)
    assert signal.getsignal(signal.SIGUSR2) is not before
    lp.close()
    assert signal.getsignal(signal.SIGUSR2) is before




def _watch(loop, pid):
    results = []

    def done(code):
        results.append(code)
        loop.stop()

    loop.watch_process(pid, done)
    loop.run()
    return results


def test_watch_child_exit_code(loop):
    p = subprocess.Popen([PY, "-c", "import sys; sys.exit(3)"])
    assert _watch(loop, p.pid) == [3]
    p.returncode = 3  # reaped by the loop; keep Popen from waiting again


def test_watch_child_killed_by_signal(loop):
    p = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"])
    loop.call_soon(lambda: os.kill(p.pid, signal.SIGKILL))
    assert _watch(loop, p.pid) == [128 + signal.SIGKILL]
    p.returncode = -9


def test_watch_non_child_reports_none(plain_loop):
    # The child starts a grandchild and exits: the grandchild is not ours to reap.
    code = "import subprocess as s; print(s.Popen(['sleep', '60'], stdout=s.DEVNULL, stderr=s.DEVNULL).pid)"
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True)
    gpid = int(out.stdout)
    plain_loop.call_soon(lambda: os.kill(gpid, signal.SIGKILL))
    assert _watch(plain_loop, gpid) == [None]


def test_watch_of_a_gone_process_reports_none(plain_loop):
    p = subprocess.Popen([PY, "-c", "pass"])
    p.wait()
    assert _watch(plain_loop, p.pid) == [None]


def test_cancelled_watch_never_fires(loop):
    p = subprocess.Popen([PY, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    fired = []
    w = loop.watch_process(p.pid, fired.append)
    w.cancel()
    p.stdin.close()
    p.wait()
    loop.call_later(0.05, loop.stop)
    loop.run()
    assert fired == []


def test_reap_orphans_reaps_unwatched_zombies(plain_loop):
    pid = os.posix_spawn(PY, [PY, "-c", "pass"], dict(os.environ))
    fd = os.pidfd_open(pid)
    select.select([fd], [], [], 10)  # exited, still a zombie (nobody waited)
    os.close(fd)
    assert pid in _zombie_children()
    plain_loop.reap_orphans(True)
    plain_loop.call_soon(plain_loop.stop)
    plain_loop.run()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_reap_orphans_leaves_watched_children_to_their_watch(plain_loop):
    p = subprocess.Popen([PY, "-c", "import sys; sys.exit(7)"])
    plain_loop.reap_orphans(True)
    assert _watch(plain_loop, p.pid) == [7]
    p.returncode = 7


def test_writer_fires_when_writable_alongside_a_reader(plain_loop):
    """add_writer (non-blocking sends of the attach channel) shares the fd with a reader."""
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        got = []
        plain_loop.add_reader(a.fileno(), lambda: got.append(("r", a.recv(10))))
        plain_loop.add_writer(a.fileno(), lambda: got.append("w"))
        plain_loop.run_once(0.5)
        assert got == ["w"]
        plain_loop.remove_writer(a.fileno())
        b.send(b"x")
        plain_loop.run_once(0.5)
        assert got == ["w", ("r", b"x")]
        plain_loop.remove_reader(a.fileno())
        plain_loop.remove_reader(a.fileno())  # idempotent
        plain_loop.remove_writer(a.fileno())
    finally:
        a.close()
        b.close()


def test_on_idle_runs_once_per_burst_of_work_before_blocking(plain_loop):
    """tcrd trims its heap here: once after work, never again while the loop just sleeps."""
    r, w = os.pipe()
    try:
        calls = []
        got = []
        plain_loop.on_idle = lambda: calls.append(len(got))
        plain_loop.add_reader(r, lambda: got.append(os.read(r, 10)))
        plain_loop.run_once(timeout=0)  # start-up counts as work, but a zero wait never blocks
        assert calls == []
        plain_loop.run_once(timeout=0.001)  # about to block: the start-up's burst ends here
        assert calls == [0]
        plain_loop.run_once(timeout=0.001)
        plain_loop.run_once(timeout=0.001)  # slept twice, did nothing: not called again
        assert calls == [0]
        os.write(w, b"x")
        plain_loop.run_once(timeout=0.001)  # the reader runs after the wait
        assert got == [b"x"] and calls == [0]
        plain_loop.run_once(timeout=0.001)  # the next block after that work
        assert calls == [0, 1]
        plain_loop.call_soon(lambda: got.append(b"soon"))
        plain_loop.run_once(timeout=0.001)  # a ready callback is work too
        assert calls == [0, 1, 2]
    finally:
        plain_loop.remove_reader(r)
        os.close(r)
        os.close(w)


def test_on_idle_waits_while_callbacks_are_ready(plain_loop):
    calls = []
    plain_loop.on_idle = lambda: calls.append(1)
    plain_loop.call_soon(lambda: plain_loop.call_soon(lambda: None))  # ready work chains on
    plain_loop.run_once(timeout=0.001)
    assert calls == []  # more was ready: the loop did not block, so no idle call
    plain_loop.run_once(timeout=0.001)
    plain_loop.run_once(timeout=0.001)
    assert calls == [1]
