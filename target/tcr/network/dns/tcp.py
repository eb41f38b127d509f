"""DNS over TCP for the forwarder (tcr.network.dns.server): client connections, upstream TCP
queries and the writability watch they share. Loaded at the first TCP connection or the first
truncated answer (rare on a board): an idle tcrd with the default network up does not hold it
(docs/profile.md).
"""

from __future__ import annotations

import errno
import select
from _functools import partial  # not `functools` (~0.2 MB in tcrd: docs/profile.md)

from tcr.kernel import sockets as socket
from tcr.network.dns import packet
from tcr.network.dns.server import MAX_TCP_OUT, MAX_TCP_PENDING

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional, Set

    from tcr.network.dns.forwarder import Pending
    from tcr.network.dns.server import DnsService, _Listener


class Writability:
    """Writability notifications through one epoll fd that the loop watches as a reader."""

    def __init__(self, loop: Any):
        self._loop = loop
        self._ep = select.epoll()
        self._cbs: Dict[int, Callable[[], None]] = {}
        loop.add_reader(self._ep.fileno(), self._fire)

    def watch(self, sock: socket.socket, cb: Callable[[], None]) -> None:
        fd = sock.fileno()
        if fd in self._cbs:
            self._ep.modify(fd, select.EPOLLOUT)
        else:
            self._ep.register(fd, select.EPOLLOUT)
        self._cbs[fd] = cb

    def unwatch(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if fd >= 0 and self._cbs.pop(fd, None) is not None:
            try:
                self._ep.unregister(fd)
            except OSError:
                pass

    def _fire(self) -> None:
        for fd, _ev in self._ep.poll(0):
            cb = self._cbs.pop(fd, None)
            try:
                self._ep.unregister(fd)
            except OSError:
                pass
            if cb is not None:
                cb()

    def close(self) -> None:
        self._loop.remove_reader(self._ep.fileno())
        self._ep.close()
        self._cbs.clear()


class TcpClient:
    """One client TCP connection: length-prefixed queries in, length-prefixed replies out."""

    def __init__(self, svc: DnsService, lst: _Listener, sock: socket.socket, addr: Any = None):
        self.svc = svc
        self.lst = lst
        self.sock = sock
        self.addr = addr  # the client's (ip, port): its own names of other networks (Zone.peers)
        self.buf = bytearray()
        self.out = bytearray()
        self.pending: Set[Pending] = set()
        self.closed = False
        self.eof = False
        self.last = svc.loop.time()
        self.timer = svc.loop.call_later(svc.tcp_idle, self._on_idle)

    def on_readable(self) -> None:
        try:
            chunk = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        if not chunk:
            # Client done sending: answer what is in flight, then close.
            self.eof = True
            self.svc.loop.remove_reader(self.sock.fileno())
            self._maybe_finish()
            return
        self.last = self.svc.loop.time()
        self.buf += chunk
        buf = self.buf
        fwd = self.svc.fwd
        while len(buf) >= 2 and not self.closed:
            size = (buf[0] << 8) | buf[1]
            if len(buf) < 2 + size:
                break
            msg = bytes(buf[2:2 + size])
            del buf[:2 + size]
            if len(self.pending) >= MAX_TCP_PENDING:
                end = packet.question_end(msg)
                if end >= 0:
                    fwd.servfail += 1
                    self.send(packet.empty_reply(msg, end, packet.SERVFAIL, aa=False))
                else:
                    fwd.dropped += 1
                continue
            act = fwd.handle_query(msg, self, self.lst.zone, tcp=True)
            if act is None:
                continue
            if act.__class__ is bytes:
                self.send(act)  # type: ignore[arg-type]
            else:
                p: Pending = act  # type: ignore[assignment]
                p.origin = self.lst
                self.pending.add(p)
                self.svc._send_upstream(p)

    def send(self, reply: bytes) -> None:
        if self.closed:
            return
        self.last = self.svc.loop.time()
        frame = len(reply).to_bytes(2, "big") + reply
        if self.out:
            self.out += frame
            if len(self.out) > MAX_TCP_OUT:
                self.close()
            return
        try:
            n = self.sock.send(frame)
        except BlockingIOError:
            n = 0
        except OSError:
            self.close()
            return
        if n < len(frame):
            self.out = bytearray(frame[n:])
            self.svc.writable().watch(self.sock, self._flush)
        else:
            self._maybe_finish()

    def _flush(self) -> None:
        if self.closed:
            return
        try:
            n = self.sock.send(self.out)
        except BlockingIOError:
            n = 0
        except OSError:
            self.close()
            return
        del self.out[:n]
        if self.out:
            self.svc.writable().watch(self.sock, self._flush)
        else:
            self._maybe_finish()

    def _maybe_finish(self) -> None:
        if self.eof and not self.pending and not self.out:
            self.close()

    def _on_idle(self) -> None:
        if self.closed:
            return
        left = self.last + self.svc.tcp_idle - self.svc.loop.time()
        if left > 0 or self.pending:
            self.timer = self.svc.loop.call_later(max(left, 0.5), self._on_idle)
            return
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        svc = self.svc
        self.timer.cancel()
        if not self.eof:
            svc.loop.remove_reader(self.sock.fileno())
        if svc._writable is not None:
            svc._writable.unwatch(self.sock)
        self.sock.close()
        for p in list(self.pending):
            svc._abandon(p)
        self.pending.clear()
        self.lst.conns.discard(self)
        svc.tcp_conns -= 1


class TcpUpstream:
    """One TCP query to an upstream: non-blocking connect, send the frame, read one framed answer."""

    def __init__(self, svc: DnsService, p: Pending):
        self.svc = svc
        self.p = p
        self.buf = bytearray()
        self.sock: Optional[socket.socket] = None
        self.reading = False

    def start(self) -> None:
        host, port = self.p.upstream
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self.sock = socket.socket(family, socket.SOCK_STREAM)
            self.sock.setblocking(False)
            err = self.sock.connect_ex((host, port))
        except OSError as e:
            err = e.errno or errno.EIO
        if err not in (0, errno.EINPROGRESS):
            self._fail()
            return
        assert self.sock is not None
        self.svc.writable().watch(self.sock, self._on_connected)

    def _on_connected(self) -> None:
        sock = self.sock
        if sock is None:
            return
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._fail()
            return
        frame = len(self.p.query).to_bytes(2, "big") + self.p.query
        try:
            n = sock.send(frame)
        except OSError:
            n = -1
        if n != len(frame):  # a fresh socket's send buffer holds any DNS message
            self._fail()
            return
        self.reading = True
        self.svc.loop.add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            chunk = sock.recv(65537)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._fail()
            return
        self.buf += chunk
        if len(self.buf) < 2:
            return
        size = (self.buf[0] << 8) | self.buf[1]
        if len(self.buf) < 2 + size:
            return
        msg = bytes(self.buf[2:2 + size])
        self.close()
        got = self.svc.fwd.handle_upstream_reply(msg, self.p.upstream, self)
        if got is not None:
            p, reply = got
            if p.timer is not None:
                p.timer.cancel()
                p.timer = None
            self.svc._reply(p, reply)

    def _fail(self) -> None:
        """Connection refused/reset: try the next upstream now instead of waiting for the timer."""
        self.close()
        p = self.p
        if p.io is self and not p.done:
            self.svc.loop.call_soon(partial(self.svc._on_timeout, p, p.index))

    def close(self) -> None:
        sock = self.sock
        if sock is None:
            return
        self.sock = None
        if self.reading:
            self.svc.loop.remove_reader(sock.fileno())
        if self.svc._writable is not None:
            self.svc._writable.unwatch(sock)
        sock.close()
