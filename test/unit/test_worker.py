"""tcr.daemon.worker: real forked children driven by a real event loop (pidfd and SIGCHLD modes)."""

import os
import resource
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from tcr.commands.base import Output
from tcr.common.errors import ImageNotFound, InternalError, TcrError
from tcr.daemon import worker
from tcr.daemon.loop import EventLoop
from tcr.kernel import pidfd

TARGET = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "target")


@pytest.fixture(params=[True, False], ids=["pidfd", "sigchld"])
def loop(request):
    lp = EventLoop(use_pidfd=request.param)
    lp.call_later(60, lambda: (lp.stop(), pytest.fail("event loop watchdog fired")))
    yield lp
    lp.close()


def run_job(loop, fn, args=(), **kw):
    """spawn() and run the loop until on_done fired; returns the result (value or TcrError)."""
    got = []

    def done(r):
        got.append(r)
        loop.stop()

    job = worker.spawn(loop, fn, args, what=kw.pop("what", "test job"), on_done=done, **kw)
    loop.run()
    assert len(got) == 1
    assert not pidfd.pid_alive(job.pid) or _is_zombie(job.pid) is False
    assert worker.running() == 0
    return got[0]


def _is_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


# ---- functions the children run -------------------------------------------------------------

def add(a, b):
    return {"sum": a + b, "pid": os.getpid()}


def raise_not_found():
    raise ImageNotFound("no such image: foo", hint="see tcr image ls")


def divide_by_zero():
    return 1 / 0


def kill_self():
    os.kill(os.getpid(), signal.SIGKILL)


def exit_silently():
    os._exit(3)


def write_garbage_and_exit():
    for n in os.listdir("/proc/self/fd"):
        if int(n) > 2:
            try:
                os.write(int(n), b"{not json")
            except OSError:
                pass
    os._exit(0)


def not_json_able():
    return {1, 2}


def open_fds():
    """fd -> what it is, without the directory fd the listing itself used."""
    out = {}
    for n in os.listdir("/proc/self/fd"):
        try:
            out[int(n)] = os.readlink(f"/proc/self/fd/{n}")
        except OSError:
            pass
    return {fd: what for fd, what in out.items() if not what.endswith("/fd")}


def big(n):
    return "x" * n


def sleep_long():
    time.sleep(60)


def child_signal_state():
    return {"wakeup": signal.set_wakeup_fd(-1),
            "term_default": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL}


def import_and_allocate():
    import colorsys  # noqa: F401 - a module the parent never imports
    blob = bytearray(64 * 1024 * 1024)
    return len(blob)


# ---- results and errors ---------------------------------------------------------------------

def test_result_comes_back_from_a_real_child(loop):
    r = run_job(loop, add, (2, 3))
    assert r["sum"] == 5
    assert r["pid"] != os.getpid()


def test_tcr_error_keeps_its_class_code_and_hint(loop):
    r = run_job(loop, raise_not_found)
    assert isinstance(r, ImageNotFound)
    assert r.code == ImageNotFound.code
    assert r.message == "no such image: foo" and r.hint == "see tcr image ls"


def test_unexpected_exception_is_one_line_internal_error(loop):
    r = run_job(loop, divide_by_zero, what="image verify")
    assert isinstance(r, InternalError)
    assert str(r) == "image verify: internal error in worker: ZeroDivisionError: division by zero"


def test_killed_child_is_a_clear_error(loop):
    r = run_job(loop, kill_self, what="image load")
    assert isinstance(r, InternalError)
    assert str(r) == "image load: worker process killed by signal 9 (SIGKILL)"
    assert "out of memory" in (r.hint or "")


def test_child_exiting_without_reply_is_a_clear_error(loop):
    r = run_job(loop, exit_silently, what="job")
    assert str(r) == "job: worker process exited with code 3 and no reply"


def test_bad_output_is_a_clear_error(loop):
    r = run_job(loop, write_garbage_and_exit, what="job")
    assert isinstance(r, TcrError)
    assert str(r) == "job: worker process sent a bad reply (not JSON)"


def test_result_that_is_not_json_is_reported(loop):
    r = run_job(loop, not_json_able, what="job")
    assert isinstance(r, InternalError)
    assert "TypeError" in str(r) and "\n" not in str(r)


def test_reply_larger_than_the_pipe_buffer(loop):
    r = run_job(loop, big, (1_000_000,))
    assert r == "x" * 1_000_000


def test_reply_over_the_cap_is_refused(loop, monkeypatch):
    monkeypatch.setattr(worker, "MAX_REPLY", 100_000)
    r = run_job(loop, big, (300_000,), what="job")
    assert str(r) == "job: worker process sent a reply larger than 100000 bytes"


def test_timeout_kills_the_child(loop):
    r = run_job(loop, sleep_long, what="job", timeout=0.2)
    assert str(r) == "job: took too long; worker process killed"


# ---- isolation from the daemon ----------------------------------------------------------------

