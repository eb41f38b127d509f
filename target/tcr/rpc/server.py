"""tcrd's RPC transport: Unix SOCK_SEQPACKET sockets served from the daemon's event loop.

Thin on purpose: it receives one message at a time (non-blocking), checks the peer's credentials,
decodes with tcr.rpc.protocol, calls dispatch() and sends the reply with the request's id.
Everything that can go wrong with input becomes an error reply; the daemon never dies of it and
one client can never block another (sends never block: a client that does not read is dropped).

File descriptors: clients may take all but FD_RESERVE of the daemon's fds (the first MIN_CLIENTS
are always served, so a daemon whose containers use most fds stays manageable); the rest stay free for
the work that must always succeed (reaping and tearing down exited containers, restarts, state
writes). When a new client would eat into the reserve, or accept() fails with EMFILE/ENFILE, that
client is told to try again and listening pauses: no accept() spin, one warning a minute. It
resumes when a client disconnects, or after RESUME_AFTER seconds (a timer that exists only while
paused), whichever comes first.
"""

from __future__ import annotations

import errno
import mmap
import os
import struct
from _collections import deque  # not `collections` (~0.4 MB in tcrd: docs/profile.md)

from tcr.common.errors import INTERNAL, INVALID_ARGUMENT, TcrError, shorten_error
from tcr.common.log import get_logger
from tcr.kernel import sockets as socket
from tcr.rpc import protocol
from tcr.rpc.protocol import ErrorReply, ExecResult, ProtocolError, Result, StreamChunk

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Deque, Dict, List, Optional, Union

log = get_logger("tcr.rpc")

if TYPE_CHECKING:
    Dispatch = Callable[..., Any]  # (method, args, pwd, pid, uid, gid, stream) -> Output | Pending
# Which dispatcher serves a request depends on the socket it came in on: the compat socket speaks
# the C client's dialect (tcr.commands.cdialect), tcrd's own socket docker's. The transport only
# routes; it knows nothing about either dialect.
_SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
_SNDBUF = 4 * protocol.MAX_MESSAGE  # room for a max-size reply plus stream messages
_BATCH = 32  # messages handled per wake-up per client, so a busy client cannot starve others
FD_RESERVE = 16  # fds never given to clients (a crun call needs about 8)
MIN_CLIENTS = 4  # ... except to the first few: a daemon near its limit must stay manageable
RESUME_AFTER = 1.0
_FD_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def fd_limit() -> int:
    from tcr.kernel.rlimits import INFINITY, limits  # not `resource` (docs/profile.md)

    soft = limits().get("RLIMIT_NOFILE", (1024, 1024))[0]
    return 1 << 20 if soft == INFINITY else soft


