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
        self.pos = 0
        self.count = 0  # tar bytes moved (docker's "Successfully copied" size)
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
            self.count += len(msg) - 1
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

    # container -> here: a file object for tarfile (which reads 10 KiB at a time from 64 KiB frames)
    def read(self, n: int = -1) -> bytes:
        while self.pos >= len(self.buf) and self.final is None:
            self.buf, self.pos = self._message(), 0
        if self.pos == 0 and (n < 0 or n >= len(self.buf)):
            data, self.buf = self.buf, b""
            return data
        end = len(self.buf) if n < 0 else self.pos + n
        data = self.buf[self.pos:end]
        self.pos += len(data)
        return data

    def wait(self) -> int:
        """Drain to the final reply (the end of a tar may be followed by padding)."""
        while self.final is None:
            self.buf, self.pos = b"", 0
            self._message()
        return self.final

    # here -> container: a file object for tarfile (and raw stdin)
    def write(self, data) -> int:
        if self.final is not None or self.sock.fileno() < 0:
            return len(data)  # tcrd answered, or we gave up (tarfile may still flush at its end)
        view = memoryview(data)
        self.count += len(view)
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


def human_size(n: float) -> str:
    """docker's units.HumanSize: 4 significant digits, decimal units (2.56kB, 210MB)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.4g}{units[i]}"


def run(sock, announce, rid: int, where: str) -> int:
    info = announce["cp"]
    conn = Conn(sock, rid, where)
    local = info.get("local")
    if not isinstance(local, str) or not local:
        raise RpcError(7, "invalid reply from tcrd: cp without a local path")
    if info.get("direction") == "from":
        code = _to_stdout(conn) if local == "-" else _extract_here(conn, local, info)
        dest = local
    else:
        try:
            if local == "-":
                _stdin_to(conn)
            else:
                _send_tree(conn, local, info)
            code = conn.wait()
        except _Done as done:
            code = done.code
        dest = f"{info.get('container')}:{info.get('path')}"
    if code == 0 and local != "-" and not info.get("quiet") and os.isatty(2):
        sys.stderr.write(f"Successfully copied {human_size(conn.count)} to {dest}\n")  # (docker's line)
    return code


def _to_stdout(conn: Conn) -> int:
    while True:
        data = conn.read(FRAME)
        if not data:
            return conn.wait()
        _write_all(1, data)


def _extract_here(conn: Conn, local: str, info) -> int:
    skipped = extract_into(conn, local, bool(info.get("archive")))
    code = conn.wait()
    _warn_devices(skipped)
    return code


def _warn_devices(skipped: int) -> None:
    if skipped:
        sys.stderr.write(f"tcr: cp: skipped {skipped} device node(s): tcr cp does not create device "
                         "nodes on this side\n")


def extract_into(reader, local: str, archive: bool) -> int:
    """Extract the tar `reader` gives (its first member is the source) to the local path per
    docker's rules; returns how many device nodes were skipped."""
    from tcr.containers import cparchive, cpplan

    dst_raw = local_path(local)
    dst = cpplan.dest_info(dst_raw, _kind, os.readlink)
    tar = cparchive.open_stream(reader)
    it = cparchive.members(tar)
    first = next(it, None)
    if first is None:
        return 0
    top = cpplan.names(first.name)
    if len(top) > 1:
        raise cpplan.CpError("invalid copy source content: the first entry must be the source itself")
    p = cpplan.plan(first.isdir(), top, dst, local)
    # From a container to this machine: no device nodes, and set-id bits only with -a (a hostile
    # image must not hand `root` a set-uid root program that other users here can run).
    ex = cparchive.Extractor(p.dir, p.rename, keep_owners=archive and os.geteuid() == 0, devices=False,
                             setid=archive)
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
    return ex.skipped_devices


def _stdin_to(conn: Conn) -> None:
    while True:
        data = os.read(0, FRAME)
        if not data:
            break
        conn.write(data)
    conn._send(b"\x00")


def _send_tree(conn: Conn, local: str, info) -> None:
    send_tree(conn, local, bool(info.get("followLink")))
    conn._send(b"\x00")


def send_tree(writer, local: str, follow: bool) -> None:
    """A tar of the local path into `writer`, its top entry named as docker names it."""
    from tcr.containers import cparchive, cpplan

    path = local_path(local)
    st_kind = _kind(path)
    if st_kind is None:
        raise cpplan.CpError(f"lstat {path}: no such file or directory")
    src = path
    if follow and st_kind == "link":
        import posixpath

        src = posixpath.realpath(path)
        if _kind(src) is None:
            raise cpplan.CpError(f"lstat {src}: no such file or directory")
    w = cparchive.Writer(writer)
    w.add_tree(src, cpplan.top_name(path))
    w.close()


def remote(target, options, socket, args) -> Optional[int]:
    """`tcr -H ssh://... cp` with a local path: the copy's local side is here, as with docker's
    client (the remote tcr streams with `-`); None when there is nothing local to do (a `-`,
    or arguments tcr's daemon should judge), and the command is run remotely as it is."""
    from tcr.cli import ssh
    from tcr.common.run import spawn
    from tcr.containers.cpplan import split_arg

    flags, pos, rest = [], [], list(args)
    while rest:
        a = rest.pop(0)
        if a == "--":
            pos += rest
            break
        if a.startswith("-") and a != "-":
            if a not in ("-a", "--archive", "-L", "--follow-link", "-aL", "-La", "-q", "--quiet"):
                return None
            flags.append(a)
        else:
            pos.append(a)
    if len(pos) != 2:
        return None
    (sc, _sp), (dc, _dp) = split_arg(pos[0]), split_arg(pos[1])
    if (sc is None) == (dc is None) or "-" in pos:
        return None
    archive = any(f in ("-a", "--archive", "-aL", "-La") for f in flags)
    follow = any(f in ("-L", "--follow-link", "-aL", "-La") for f in flags)
    if sc is None and _kind(local_path(pos[0])) is None:  # before anything runs on the board
        from tcr.containers.cpplan import CpError

        raise CpError(f"lstat {local_path(pos[0])}: no such file or directory")
    remote_args = [*flags, pos[0], "-"] if sc is not None else [*flags, "--tar-source", "-", pos[1]]
    command = ssh.remote_command([*ssh.remote_tcr(socket), "cp", *remote_args])
    argv = ssh.ssh_argv(target, command, tty=False, batch=True, options=options)
    r, w = os.pipe()
    if sc is not None:
        pid = spawn(argv, stdout=w, stderr=2)
        os.close(w)
        with open(r, "rb", buffering=FRAME) as f:
            skipped = extract_into(f, pos[1], archive)
            while f.read(FRAME):
                pass  # the end of the archive may be followed by padding
    else:
        pid = spawn(argv, stdin=r, stderr=2)
        os.close(r)
        try:
            with open(w, "wb", buffering=FRAME) as f:
                send_tree(f, pos[0], follow)
        except BrokenPipeError:
            pass  # the remote side ended early: its message is on stderr, its code below
        skipped = 0
    from tcr.cli.main import status_code

    _pid, status = os.waitpid(pid, 0)
    code = status_code(status)
    if code == 0:
        _warn_devices(skipped)
    return code