def test_child_holds_only_stdio_and_its_pipe(loop):
    a, b = socket.socketpair()  # stands for the daemon's lock, listening and client sockets
    try:
        fds = {int(k): v for k, v in run_job(loop, open_fds).items()}
        assert a.fileno() not in fds and b.fileno() not in fds
        extra = [what for fd, what in fds.items() if fd > 2]
        assert len(extra) == 1 and extra[0].startswith("pipe:")  # the reply pipe only
        kept = [int(k) for k in run_job(loop, open_fds, keep_fds=(a.fileno(),))]
        assert a.fileno() in kept and b.fileno() not in kept
    finally:
        a.close()
        b.close()


def test_child_does_not_share_the_daemons_signal_wakeup(loop):
    seen = []
    loop.add_signal_handler(signal.SIGTERM, lambda: seen.append("TERM"))
    r = run_job(loop, child_signal_state)
    assert r == {"wakeup": -1, "term_default": True}
    assert seen == []


def test_child_memory_and_imports_stay_in_the_child(loop):
    assert "colorsys" not in sys.modules
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert run_job(loop, import_and_allocate) == 64 * 1024 * 1024
    assert "colorsys" not in sys.modules
    # The parent's peak RSS did not take the child's 64 MB.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 32 * 1024


def test_cancel_kills_and_reaps_without_callback(loop):
    got = []
    job = worker.spawn(loop, sleep_long, what="job", on_done=got.append)
    loop.call_later(0.05, job.cancel)
    loop.call_later(0.3, loop.stop)
    loop.run()
    while job.pid in worker._jobs:  # the exit arrives through the loop
        loop.run_once(1.0)
    assert got == []
    assert not pidfd.pid_alive(job.pid)


def test_too_many_jobs_is_refused_before_forking(loop, monkeypatch):
    monkeypatch.setattr(worker, "MAX_JOBS", 1)
    job = worker.spawn(loop, sleep_long, what="first", on_done=lambda r: None)
    try:
        with pytest.raises(TcrError, match="1 background jobs are already running"):
            worker.spawn(loop, add, (1, 2), what="second", on_done=lambda r: None)
    finally:
        job.cancel()
        while job.pid in worker._jobs:
            loop.run_once(1.0)


