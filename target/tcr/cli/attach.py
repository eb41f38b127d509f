"""The client's side of the attach data channel (wire: docs/formats.md "Attach channel").

Imported only once tcrd announced a channel (foreground run, start -a, attach, logs). The client
copies frames to its stdout/stderr, its stdin (only when tcrd asked: -i) to tcrd, forwards the
signals it gets (no tty: docker's --sig-proxy) or its window size (tty), and watches stdin for
the detach keys. Ending the client in any way only detaches: the container is tcrd's.

Sends never block the client for good: a stdin frame tcrd is not ready for waits while the client
keeps reading output (else a container blocked on a full stdout pipe and a client blocked on a
full socket would wait for each other).
"""

import _signal  # not `signal`, which imports enum (~3 ms of every foreground run)
import _socket
import posix as os  # not `os`: ~1 ms of every foreground run (tcr.common.leanos)
import select

from tcr.rpc.client import ConnectError, RpcError, loads, parse_reply, recv_message, terminal_size

CHUNK = 64 * 1024
FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCONT",
             "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGPROF", "SIGVTALRM", "SIGXCPU", "SIGXFSZ", "SIGPWR")


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _Detach:
    """Matches the detach key sequence across reads; keeps bytes that only looked like its start."""

    def __init__(self, keys: bytes):
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes):
        """-> (bytes to send, detached?)"""
        if not self.keys:
            return data, False
        out = bytearray()
        for b in data:
            self.held += bytes((b,))
            if self.keys.startswith(self.held):
                if self.held == self.keys:
                    return bytes(out), True
                continue
            out += self.held
            self.held = b""
        return bytes(out), False


def _set_raw(fd: int):
    """cfmakeraw (as tty.setraw, without importing tty); returns the old attributes."""
    import termios as T

    old = T.tcgetattr(fd)
    new = list(old)
    new[0] &= ~(T.IGNBRK | T.BRKINT | T.PARMRK | T.ISTRIP | T.INLCR | T.IGNCR | T.ICRNL | T.IXON)
    new[1] &= ~T.OPOST
    new[2] &= ~(T.CSIZE | T.PARENB)
    new[2] |= T.CS8
    new[3] &= ~(T.ECHO | T.ECHONL | T.ICANON | T.ISIG | T.IEXTEN)
    new[6] = list(new[6])
    new[6][T.VMIN] = 1
    new[6][T.VTIME] = 0
    T.tcsetattr(fd, T.TCSAFLUSH, new)
    return old


def run(sock, announce, rid: int, where: str) -> int:
    stdin_on = announce["stdin"]
    tty = announce["tty"]
    detach = _Detach(announce["detach_keys"] if stdin_on else b"")
    flags = _socket.MSG_DONTWAIT

    def control(obj) -> None:
        from tcr.rpc.client import dumps

        try:
            sock.send(dumps({"id": rid, "control": obj}).encode(), flags)
        except OSError:
            pass  # a control message that does not fit now is lost, like a signal under load

    restore = []
    old_attrs = None
    if tty and stdin_on and os.isatty(0):
        old_attrs = _set_raw(0)
    if tty:
        def winch(_s, _f) -> None:
            size = terminal_size()
            if size is not None:
                control({"resize": size})

        restore.append((_signal.SIGWINCH, _signal.signal(_signal.SIGWINCH, winch)))
    elif announce["sig_proxy"]:
        names = {getattr(_signal, n): n for n in FORWARDED if hasattr(_signal, n)}

        def forward(signum, _f) -> None:
            control({"signal": names.get(signum, str(signum))})

        for sig in names:
            restore.append((sig, _signal.signal(sig, forward)))
    pending = b""  # a stdin frame waiting for room in the socket
    reading_stdin = stdin_on
    try:
        while True:
            rlist = [sock]
            if reading_stdin and not pending:
                rlist.append(0)
            try:
                r, w, _x = select.select(rlist, [sock] if pending else [], [])
            except InterruptedError:
                continue
            if pending and sock in w:
                try:
                    sock.send(pending, flags)
                    pending = b""
                except BlockingIOError:
                    pass
                except OSError as exc:
                    raise ConnectError(where, exc.strerror or str(exc))
            if 0 in r:
                data = os.read(0, CHUNK)
                if not data:
                    reading_stdin = False
                    pending = b"\x00"
                else:
                    data, detached = detach.feed(data)
                    if data:
                        pending = b"\x00" + data
                    if detached:
                        if tty:
                            os.write(1, b"\r\n")  # the prompt the container printed has no newline
                        return 0
                if pending:
                    try:
                        sock.send(pending, flags)
                        pending = b""
                    except BlockingIOError:
                        pass
                    except OSError as exc:
                        raise ConnectError(where, exc.strerror or str(exc))
            if sock in r:
                try:
                    msg = recv_message(sock)
                except OSError as exc:
                    raise ConnectError(where, exc.strerror or str(exc))
                if msg is None:
                    raise ConnectError(where, "connection closed by tcrd before the reply")
                kind = msg[:1]
                if kind == b"\x01":
                    _write_all(1, memoryview(msg)[1:])
                    continue
                if kind == b"\x02":
                    _write_all(2, memoryview(msg)[1:])
                    continue
                if kind != b"{":
                    continue
                try:
                    obj = loads(msg)
                except ValueError:
                    raise RpcError(7, "invalid reply from tcrd: malformed JSON")
                reply = parse_reply(obj)
                if obj.get("id") != rid and not (reply["kind"] == "error" and obj.get("id") == 0):
                    continue
                if reply["kind"] == "error":
                    raise RpcError(reply["code"], reply["message"], reply["hint"])
                if reply["kind"] == "stream":
                    _write_all(1, reply["stdout"].encode("utf-8", "replace"))
                    _write_all(2, reply["stderr"].encode("utf-8", "replace"))
                    continue
                if reply["kind"] == "result":
                    _write_all(1, reply["stdout"].encode("utf-8", "replace"))
                    _write_all(2, reply["stderr"].encode("utf-8", "replace"))
                    code = reply["exit_code"]
                    return code if 0 <= code <= 255 else 1
    finally:
        for sig, old in restore:
            _signal.signal(sig, old)
        if old_attrs is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, old_attrs)
