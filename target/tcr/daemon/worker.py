"""Short-lived forked workers: heavy or rare work off the event loop and out of the daemon's memory.

    job = worker.spawn(loop, fn, (arg1, arg2), what="image load", on_done=cb)
    pending = worker.pending(loop, fn, args, what="image verify", then=make_output)

spawn() forks a child that runs fn(*args) and writes one JSON reply to a pipe:
{"ok": result} or {"error": {...}} for a raised exception. The parent never waits for it: the pipe
is a reader on the event loop and the child's exit arrives through the loop's pidfd watch; when
the child has exited, on_done(result) runs on the loop, where `result` is fn's JSON-able return
value or a TcrError. A child that dies (killed, crashed, out of memory), exits without a reply,
or writes a reply that is not valid JSON becomes one clear line: "image load: worker process
killed by signal 9 (SIGKILL)".

Why fork (not threads, not a pool): the child starts with the daemon's code already imported,
pays only for the pages it touches (copy-on-write), and everything it allocates, including
modules it imports (PySquashfsImage and its decompressors), goes back to the system when it
exits. The daemon itself stays at the interpreter's floor.

In the child, before fn runs: the daemon's signal handlers and signal wakeup fd are reset (a
signal there must not look like one delivered to tcrd), it dies with its parent (PDEATHSIG), and
every fd except stdio, the reply pipe and `keep_fds` is closed, so it holds neither the state-root
lock nor listening or client sockets of the daemon. fn must not touch the event loop.

pending() wraps spawn() for command handlers: it returns a Pending that resolves with
then(result) (run on the loop, for the quick parent-side steps such as mount and state write) or
fails with the TcrError. A client that goes away does not stop the job (its result still lands
in the daemon's state); `cancel_on_disconnect=True` kills it instead, for read-only work.
"""

from __future__ import annotations

import _signal as signal  # not `signal`: its enums bring enum and functools (docs/profile.md)
import errno
import gc
import os

from tcr.common import jsonc, signames
from tcr.common.errors import InternalError, TcrError
from tcr.common.log import get_logger

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional, Sequence, Set, Union

log = get_logger("tcr.worker")

MAX_REPLY = 4 * 1024 * 1024  # bytes of JSON a worker may send back
MAX_JOBS = 8                  # workers alive at once; more is refused with a clear error
_READ_CHUNK = 256 * 1024
_PR_SET_PDEATHSIG = 1

if TYPE_CHECKING:
    Result = Union[Any, TcrError]
    DoneCallback = Callable[[Result], None]

_jobs: Dict[int, Job] = {}  # pid -> live job (of this process)


