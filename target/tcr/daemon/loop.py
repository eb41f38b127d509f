"""The daemon's event loop: one thread, one epoll, nothing polls.

- fds: add_reader()/remove_reader() on a select.epoll (not `selectors`, which brings collections
  and functools: docs/profile.md).
- timers: a heap of (deadline, seq, handle); select() sleeps exactly until the next deadline.
- signals: signal.set_wakeup_fd() writes signal numbers to a socketpair the selector watches;
  handlers then run as ordinary callbacks, never inside the Python signal handler.
- idle: on_idle (tcrd: the C heap's free pages back to the kernel) runs once each time the loop
  is about to block after doing some work; a loop that sleeps does not call it again.
- processes: watch_process() opens a pidfd, which becomes readable when the process exits; our own
  children (tcrd is a subreaper, so container processes become ours) are reaped with
  waitid(P_PIDFD). Without pidfd support, SIGCHLD + waitpid(WNOHANG) for the watched pids.
- orphans: with reap_orphans(True), SIGCHLD also reaps zombie children nobody watches (processes
  reparented to the subreaper). Rule for daemon code: a child you do not wait for synchronously
  must be watched before control returns to the loop, or it may be reaped as an orphan.

Callback exceptions are logged and swallowed: the daemon never dies of one bad callback.
"""

from __future__ import annotations

import _signal as signal  # not `signal`, which builds enums at import (enum, functools: docs/profile.md)
import errno
import os
import select
import time
from _collections import deque
from _heapq import heappop, heappush

from tcr.common.log import get_logger
from tcr.kernel import pidfd as _pidfd
from tcr.kernel import sockets as socket

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Callable, Deque, Dict, List, Optional, Tuple

log = get_logger("tcr.loop")

_READ, _WRITE = select.EPOLLIN, select.EPOLLOUT

if TYPE_CHECKING:
    Callback = Callable[[], None]
    ExitCallback = Callable[[Optional[int]], None]


class TimerHandle:
    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callback):
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Watch:
    """A watch on one process. cancel() stops it without calling the callback."""

    def __init__(self, loop: EventLoop, pid: int, callback: ExitCallback, fd: Optional[int]):
        self.loop = loop
        self.pid = pid
        self.callback = callback
        self.fd = fd
        self.active = True

    def cancel(self) -> None:
        if not self.active:
            return
        self.active = False
        self.loop._drop_watch(self)

    def _fire(self, code: Optional[int]) -> None:
        if self.active:
            self.active = False
            self.loop._drop_watch(self)
            self.callback(code)