def open_fds() -> int:
    """How many fds this process has open (an upper bound if /proc cannot be read)."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # minus listdir's own
    except OSError:
        return fd_limit()


def peer_groups(pid: int) -> List[int]:
    """Supplementary groups of a process, from /proc/<pid>/status (empty if unreadable)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return [int(g) for g in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return []


def same_pid_namespace(pid: int) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino == os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # gone already, or no /proc: cannot tell who it is
        return False


class Connection:
    def __init__(self, server: RpcServer, sock: socket.socket, pid: int, uid: int, gid: int,
                 dispatch: Optional[Dispatch] = None):
        self.server = server
        self.dispatch = dispatch or server.dispatch  # that of the socket the client connected to
        self.sock = sock
        self.fd = sock.fileno()
        self.pid, self.uid, self.gid = pid, uid, gid
        self.pending: Dict[int, Any] = {}  # token -> Pending
        self.closed = False
        # Attach extension (tcr.rpc.channel): a queue of messages waiting for the socket to be
        # writable, bounded by its producer pausing at HIGH_WATER; the open data channel, if any.
        self.outbox: Deque[bytes] = deque()
        self.outbytes = 0
        self.channel: Any = None
        self.reading = True

    def send(self, msg: Union[Result, ExecResult, ErrorReply, StreamChunk]) -> bool:
        """Send one message without ever blocking. False (and the connection closed) on failure."""
        if self.closed:
            return False
        data = protocol.encode(msg)
        if len(data) > protocol.MAX_MESSAGE and not isinstance(msg, StreamChunk):
            data = protocol.encode(
                ErrorReply(
                    msg.id, INTERNAL, f"reply too large ({len(data)} bytes, max {protocol.MAX_MESSAGE})"
                )
            )
        if self.outbox:  # keep the order behind queued attach frames
            self.queue(data)
            return True
        try:
            self.sock.send(data, socket.MSG_DONTWAIT | getattr(socket, "MSG_NOSIGNAL", 0))
            return True
        except BlockingIOError:
            if self.channel is not None:  # a flow-controlled client: wait for it
                self.queue(data)
                return True
            log.warning("rpc: client pid %s is not reading its replies; dropping it", self.pid)
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:
                return self.send(ErrorReply(msg.id, INTERNAL, f"reply too large ({len(data)} bytes)"))
            log.debug("rpc: send to pid %s failed: %s", self.pid, exc)
        self.close()
        return False

    def send_raw(self, data: bytes) -> None:
        """A binary attach frame: sent now if the socket takes it, else queued (never blocks)."""
        if self.closed:
            return
        if not self.outbox:
            try:
                self.sock.send(data, socket.MSG_DONTWAIT | getattr(socket, "MSG_NOSIGNAL", 0))
                return
            except BlockingIOError:
                pass
            except OSError as exc:
                log.debug("rpc: send to pid %s failed: %s", self.pid, exc)
                self.close()
                return
        self.queue(data)

    def queue(self, data: bytes) -> None:
        if not self.outbox:
            self.server.loop.add_writer(self.fd, self._flush)
        self.outbox.append(data)
        self.outbytes += len(data)

    def _flush(self) -> None:
        flags = socket.MSG_DONTWAIT | getattr(socket, "MSG_NOSIGNAL", 0)
        while self.outbox and not self.closed:
            data = self.outbox[0]
            try:
                self.sock.send(data, flags)
            except BlockingIOError:
                return
            except OSError as exc:
                log.debug("rpc: send to pid %s failed: %s", self.pid, exc)
                self.close()
                return
            self.outbox.popleft()
            self.outbytes -= len(data)
            if self.channel is not None:
                self.channel.on_sent()
        if not self.closed:
            self.server.loop.remove_writer(self.fd)

    def pause_reading(self) -> None:
        if self.reading and not self.closed:
            self.reading = False
            self.server.loop.remove_reader(self.fd)

    def resume_reading(self) -> None:
        if not self.reading and not self.closed:
            self.reading = True
            self.server.loop.add_reader(self.fd, lambda: self.server._on_readable(self))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.server._forget(self)
        self.server.loop.remove_reader(self.fd)
        self.server.loop.remove_writer(self.fd)
        self.outbox.clear()
        self.outbytes = 0
        try:
            self.sock.close()
        except OSError:
            pass
        pendings, self.pending = list(self.pending.values()), {}
        for p in pendings:
            try:
                p.cancel()
            except Exception:
                log.exception("rpc: error cancelling a pending reply")


_KEEP_RESIDENT = 64 * 1024  # receive-buffer bytes that may stay resident after a message


class RpcServer:
    def __init__(
        self,
        loop: Any,
        dispatch: Dispatch,
        socket_path: str,
        abstract_name: Optional[str] = protocol.ABSTRACT_NAME,
        socket_group: Optional[str] = "tcr",
        compat_dispatch: Optional[Dispatch] = None,
    ):
        self.loop = loop
        self.dispatch = dispatch
        self.compat_dispatch = compat_dispatch or dispatch  # for requests on the abstract socket
        self.socket_path = socket_path
        self.abstract_name = abstract_name
        self.socket_group = socket_group
        self._group_gid: Optional[int] = None
        self._listeners: List[socket.socket] = []
        self._dispatch_of: Dict[int, Dispatch] = {}  # listener fd -> its dispatcher
        self._conns: Dict[int, Connection] = {}
        # One receive buffer for all clients, in an anonymous mapping: a bytearray of MAX_MESSAGE
        # would be zero-filled, i.e. 1 MB resident from the start; mapped pages cost nothing until
        # a message that long arrives.
        self._buf = mmap.mmap(-1, protocol.MAX_MESSAGE + 1)
        self._token = 0
        self._inode: Optional[int] = None
        self._paused = False
        self._resume_timer: Any = None

    # ---- listening ---------------------------------------------------------------------------

    def start(self) -> None:
        """Bind and listen (tcr.rpc.listen: start-up only, dropped by tcrd once it listens)."""
        from tcr.rpc import listen

        listen.start(self)

    def _listen(self) -> None:
        for s in self._listeners:
            self.loop.add_reader(s.fileno(), lambda s=s: self._on_accept(s))

    def _pause(self, why: str) -> None:
        """Stop accepting until a client leaves or RESUME_AFTER passes (see the module doc)."""
        from tcr.common import oserrors

        oserrors.warn(log, "rpc.accept.pause", "rpc: %s (%d clients): not accepting new clients "
                      "until one leaves", why, len(self._conns))
        if not self._paused:
            self._paused = True
            for s in self._listeners:
                self.loop.remove_reader(s.fileno())
        if self._resume_timer is None:
            self._resume_timer = self.loop.call_later(RESUME_AFTER, self._resume)

    def _resume(self) -> None:
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
        if self._paused and self._listeners:
            self._paused = False
            self._listen()

    def _fds_short(self, fd: int) -> bool:
        """Would keeping this client leave fewer than FD_RESERVE fds free? fds are allocated
        lowest first, so a low number proves there is room; only high ones are counted."""
        limit = fd_limit()
        if fd < limit // 2 or len(self._conns) < MIN_CLIENTS:
            return False
        return limit - open_fds() < FD_RESERVE

    def close(self) -> None:
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
        for s in self._listeners:
            self.loop.remove_reader(s.fileno())
            s.close()
        self._listeners = []
        self._dispatch_of = {}
        for c in list(self._conns.values()):
            c.close()
        try:  # only our own socket: a newer daemon may have replaced it
            if self._inode is not None and os.stat(self.socket_path).st_ino == self._inode:
                os.unlink(self.socket_path)
        except OSError:
            pass
        self._inode = None

    # ---- connections -------------------------------------------------------------------------

    def allowed(self, pid: int, uid: int, gid: int) -> bool:
        """root, the daemon's own user, or a member of the socket group (primary or supplementary),
        and only from tcrd's own pid namespace: a container's root (say with --network host, which
        reaches the abstract socket) must not drive tcrd."""
        if not same_pid_namespace(pid):
            return False
        if uid == 0 or uid == os.geteuid():
            return True
        g = self._group_gid
        return g is not None and (gid == g or g in peer_groups(pid))

    def _on_accept(self, listener: socket.socket) -> None:
        for _ in range(_BATCH):
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _FD_ERRNOS:  # keep serving the others; no accept() spin
                    self._pause(f"accept failed: {exc.strerror}")
                elif exc.errno not in (errno.ECONNABORTED, errno.EPROTO):
                    from tcr.common import oserrors

                    oserrors.warn(log, "rpc.accept", "rpc: accept failed: %s", exc.strerror)
                return
            if self._fds_short(sock.fileno()):
                self._busy(sock)
                self._pause(f"at the file descriptor limit ({fd_limit()})")
                return
            sock.setblocking(False)
            try:
                creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                pid, uid, gid = struct.unpack("3i", creds)
            except OSError:
                sock.close()
                continue
            conn = Connection(self, sock, pid, uid, gid, self._dispatch_of.get(listener.fileno()))
            if not self.allowed(pid, uid, gid):
                log.info("rpc: refused uid %d (pid %d): not in group %s", uid, pid, self.socket_group)
                self._refuse(conn)
                continue
            try:  # replies up to MAX_MESSAGE must fit in one datagram
                sock.setsockopt(socket.SOL_SOCKET, _SO_SNDBUFFORCE, _SNDBUF)
            except OSError:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SNDBUF)
                except OSError:
                    pass
            self._conns[conn.fd] = conn
            self.loop.add_reader(conn.fd, lambda c=conn: self._on_readable(c))

    def _refuse(self, conn: Connection) -> None:
        # Drain what the client already sent: closing with unread data makes the kernel report
        # ECONNRESET to the client before our reply, which it would then never read.
        for _ in range(_BATCH):
            try:
                conn.sock.recvmsg_into([self._buf])
            except OSError:
                break
        conn.send(
            ErrorReply(
                0,
                INTERNAL,
                "permission denied",
                f"run as root or add the user to group '{self.socket_group or 'tcr'}'",
            )
        )
        conn.closed = True
        conn.sock.close()

    def _busy(self, sock: socket.socket) -> None:
        """Tell a client we cannot take it now and close it (what it sent is drained first: closing
        with unread data would reset the connection before it reads our reply)."""
        sock.setblocking(False)
        for _ in range(_BATCH):
            try:
                sock.recvmsg_into([self._buf])
            except OSError:
                break
        msg = ErrorReply(0, INTERNAL, f"tcrd is at its file descriptor limit ({fd_limit()})",
                         "try again later, close idle clients or raise tcrd's LimitNOFILE")
        try:
            sock.send(protocol.encode(msg), socket.MSG_DONTWAIT | getattr(socket, "MSG_NOSIGNAL", 0))
        except OSError:
            pass
        sock.close()

    def _forget(self, conn: Connection) -> None:
        if self._conns.get(conn.fd) is conn:
            del self._conns[conn.fd]
        if self._paused:
            self._resume()  # a client left: its fd is free again

    def _on_readable(self, conn: Connection) -> None:
        for _ in range(_BATCH):
            if conn.closed or not conn.reading:  # (paused by the last message: flow control)
                return
            try:
                n, _anc, flags, _addr = conn.sock.recvmsg_into([self._buf])
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                conn.close()
                return
            if n == 0:
                conn.close()  # peer closed (an empty datagram is not a request either)
                return
            if flags & socket.MSG_TRUNC or n > protocol.MAX_MESSAGE:
                self._release_buffer()
                conn.send(
                    ErrorReply(0, INVALID_ARGUMENT, f"message too large (max {protocol.MAX_MESSAGE} bytes)")
                )
                continue
            data = bytes(memoryview(self._buf)[:n])
            if n > _KEEP_RESIDENT:
                self._release_buffer()
            if conn.channel is not None:
                conn.channel.on_message(data)  # stdin frames and controls of an attached client
                continue
            self._handle(conn, data)

    def _release_buffer(self) -> None:
        """Give the pages of a long message back (they read as zeros afterwards)."""
        try:
            self._buf.madvise(mmap.MADV_DONTNEED)
        except (AttributeError, OSError):  # Python < 3.8 or no madvise: they stay, harmlessly
            pass

    def _handle(self, conn: Connection, data: bytes) -> None:
        try:
            req = protocol.decode_request(data)
        except ProtocolError as exc:
            conn.send(ErrorReply(exc.id, exc.code, exc.message))
            return
        channel = None
        if req.attach:
            from tcr.rpc.channel import Channel

            channel = Channel(conn, req.id, req.winsize)
        stream = None
        if req.stream:

            def stream(kind: str, text: str, _id=req.id) -> None:
                if text and not conn.closed:
                    out = StreamChunk(_id, stdout=text) if kind == "stdout" else StreamChunk(_id, stderr=text)
                    conn.send(out)

        try:
            extra = {"channel": channel} if channel is not None and _takes_channel(conn.dispatch) else {}
            out = conn.dispatch(req.method, req.args, req.pwd or "/", req.pid, conn.uid, conn.gid, stream,
                                **extra)
        except TcrError as exc:
            # Bad input is echoed back at most ECHO_MAX characters, whichever dialect built the error.
            conn.send(ErrorReply.from_exception(req.id, shorten_error(exc, req.args)))
            return
        except OSError as exc:  # a dispatcher that let a host failure through (disk full, fd limit)
            from tcr.common import oserrors

            err = oserrors.to_error(exc)
            oserrors.warn(log, f"rpc.{exc.errno}", "rpc: %s: %s", req.method[:64], err.message)
            conn.send(ErrorReply.from_exception(req.id, err))
            return
        except Exception as exc:
            log.exception("rpc: %s %s failed", req.method[:64], [str(a)[:64] for a in req.args[:16]])
            conn.send(ErrorReply(req.id, INTERNAL, f"internal error: {type(exc).__name__}: {exc}"[:500]))
            return
        self._reply(conn, req.id, out)

    def _reply(self, conn: Connection, rid: Union[int, float], out: Any) -> None:
        from tcr.commands.base import Pending

        if isinstance(out, Pending):
            self._token += 1
            token = self._token
            conn.pending[token] = out

            def send(final: Any) -> None:
                conn.pending.pop(token, None)
                if isinstance(final, BaseException):
                    from tcr.common import oserrors

                    err = oserrors.to_error(final)
                    conn.send(ErrorReply.from_exception(rid, err))
                else:
                    self._reply(conn, rid, final)
                if conn.channel is not None and conn.channel.rid == rid:
                    conn.channel.detach()  # after the final reply is sent or queued behind its frames

            out.bind(send)
            return
        if out is None or not hasattr(out, "exit_code"):
            conn.send(ErrorReply(rid, INTERNAL, "internal error: command returned no output"))
        elif out.exec_args:
            conn.send(ExecResult(rid, list(out.exec_args)))
        else:
            conn.send(Result(rid, int(out.exit_code), out.stdout or "", out.stderr or ""))


def _takes_channel(dispatch: Any) -> bool:
    """Does this dispatcher take the attach channel? (dispatchers of tests and tools may not)"""
    code = getattr(dispatch, "__code__", None)
    return code is not None and "channel" in code.co_varnames[:code.co_argcount]
