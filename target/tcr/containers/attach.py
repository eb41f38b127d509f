"""Attaching a client to a container tcrd runs: its output, its stdin, signals and window size.

Every container is started and supervised by tcrd (manager.start); a foreground `run`, `start -a`
and `attach` only connect a client's data channel (tcr.rpc.channel, transport) to the container's
output pump and stdin here. The client going away (detach keys, SIGKILL, an SSH drop) only ends
the session: the container keeps running.

Memory stays bounded both ways: a client that reads slower than the container writes pauses the
pump (the container then blocks on its pipe, as with docker), and stdin that the container does
not read stops tcrd from reading the client (StdinWriter.backlog).
"""

from __future__ import annotations

import errno
import os

from tcr.common.log import get_logger

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Deque, Dict, Optional

log = get_logger("tcr.containers")

STDIN_BACKLOG = 256 * 1024
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
# docker's sig-proxy forwards everything but these (and the unblockable ones)
NOT_FORWARDED = {"SIGCHLD", "SIGPIPE", "SIGURG", "SIGWINCH", "SIGKILL", "SIGSTOP"}


def parse_detach_keys(text: str) -> bytes:
    """docker's --detach-keys: comma-separated 'ctrl-X' (X in a-z @ [ \\ ] ^ _) or single characters."""
    from tcr.common.errors import InvalidArgument

    out = bytearray()
    if text == "":
        return b""
    for part in text.split(","):
        if len(part) == 1 and ord(part) < 128:
            out.append(ord(part))
        elif part.lower().startswith("ctrl-") and len(part) == 6:
            ch = part[5].lower()
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
            elif ch in "@[\\]^_":
                out.append({"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}[ch])
            else:
                raise InvalidArgument(f"invalid detach keys {text!r}: unknown key {part!r}")
        else:
            raise InvalidArgument(f"invalid detach keys {text!r}: unknown key {part!r}",
                                  hint="e.g. ctrl-p,ctrl-q or ctrl-a,d")
    return bytes(out)


class StdinWriter:
    """The container's stdin (a pipe, or the pty master): non-blocking writes from the loop with a
    small backlog; on_room() when the backlog drained (the client is read again)."""

    def __init__(self, loop: Any, fd: int):
        from _collections import deque  # not `collections` (~0.4 MB in tcrd: docs/profile.md)

        self.loop = loop
        self.fd: Optional[int] = fd
        os.set_blocking(fd, False)
        self.buf: Deque[bytes] = deque()
        self.backlog = 0
        self.on_room: Optional[Callable[[], None]] = None
        self._close_when_done = False

    def write(self, data: bytes) -> None:
        if self.fd is None or not data:
            return
        if not self.buf:
            try:
                n = os.write(self.fd, data)
            except BlockingIOError:
                n = 0
            except OSError as exc:  # EPIPE: the container closed its stdin
                log.debug("stdin write failed: %s", exc)
                self.close()
                return
            data = data[n:]
            if not data:
                return
            self.loop.add_writer(self.fd, self._flush)
        self.buf.append(data)
        self.backlog += len(data)

    def _flush(self) -> None:
        while self.buf and self.fd is not None:
            data = self.buf[0]
            try:
                n = os.write(self.fd, data)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                self.close()
                return
            self.backlog -= n
            if n < len(data):
                self.buf[0] = data[n:]
            else:
                self.buf.popleft()
        if self.fd is not None:
            self.loop.remove_writer(self.fd)
        if self._close_when_done:
            self.close()
        elif self.on_room is not None:
            self.on_room()

    def close_input(self) -> None:
        """End of input: close once what is queued was written."""
        if self.buf:
            self._close_when_done = True
        else:
            self.close()

    def close(self) -> None:
        if self.fd is not None:
            self.loop.remove_writer(self.fd)
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None
        self.buf.clear()
        self.backlog = 0


class Session:
    """One attached client. done(code) once the container exited (code) or the session ended."""

    def __init__(self, mgr: Any, c: Any, channel: Any, stdin: bool, stdin_once: bool,
                 detach_keys: bytes, sig_proxy: bool, done: Callable[[Optional[int]], None]):
        self.mgr = mgr
        self.c = c
        self.channel = channel
        self.stdin = stdin and c.stdin is not None
        self.stdin_once = stdin_once
        self.detach_keys = detach_keys
        self.sig_proxy = sig_proxy and not c.opts.tty
        self.done = done
        self.ended = False

    def start(self) -> None:
        c, ch = self.c, self.channel
        ch.open(stdin=self.stdin, tty=bool(c.opts.tty), detach_keys=self.detach_keys if self.stdin else b"",
                sig_proxy=self.sig_proxy)
        ch.on_input = self._input
        ch.on_control = self._control
        ch.on_drain = self._drained
        if c.pump is not None:
            c.pump.subscribers.append(self._output)
        c.attached.append(self._exited)
        if c.opts.tty and ch.winsize:
            self.mgr.resize(c, *ch.winsize)

    def _output(self, stream: str, data: Optional[bytes]) -> None:
        if data is None or self.ended:
            return
        self.channel.write(stream, data)
        if self.channel.pressured and self.c.pump is not None:
            self.c.pump.pause(self)

    def _drained(self) -> None:
        if self.c.pump is not None:
            self.c.pump.resume(self)

    def _input(self, data: bytes) -> None:
        w = self.c.stdin
        if not self.stdin or w is None:
            return
        if not data:
            if self.stdin_once:
                w.close_input()
                if self.c.stdin is w:
                    self.c.stdin = None
            return
        w.write(data)
        if w.backlog > STDIN_BACKLOG:
            self.channel.pause_input()
            w.on_room = self.channel.resume_input

    def _control(self, ctl: Dict[str, Any]) -> None:
        sig = ctl.get("signal")
        if isinstance(sig, str) and self.sig_proxy and sig not in NOT_FORWARDED:
            from tcr.common import signames
            from tcr.common.errors import TcrError

            try:
                self.mgr.signal(self.c, signames.parse(sig))
            except TcrError as exc:
                log.debug("sig-proxy %s: %s", sig, exc)
        size = ctl.get("resize")
        if isinstance(size, list) and len(size) == 2 and self.c.opts.tty:
            rows, cols = size
            if isinstance(rows, int) and isinstance(cols, int) and 0 <= rows < 65536 and 0 <= cols < 65536:
                self.mgr.resize(self.c, rows, cols)

    def _exited(self, code: Optional[int]) -> None:
        self.end(code)

    def end(self, code: Optional[int] = None) -> None:
        if self.ended:
            return
        self.ended = True
        c = self.c
        if c.pump is not None:
            if self._output in c.pump.subscribers:
                c.pump.subscribers.remove(self._output)
            c.pump.resume(self)
        if self._exited in c.attached:
            c.attached.remove(self._exited)
        w = c.stdin
        if w is not None and w.on_room == self.channel.resume_input:
            w.on_room = None
        self.done(code)

    def cancel(self) -> None:
        """The client went away (detach keys, killed, SSH drop): the container keeps running. As
        docker's StdinOnce, the stdin of a `run -i` (no tty) then ends: nobody can write it again."""
        self.done = lambda _code: None
        c = self.c
        if self.stdin and self.stdin_once and not c.opts.tty and c.stdin is not None:
            c.stdin.close_input()
            c.stdin = None
        self.end(None)