class Job:
    """One running worker. cancel() kills it; on_done is then never called."""

    def __init__(self, loop: Any, pid: int, fd: int, what: str, on_done: DoneCallback):
        self.loop = loop
        self.pid = pid
        self.what = what
        self._fd: Optional[int] = fd
        self._buf = bytearray()
        self._overflow = False
        self._on_done: Optional[DoneCallback] = on_done
        self._timer: Any = None
        self._watch: Any = None
        self.done = False

    # ---- parent side -------------------------------------------------------------------------

    def _on_readable(self) -> None:
        self._drain()

    def _drain(self) -> None:
        """Read what the pipe holds without blocking (EOF closes it)."""
        while self._fd is not None:
            try:
                chunk = os.read(self._fd, _READ_CHUNK)
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            except OSError as exc:
                log.debug("worker %s (pid %d): pipe read failed: %s", self.what, self.pid, exc)
                chunk = b""
            if not chunk:
                self._close_pipe()
                return
            if len(self._buf) + len(chunk) > MAX_REPLY:
                self._overflow = True  # keep draining so the child is not blocked, but drop it
                self._buf.clear()
                continue
            if not self._overflow:
                self._buf += chunk

    def _close_pipe(self) -> None:
        if self._fd is not None:
            self.loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None

    def _on_exit(self, code: Optional[int]) -> None:
        self._watch = None
        self._drain()  # everything the child wrote before it exited is in the pipe now
        self._close_pipe()
        result = self._result(code)
        self._finish(result)

    def _result(self, code: Optional[int]) -> Result:
        what = self.what
        if self._overflow:
            return InternalError(f"{what}: worker process sent a reply larger than {MAX_REPLY} bytes")
        if not self._buf:
            if code is not None and code > 128:
                return InternalError(f"{what}: worker process killed by signal {code - 128} "
                                     f"({_signame(code - 128)})",
                                     hint="out of memory? see the kernel log (dmesg)"
                                     if code - 128 == signal.SIGKILL else None)
            return InternalError(f"{what}: worker process exited with code {code} and no reply")
        try:
            msg = jsonc.loads(bytes(self._buf))
        except ValueError:
            return InternalError(f"{what}: worker process sent a bad reply (not JSON)")
        if isinstance(msg, dict) and "ok" in msg and len(msg) == 1:
            return msg["ok"]
        if isinstance(msg, dict) and isinstance(msg.get("error"), dict):
            return _error_from_dict(msg["error"], what)
        return InternalError(f"{what}: worker process sent a bad reply (unexpected shape)")

    def _finish(self, result: Result) -> None:
        if self.done:
            return
        self.done = True
        _jobs.pop(self.pid, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        cb, self._on_done = self._on_done, None
        if isinstance(result, TcrError):
            log.debug("worker %s (pid %d) failed: %s", self.what, self.pid, result)
        else:
            log.debug("worker %s (pid %d) done", self.what, self.pid)
        if cb is not None:
            cb(result)

    def _on_timeout(self) -> None:
        self._timer = None
        if self.done:
            return
        log.warning("worker %s (pid %d) took too long; killing it", self.what, self.pid)
        self._kill()
        # The exit still arrives through the watch; report the timeout rather than "killed".
        cb = self._on_done
        if cb is not None:
            self._on_done = lambda _r: cb(InternalError(f"{self.what}: took too long; worker process killed"))

    def _kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def cancel(self) -> None:
        """Kill the worker; its exit is still reaped through the loop, on_done is not called."""
        if self.done:
            return
        self._on_done = None
        self._kill()


def _signame(n: int) -> str:
    try:
        return signames.name(n)
    except ValueError:
        return f"signal {n}"


def _error_to_dict(exc: BaseException) -> Dict[str, Any]:
    if isinstance(exc, OSError):
        from tcr.common import oserrors

        if oserrors.is_host_error(exc):  # a full disk, EIO ...: one line naming the filesystem
            exc = oserrors.to_error(exc)
    if isinstance(exc, TcrError):
        return {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint, "code": exc.code}
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return {"type": "", "message": f"{type(exc).__name__}" + (f": {text}" if text else ""),
            "hint": None, "code": InternalError.code}


def _error_from_dict(d: Dict[str, Any], what: str) -> TcrError:
    from tcr.common import errors

    message = d.get("message")
    if not isinstance(message, str) or not message.strip():
        return InternalError(f"{what}: worker process sent a bad reply (error without a message)")
    hint = d.get("hint") if isinstance(d.get("hint"), str) else None
    code = d.get("code") if type(d.get("code")) is int else None
    name = d.get("type")
    if not name:  # an unexpected exception in the worker: say where it happened
        return InternalError(f"{what}: internal error in worker: {message[:400]}", hint=hint)
    cls = getattr(errors, name, None) if isinstance(name, str) else None
    if isinstance(cls, type) and issubclass(cls, TcrError) and cls is not errors.CommandError:
        return cls(message, hint=hint, code=code)
    return TcrError(message, hint=hint, code=code)


# ---- child side ------------------------------------------------------------------------------


def _child_setup(parent: int, wfd: int, keep_fds: Sequence[int]) -> None:
    # The daemon's objects stay out of the cyclic GC here: collecting one (say a socket whose fd
    # we close below) must not close an fd number fn reuses, and untouched pages stay shared.
    gc.freeze()
    try:
        signal.set_wakeup_fd(-1)
    except (ValueError, OSError):
        pass
    for sig in signal.valid_signals():
        try:
            if callable(signal.getsignal(sig)):
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError, RuntimeError):
            pass
    try:
        from tcr.kernel.libc import libc

        libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before PDEATHSIG was armed
        os._exit(1)
    from tcr.common import faults

    faults.in_worker_of(parent)
    _close_fds_except({0, 1, 2, wfd, *keep_fds})