def test_worker_dies_with_its_parent(tmp_path):
    """PDEATHSIG: a daemon killed with SIGKILL does not leave a worker behind (holding its lock)."""
    script = textwrap.dedent("""
        import os, sys, time
        from tcr.daemon import worker
        from tcr.daemon.loop import EventLoop
        lp = EventLoop()
        job = worker.spawn(lp, time.sleep, (60,), what="orphan", on_done=lambda r: None)
        print(job.pid, flush=True)
        lp.run()
    """)
    env = dict(os.environ, PYTHONPATH=TARGET)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        child = int(proc.stdout.readline())
        assert pidfd.pid_alive(child)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while pidfd.pid_alive(child) and not _is_zombie(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pidfd.pid_alive(child) or _is_zombie(child)


# ---- pending replies --------------------------------------------------------------------------

def _resolve(loop, p):
    got = []
    p.bind(lambda out: (got.append(out), loop.stop()))
    loop.run()
    return got[0]


def test_pending_resolves_with_then_output(loop):
    p = worker.pending(loop, add, (20, 22), what="job", then=lambda r: Output(0, f"{r['sum']}\n"))
    assert _resolve(loop, p) == Output(0, "42\n")


def test_pending_fails_with_the_workers_error(loop):
    p = worker.pending(loop, raise_not_found, what="job", then=lambda r: Output(0, "never"))
    out = _resolve(loop, p)
    assert isinstance(out, ImageNotFound)


def test_pending_fails_when_then_raises(loop):
    def then(_r):
        raise TcrError("finishing step refused")

    out = _resolve(loop, worker.pending(loop, add, (1, 1), what="job", then=then))
    assert isinstance(out, TcrError) and str(out) == "finishing step refused"


def test_pending_cancel_on_disconnect_kills_the_worker(loop):
    p = worker.pending(loop, sleep_long, what="job", cancel_on_disconnect=True)
    pids = list(worker._jobs)
    assert len(pids) == 1
    p.cancel()
    while worker._jobs:
        loop.run_once(1.0)
    assert not pidfd.pid_alive(pids[0])


def test_a_chained_pending_is_cancelled_through_the_outer_one(loop):
    """then() returns a follow-up Pending (a foreground run's attach session): a client that goes
    away after the worker finished must cancel that step, not a job that has ended."""
    from tcr.commands.base import Pending

    follow = Pending()
    cancelled = []
    follow.on_cancel = lambda: cancelled.append(True)
    p = worker.pending(loop, add, (1, 2), what="job", then=lambda r: follow, cancel_on_disconnect=True)
    while worker._jobs or follow._send is None:
        loop.run_once(1.0)
    p.cancel()
    assert cancelled == [True]


def raise_usage():
    from tcr.common.errors import UsageError

    raise UsageError("tcr run: unknown flag: --nope", hint="see 'tcr run --help'")


def test_usage_and_invalid_argument_keep_class_code_and_hint(loop):
    from tcr.common.errors import SYNTAX, UsageError

    r = run_job(loop, raise_usage)
    assert type(r) is UsageError and r.code == SYNTAX and r.hint == "see 'tcr run --help'"
    assert r.message == "tcr run: unknown flag: --nope"


def test_run_options_parsed_in_a_child(loop):
    """tcr.commands.containers parses run/create flags in a worker: the record, --help and the
    parser's errors come back as an in-daemon parse would give them."""
    from tcr.commands import containers
    from tcr.common.errors import INVALID_ARGUMENT, SYNTAX, InvalidArgument, UsageError
    from tcr.containers.runopts import parse_run_args
    from tcr.containers.runrecord import RunOptions

    argv = ["-d", "--name", "web", "-e", "A=é", "-v", "data:/data", "--restart", "always",
            "img", "sh", "-c", "x"]
    r = run_job(loop, containers._parse_in_worker, (argv, "/home/u", "create"))
    assert RunOptions.from_dict(r["opts"]) == parse_run_args(argv, "/home/u", prog="create")
    r = run_job(loop, containers._parse_in_worker, (["--help"], "/", "run"))
    assert r["help"].startswith("usage: tcr run [OPTIONS] IMAGE")
    r = run_job(loop, containers._parse_in_worker, (["--nope", "img"], "/", "run"))
    assert type(r) is UsageError and r.code == SYNTAX and r.message == "tcr run: unknown flag: --nope"
    assert r.hint == "see 'tcr run --help'"
    r = run_job(loop, containers._parse_in_worker, (["--memory", "x" * 200, "img"], "/", "run"))
    assert type(r) is InvalidArgument and r.code == INVALID_ARGUMENT
    assert "x" * 65 not in r.message and "..." in r.message  # long input echoed short, as dispatch does


def test_c_dialect_run_options_parsed_in_a_child(loop):
    """The compat socket's `run` parses in a worker too; its errors keep the C daemon's code and
    words (the C client prints `Error (N): message`)."""
    from tcr.commands import cdialect
    from tcr.common.errors import INVALID_ARGUMENT
    from tcr.containers.runrecord import RunOptions

    argv = ["-d", "--name", "web", "--tmpfs", "/t:1m", "--restart", "always", "img", "sh"]
    r = run_job(loop, cdialect._options_in_worker, (argv, "/w"))
    assert RunOptions.from_dict(r) == cdialect.run_options(argv, "/w")
    r = run_job(loop, cdialect._options_in_worker, (["--bogus", "img"], "/"))
    assert isinstance(r, TcrError) and r.code == INVALID_ARGUMENT and r.message == "unknown option: --bogus"
    r = run_job(loop, cdialect._options_in_worker, (["--rm", "--restart", "always", "img"], "/"))
    assert r.code == INVALID_ARGUMENT and not r.hint
    assert r.message == "conflicting options: --restart and --rm"


def _ctx(loop, *args):
    import types

    from tcr.commands.base import Ctx

    return Ctx(daemon=types.SimpleNamespace(loop=loop), method="run", args=list(args), pwd="/home/u")


def test_run_and_create_get_the_record_from_the_worker(loop):
    from tcr.commands import containers
    from tcr.commands.base import Pending
    from tcr.common.errors import InUse
    from tcr.containers.runopts import parse_run_args

    argv = ["-it", "-v", "x:/x", "img", "sh"]
    p = containers._with_options(_ctx(loop, *argv), "run", lambda o: Output(0, repr(o)))
    assert isinstance(p, Pending)
    assert _resolve(loop, p) == Output(0, repr(parse_run_args(argv, "/home/u")))
    assert _resolve(loop, containers._with_options(_ctx(loop, "--help"), "create", lambda o: 1 / 0)).stdout \
        .startswith("usage: tcr create [OPTIONS] IMAGE")

    def refuse(_o):  # an error after the parse (a name in use ...) is echoed short, as dispatch does
        raise InUse(f"the name {'n' * 100!r} is in use")

    out = _resolve(loop, containers._with_options(_ctx(loop, "--name", "n" * 100, "img"), "run", refuse))
    assert isinstance(out, InUse) and "n" * 65 not in out.message


def test_run_options_parse_in_tcrd_when_every_worker_slot_is_busy(loop, monkeypatch):
    """Rather than refuse a run while 8 image loads are running, tcrd parses it itself."""
    from tcr.commands import containers
    from tcr.containers.runopts import parse_run_args

    monkeypatch.setattr(worker, "MAX_JOBS", 0)
    assert containers._with_options(_ctx(loop, "--rm", "img"), "run", lambda o: o) == \
        parse_run_args(["--rm", "img"], "/home/u")