class EventLoop:
    def __init__(self, use_pidfd: Optional[bool] = None):
        self._epoll = select.epoll()
        self.on_idle: Optional[Callable[[], object]] = None
        self._worked = True  # since the last on_idle: start-up counts as work
        self._masks: Dict[int, int] = {}  # fd -> epoll mask registered
        self._readers: Dict[int, Callback] = {}
        self._writers: Dict[int, Callback] = {}
        self._ready: Deque[Callback] = deque()
        self._timers: List[Tuple[float, int, TimerHandle]] = []
        self._seq = 0
        self._stopping = False
        self._running = False
        self._use_pidfd = _pidfd.supported() if use_pidfd is None else use_pidfd
        self._watches: Dict[int, List[Watch]] = {}  # pid -> watches
        self._signal_handlers: Dict[int, List[Callback]] = {}
        self._old_handlers: Dict[int, object] = {}
        self._wake_r: Optional[socket.socket] = None
        self._wake_w: Optional[socket.socket] = None
        self._old_wakeup_fd = -1
        self._reap_orphans = False
        self._sigchld_installed = False
        self._orphan_retry = False

    # ---- fds ---------------------------------------------------------------------------------

    def _register(self, fd: int) -> None:
        mask = (_READ if fd in self._readers else 0) | (_WRITE if fd in self._writers else 0)
        old = self._masks.get(fd)
        if not mask:
            if old is not None:
                del self._masks[fd]
                try:
                    self._epoll.unregister(fd)
                except (OSError, ValueError):
                    pass  # already closed: the kernel dropped it from the epoll set
        elif old is None:
            self._epoll.register(fd, mask)
            self._masks[fd] = mask
        elif old != mask:
            self._epoll.modify(fd, mask)
            self._masks[fd] = mask

    def add_reader(self, fd: int, callback: Callback) -> None:
        self._readers[fd] = callback
        self._register(fd)

    def remove_reader(self, fd: int) -> None:
        if self._readers.pop(fd, None) is not None:
            self._register(fd)

    def add_writer(self, fd: int, callback: Callback) -> None:
        """callback() whenever fd is writable (for non-blocking sends that hit a full buffer)."""
        self._writers[fd] = callback
        self._register(fd)

    def remove_writer(self, fd: int) -> None:
        if self._writers.pop(fd, None) is not None:
            self._register(fd)

    # ---- callbacks and timers ----------------------------------------------------------------

    def call_soon(self, callback: Callback) -> None:
        self._ready.append(callback)

    def call_later(self, delay: float, callback: Callback) -> TimerHandle:
        h = TimerHandle(time.monotonic() + max(0.0, delay), callback)
        self._seq += 1
        heappush(self._timers, (h.when, self._seq, h))
        return h

    def time(self) -> float:
        return time.monotonic()

    # ---- signals -----------------------------------------------------------------------------

    def _ensure_wakeup(self) -> None:
        if self._wake_r is not None:
            return
        r, w = socket.socketpair()
        r.setblocking(False)
        w.setblocking(False)
        self._wake_r, self._wake_w = r, w
        self._old_wakeup_fd = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
        self.add_reader(r.fileno(), self._on_wakeup)

    def _install(self, signum: int) -> None:
        self._ensure_wakeup()
        if signum not in self._old_handlers:
            # A Python-level handler is needed for the C handler to write to the wakeup fd;
            # the real work happens in _on_wakeup.
            self._old_handlers[signum] = signal.signal(signum, _noop_handler)

    def add_signal_handler(self, signum: int, callback: Callback) -> None:
        self._install(signum)
        self._signal_handlers.setdefault(signum, []).append(callback)

    def remove_signal_handler(self, signum: int) -> None:
        self._signal_handlers.pop(signum, None)

    def _on_wakeup(self) -> None:
        assert self._wake_r is not None
        try:
            data = self._wake_r.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        for signum in dict.fromkeys(data):  # de-duplicated, in order
            if signum == signal.SIGCHLD:
                self._on_sigchld()
            for cb in list(self._signal_handlers.get(signum, ())):
                self._run_callback(cb)

    # ---- processes ---------------------------------------------------------------------------

    def watch_process(self, pid: int, callback: ExitCallback) -> Watch:
        """Call callback(code) once pid has exited: docker-style code if we reaped it, else None."""
        fd: Optional[int] = None
        if self._use_pidfd:
            try:
                fd = _pidfd.open_pidfd(pid)
            except ProcessLookupError:
                w = Watch(self, pid, callback, None)
                self._watches.setdefault(pid, []).append(w)
                self.call_soon(lambda: w._fire(None))
                return w
        w = Watch(self, pid, callback, fd)
        self._watches.setdefault(pid, []).append(w)
        if fd is not None:
            self.add_reader(fd, lambda: self._on_pidfd(w))
        else:
            self._install_sigchld()
            self.call_soon(self._on_sigchld)  # it may have exited before we installed the handler
        return w

    def _drop_watch(self, w: Watch) -> None:
        lst = self._watches.get(w.pid)
        if lst and w in lst:
            lst.remove(w)
            if not lst:
                del self._watches[w.pid]
        if w.fd is not None:
            self.remove_reader(w.fd)
            os.close(w.fd)
            w.fd = None

    def _on_pidfd(self, w: Watch) -> None:
        assert w.fd is not None
        code = _pidfd.reap_pidfd(w.fd)
        # Other watches on the same pid get the same result.
        for other in list(self._watches.get(w.pid, ())):
            if other is not w:
                other._fire(code)
        w._fire(code)

    def _install_sigchld(self) -> None:
        if not self._sigchld_installed:
            self._sigchld_installed = True
            self._install(signal.SIGCHLD)

    def reap_orphans(self, enable: bool = True) -> None:
        """Reap zombie children nobody watches, on every SIGCHLD (for a child subreaper)."""
        self._reap_orphans = enable
        if enable:
            self._install_sigchld()
            self.call_soon(self._on_sigchld)

    def _on_sigchld(self) -> None:
        # Watched pids without a pidfd (fallback mode).
        for pid, watches in list(self._watches.items()):
            if any(w.fd is not None for w in watches):
                continue
            code: Optional[int]
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                if _pidfd.pid_alive(pid):
                    continue  # not our child and still alive: nothing to report yet
                code = None
            else:
                if got == 0:
                    continue
                code = _pidfd.code_from_status(status)
            for w in list(watches):
                w._fire(code)
        if self._reap_orphans:
            try:
                zombies = _zombie_children()
            except OSError:
                # Out of fds (reading /proc needs one): try again shortly, never lose a zombie.
                if not self._orphan_retry:
                    self._orphan_retry = True
                    self.call_later(0.5, self._retry_orphans)
                return
            for pid in zombies:
                if pid in self._watches:
                    continue
                try:
                    os.waitpid(pid, os.WNOHANG)
                    log.debug("reaped orphan process %d", pid)
                except ChildProcessError:
                    pass

    def _retry_orphans(self) -> None:
        self._orphan_retry = False
        self._on_sigchld()

    # ---- running -----------------------------------------------------------------------------

    def _run_callback(self, cb: Callable[[], object]) -> None:
        try:
            cb()
        except Exception as exc:
            # The same failure repeating (a full disk under a chatty callback) is logged once a
            # minute, so the daemon's own log stays bounded.
            from tcr.common import oserrors

            where = getattr(cb, "__qualname__", type(cb).__name__)
            key = f"loop.{where}.{type(exc).__name__}.{getattr(exc, 'errno', '')}"
            if oserrors.is_host_error(exc):
                oserrors.warn(log, key, "event loop callback %s: %s", where, oserrors.describe(exc))
            elif oserrors.WARNINGS.allow(key)[0]:
                log.exception("error in event loop callback %r", cb)

    def run_once(self, timeout: Optional[float] = None) -> None:
        """One iteration: ready callbacks, then wait for fds/timers (at most timeout seconds)."""
        n = len(self._ready)
        if n:
            self._worked = True
        for _ in range(n):
            self._run_callback(self._ready.popleft())
        if self._stopping:
            return
        wait = timeout
        if self._ready:
            wait = 0
        else:
            while self._timers and self._timers[0][2].cancelled:
                heappop(self._timers)
            if self._timers:
                until = max(0.0, self._timers[0][0] - time.monotonic())
                wait = until if wait is None else min(wait, until)
        if wait != 0 and self._worked and self.on_idle is not None:
            self._worked = False
            self._run_callback(self.on_idle)
        if self._readers or self._writers:
            events = self._poll(wait)
        else:
            events = []
            if wait is None:
                raise RuntimeError("event loop would block forever: nothing to wait for")
            time.sleep(wait)  # only timers left: sleeping until the next deadline is not polling
        if events:
            self._worked = True
        for fd, mask in events:
            # as selectors maps them: errors and hang-ups wake both sides
            if mask & ~_READ:
                wcb = self._writers.get(fd)
                if wcb is not None:
                    self._run_callback(wcb)
            if mask & ~_WRITE:
                cb = self._readers.get(fd)
                if cb is not None:
                    self._run_callback(cb)
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _when, _seq, h = heappop(self._timers)
            if not h.cancelled:
                h.cancelled = True
                self._worked = True
                self._run_callback(h.callback)

    def run(self) -> None:
        """Run until stop() is called."""
        self._running = True
        self._stopping = False
        try:
            while not self._stopping:
                self.run_once()
        finally:
            self._running = False
            self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    def close(self) -> None:
        """Restore signal handlers and the wakeup fd; close everything this loop owns."""
        for w in [w for ws in self._watches.values() for w in ws]:
            w.cancel()
        for signum, old in self._old_handlers.items():
            try:
                signal.signal(signum, old)  # type: ignore[arg-type]
            except (TypeError, ValueError, OSError):
                pass
        self._old_handlers.clear()
        self._signal_handlers.clear()
        if self._wake_r is not None:
            try:
                signal.set_wakeup_fd(self._old_wakeup_fd)
            except ValueError:
                pass
            self.remove_reader(self._wake_r.fileno())
            self._wake_r.close()
            assert self._wake_w is not None
            self._wake_w.close()
            self._wake_r = self._wake_w = None
        self._epoll.close()
        self._masks.clear()

    def _poll(self, timeout: Optional[float]) -> List[Tuple[int, int]]:
        # selectors' rounding: up to the next millisecond, so a timer is never woken early
        ms = -1 if timeout is None else (0 if timeout <= 0 else -(-timeout * 1000 // 1) / 1000)
        try:
            return self._epoll.poll(ms, max(len(self._masks), 1))
        except InterruptedError:  # PEP 475 retries; a signal with a handler lands on the wakeup fd
            return []


def _noop_handler(signum, frame) -> None:
    pass


def _zombie_children() -> List[int]:
    """Our zombie children, from /proc (children lists when available, else a scan)."""
    me = os.getpid()
    pids: List[int] = []
    try:
        for tid in os.listdir(f"/proc/{me}/task"):
            with open(f"/proc/{me}/task/{tid}/children") as f:
                pids.extend(int(p) for p in f.read().split())
    except OSError:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                raise  # the caller retries: skipping would leave a zombie behind
            continue
        tail = stat[stat.rfind(b")") + 2:].split()
        if len(tail) >= 2 and tail[0] == b"Z" and int(tail[1]) == me:
            out.append(pid)
    return out