def _close_fds_except(keep: Set[int]) -> None:
    """Close every open fd not in keep: the ones /proc lists (cheap even with a huge fd limit),
    or the whole range up to the limit without /proc."""
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except (OSError, ValueError):
        fds = []
        lo = 0
        for fd in sorted(keep):
            if fd > lo:
                os.closerange(lo, fd)
            lo = fd + 1
        try:
            os.closerange(lo, os.sysconf("SC_OPEN_MAX"))
        except (OSError, ValueError):
            os.closerange(lo, 65536)
    for fd in fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the directory fd listdir used, already closed


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        view = view[n:]


def _child_main(parent: int, wfd: int, keep_fds: Sequence[int], fn: Callable[..., Any],
                args: Sequence[Any]) -> None:
    """Runs in the forked child; never returns."""
    code = 0
    try:
        _child_setup(parent, wfd, keep_fds)
        try:
            reply = jsonc.dumps({"ok": fn(*args)}, ascii=True)
        except BaseException as exc:  # noqa: BLE001 - everything the function raises is reported
            reply = jsonc.dumps({"error": _error_to_dict(exc)}, ascii=True)
        _write_all(wfd, reply.encode())
    except BaseException:  # noqa: BLE001 - even a failed write must not return into the daemon's code
        code = 70
    finally:
        os._exit(code)


# ---- public API ------------------------------------------------------------------------------


def running() -> int:
    """How many workers of this process are alive."""
    return len(_jobs)


def has_room(loop: Any) -> bool:
    """Can spawn() start a worker now: a loop to run it on, and a free slot of MAX_JOBS?"""
    return loop is not None and len(_jobs) < MAX_JOBS


def spawn(loop: Any, fn: Callable[..., Any], args: Sequence[Any] = (), *, what: str,
          on_done: DoneCallback, timeout: Optional[float] = None, keep_fds: Sequence[int] = ()) -> Job:
    """Run fn(*args) in a forked child; on_done(result or TcrError) runs on the loop when it ends.

    Raises TcrError (nothing started) when MAX_JOBS workers are already running or fork fails.
    """
    if not has_room(loop):
        raise TcrError(f"{what}: {MAX_JOBS} background jobs are already running",
                       hint="wait for image loads or verifications to finish, then retry")
    r, w = os.pipe()
    try:
        os.set_blocking(r, False)
        parent = os.getpid()
        pid = os.fork()
    except OSError as exc:
        os.close(r)
        os.close(w)
        raise TcrError(f"{what}: cannot start a worker process: {exc.strerror or exc}",
                       hint="the system is out of memory or processes" if exc.errno in
                       (errno.ENOMEM, errno.EAGAIN) else None)
    if pid == 0:  # child
        os.close(r)
        _child_main(parent, w, keep_fds, fn, args)
    os.close(w)
    job = Job(loop, pid, r, what, on_done)
    _jobs[pid] = job
    # Both before control returns to the loop: the orphan reaper must not reap our child.
    loop.add_reader(r, job._on_readable)
    job._watch = loop.watch_process(pid, job._on_exit)
    if timeout is not None:
        job._timer = loop.call_later(timeout, job._on_timeout)
    log.debug("worker %s started (pid %d)", what, pid)
    return job


def pending(loop: Any, fn: Callable[..., Any], args: Sequence[Any] = (), *, what: str,
            then: Optional[Callable[[Any], Any]] = None, timeout: Optional[float] = None,
            cancel_on_disconnect: bool = False, keep_fds: Sequence[int] = ()) -> Any:
    """A Pending reply resolved by a worker: then(result) -> Output runs on the loop; a TcrError
    from the worker, or raised by then, fails the reply."""
    from tcr.commands.base import Output, Pending

    p = Pending()

    def done(result: Result) -> None:
        if isinstance(result, TcrError):
            p.fail(result)
            return
        try:
            out = then(result) if then is not None else Output(0, "" if result is None else f"{result}\n")
        except TcrError as exc:
            p.fail(exc)
            return
        except Exception as exc:
            log.exception("%s: finishing the worker's result failed", what)
            p.fail(InternalError(f"{what}: internal error: {type(exc).__name__}: {exc}"[:500]))
            return
        if isinstance(out, Pending):  # a follow-up step that is itself pending
            out.bind(p.resolve)
            # The client going away now cancels that step (a run's attach session), not the job.
            p.on_cancel = out.cancel
        else:
            p.resolve(out)

    job = spawn(loop, fn, args, what=what, on_done=done, timeout=timeout, keep_fds=keep_fds)
    if cancel_on_disconnect:
        p.on_cancel = job.cancel
    return p
