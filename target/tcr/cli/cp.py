"""`tcr cp`, the client's side: the local files (docs/cli.md "cp", wire: tcr.commands.cp).

tcrd parses the arguments and serves the container side; its announcement says which way the
copy goes and what the local argument is. Container -> here: the tar arriving in 0x01 frames is
extracted per docker's rules (tcr.containers.cpplan), or written to stdout as it is for `-`.
Here -> container: a tar of the local path (or stdin as it is, for `-`) is sent in 0x00 frames;
tcrd's worker extracts it. Imported only for `tcr cp` (it loads tarfile).
"""

from __future__ import annotations

import _socket
import posix as os
import select
import sys

from tcr.rpc.client import ConnectError, RpcError, loads, parse_reply, recv_message

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

FRAME = 64 * 1024


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _Done(Exception):
    """The final reply arrived (while we were still sending)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


class Conn:
    """The data channel's messages, for a copy: frames in, frames out, the final reply."""

    def __init__(self, sock, rid: int, where: str):
        self.sock = sock
        self.rid = rid
        self.where = where
        self.buf = b""
        self.final: Optional[int] = None  # exit code once the final reply came

    def _message(self):
        """One message from tcrd: returns stdout bytes of a frame, or b"" for anything else."""
        try:
            msg = recv_message(self.sock)
        except OSError as exc:
            raise ConnectError(self.where, exc.strerror or str(exc))
        if msg is None:
            raise ConnectError(self.where, "connection closed by tcrd before the reply")
        kind = msg[:1]
        if kind == b"\x01":
            return msg[1:]
        if kind == b"\x02":
            _write_all(2, memoryview(msg)[1:])
            return b""
        if kind != b"{":
            return b""
        try:
            obj = loads(msg)
        except ValueError:
            raise RpcError(7, "invalid reply from tcrd: malformed JSON")
        reply = parse_reply(obj)
        if obj.get("id") != self.rid and not (reply["kind"] == "error" and obj.get("id") == 0):
            return b""
        if reply["kind"] == "error":
            raise RpcError(reply["code"], reply["message"], reply["hint"])
        if reply["kind"] == "result":
            _write_all(1, reply["stdout"].encode("utf-8", "replace"))
            _write_all(2, reply["stderr"].encode("utf-8", "replace"))
            code = reply["exit_code"]
            self.final = code if 0 <= code <= 255 else 1
        return b""

    # container -> here: a file object for tarfile
    def read(self, n: int = -1) -> bytes:
        while not self.buf and self.final is None:
            self.buf = self._message()
        if n < 0 or n >= len(self.buf):
            data, self.buf = self.buf, b""
        else:
            data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def wait(self) -> int:
        """Drain to the final reply (the end of a tar may be followed by padding)."""
        while self.final is None:
            self.buf = b""
            self._message()
        return self.final

    # here -> container: a file object for tarfile (and raw stdin)
    def write(self, data) -> int:
        view = memoryview(data)
        for i in range(0, len(view), FRAME):
            self._send(b"\x00" + bytes(view[i:i + FRAME]))
        return len(data)

    def flush(self) -> None:
        pass

    def _send(self, frame: bytes) -> None:
        """Send one frame; meanwhile read what tcrd says: its final reply (an error, or the end
        of the extraction) stops the copy."""
        while True:
            r, w, _x = select.select([self.sock], [self.sock], [])
            if self.sock in r:
                self._message()
                if self.final is not None:
                    raise _Done(self.final)
            if self.sock in w:
                try:
                    self.sock.send(frame, _socket.MSG_DONTWAIT)
                    return
                except BlockingIOError:
                    continue
                except OSError as exc:
                    raise ConnectError(self.where, exc.strerror or str(exc))


def local_path(arg: str) -> str:
    """docker's resolveLocalPath: absolute, keeping a trailing '/' or '/.'."""
    import posixpath

    path = posixpath.normpath(posixpath.join(os.getcwd(), arg))
    if arg.endswith("/.") or arg == ".":
        return path.rstrip("/") + "/." if path != "/" else "/."
    if arg.endswith("/") and path != "/":
        return path + "/"
    return path


def _kind(path: str):
    import stat

    from tcr.containers.cpplan import CpError

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise CpError(f"not a directory: {path}")
    return "dir" if stat.S_ISDIR(st.st_mode) else "link" if stat.S_ISLNK(st.st_mode) else "file"


def run(sock, announce, rid: int, where: str) -> int:
    info = announce["cp"]
    conn = Conn(sock, rid, where)
    local = info.get("local")
    if not isinstance(local, str) or not local:
        raise RpcError(7, "invalid reply from tcrd: cp without a local path")
    if info.get("direction") == "from":
        if local == "-":
            return _to_stdout(conn)
        return _extract_here(conn, local, info)
    try:
        if local == "-":
            _stdin_to(conn)
        else:
            _send_tree(conn, local, info)
    except _Done as done:
        return done.code
    return conn.wait()


def _to_stdout(conn: Conn) -> int:
    while True:
        data = conn.read(FRAME)
        if not data:
            return conn.wait()
        _write_all(1, data)


def _extract_here(conn: Conn, local: str, info) -> int:
    from tcr.containers import cparchive, cpplan

    dst_raw = local_path(local)
    dst = cpplan.dest_info(dst_raw, _kind, os.readlink)
    tar = cparchive.open_stream(conn)  # type: ignore[arg-type]
    it = cparchive.members(tar)
    first = next(it, None)
    if first is None:
        return conn.wait()
    top = cpplan.names(first.name)
    if len(top) > 1:
        raise cpplan.CpError("invalid copy source content: the first entry must be the source itself")
    p = cpplan.plan(first.isdir(), top, dst, local)
    keep = bool(info.get("archive")) and os.geteuid() == 0
    ex = cparchive.Extractor(p.dir, p.rename, keep_owners=keep, devices=False)
    try:
        ex.add(tar, first)
        for ti in it:
            ex.add(tar, ti)
        ex.finish()
    except OSError as exc:
        raise cpplan.CpError(f"cannot copy to {local}: {exc.strerror}"
                             + (f": {exc.filename}" if isinstance(exc.filename, str) else ""))
    except Exception as exc:
        bad = cparchive.bad_archive(exc)
        if bad is not None:
            raise bad from None
        raise
    finally:
        ex.close()
    code = conn.wait()
    if ex.skipped_devices:
        sys.stderr.write(f"tcr: cp: skipped {ex.skipped_devices} device node(s): tcr cp does not "
                         "create device nodes on this side\n")
    return code


def _stdin_to(conn: Conn) -> None:
    while True:
        data = os.read(0, FRAME)
        if not data:
            break
        conn.write(data)
    conn._send(b"\x00")


def _send_tree(conn: Conn, local: str, info) -> None:
    from tcr.containers import cparchive, cpplan

    path = local_path(local)
    try:
        st_kind = _kind(path)
    except cpplan.CpError:
        raise
    if st_kind is None:
        raise cpplan.CpError(f"lstat {path}: no such file or directory")
    src = path
    if info.get("followLink") and st_kind == "link":
        import posixpath

        src = posixpath.realpath(path)
        if _kind(src) is None:
            raise cpplan.CpError(f"lstat {src}: no such file or directory")
    w = cparchive.Writer(conn)  # type: ignore[arg-type]
    w.add_tree(src, cpplan.top_name(path))
    w.close()
    conn._send(b"\x00")
