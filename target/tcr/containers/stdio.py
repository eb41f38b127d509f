"""A container's stdio as tcrd sets it up for every start (foreground or detached).

- stdout and stderr: the write sides of log.fifo and err.fifo (see tcr.containers.logs for why
  FIFOs: the container never gets SIGPIPE while tcrd restarts); tcrd's LogPump reads both.
- stdin: /dev/null, or with -i a pipe whose write end tcrd keeps (attach.StdinWriter), so stdin
  reaches the container only when asked for, and stays open for a later `attach` with -di.
- --tty: crun creates the pty and passes its master over console.sock (SCM_RIGHTS, crun's
  --console-socket); tcrd keeps the master: output goes through the pump, input and window size
  are written to it. The container is created first, the window size set, then started, so the
  process sees the client's size from its first instruction.
"""

from __future__ import annotations

import os
import struct

from tcr.common.errors import TcrError
from tcr.containers import logs as clogs
from tcr.kernel import sockets as socket

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, List, Optional, Tuple


class Stdio:
    def __init__(self) -> None:
        self.stdin: Optional[int] = None  # fd crun gets as stdin (None = /dev/null)
        self.stdout: Optional[int] = None
        self.stderr: Optional[int] = None
        self.stdin_writer_fd: Optional[int] = None  # tcrd's end of the stdin pipe
        self.console: Optional[socket.socket] = None  # listener for crun's --console-socket
        self.master: Optional[int] = None  # the pty master (tty only)

    def crun_fds(self) -> List[int]:
        return [fd for fd in (self.stdin, self.stdout, self.stderr) if fd is not None]

    def close_crun_side(self) -> None:
        """After crun ran: the container holds its own copies."""
        for attr in ("stdin", "stdout", "stderr"):
            fd = getattr(self, attr)
            if fd is not None:
                os.close(fd)
                setattr(self, attr, None)
        if self.console is not None:
            self.console.close()
            self.console = None

    def close_all(self) -> None:
        self.close_crun_side()
        for attr in ("stdin_writer_fd", "master"):
            fd = getattr(self, attr)
            if fd is not None:
                os.close(fd)
                setattr(self, attr, None)


def open_stdio(paths: Any, interactive: bool, tty: bool) -> Stdio:
    s = Stdio()
    try:
        if tty:
            try:
                os.unlink(paths.console_sock)
            except FileNotFoundError:
                pass
            ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            s.console = ls
            ls.bind(paths.console_sock)
            ls.listen(1)
            return s
        clogs.make_fifo(paths.log_fifo)
        clogs.make_fifo(paths.err_fifo)
        s.stdout = clogs.open_writer(paths.log_fifo)
        s.stderr = clogs.open_writer(paths.err_fifo)
        if interactive:
            r, w = os.pipe2(os.O_CLOEXEC)
            s.stdin, s.stdin_writer_fd = r, w
    except BaseException:
        s.close_all()
        raise
    return s


def receive_master(s: Stdio) -> int:
    """The pty master crun sent to console.sock (crun has connected and sent by the time it exits)."""
    assert s.console is not None
    s.console.setblocking(False)
    try:
        conn, _ = s.console.accept()
    except BlockingIOError:
        raise TcrError("crun did not send the container's terminal")
    with conn:
        conn.setblocking(False)
        fds: List[int] = []  # C ints (not the array module: it imports collections, docs/profile.md)
        try:
            _msg, anc, _flags, _addr = conn.recvmsg(4096, socket.CMSG_SPACE(4))
        except BlockingIOError:
            raise TcrError("crun did not send the container's terminal")
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds.extend(struct.unpack(f"{len(data) // 4}i", data[: len(data) - len(data) % 4]))
    if not fds:
        raise TcrError("crun did not send the container's terminal")
    for extra in fds[1:]:
        os.close(extra)
    master = fds[0]
    os.set_inheritable(master, False)
    s.master = master
    return master


def set_winsize(fd: int, rows: int, cols: int) -> None:
    import fcntl
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def get_winsize(fd: int) -> Tuple[int, int]:
    import fcntl
    import termios

    rows, cols, _x, _y = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, cols
