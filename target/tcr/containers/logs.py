"""Container logs: a size-capped set of rotating files fed from a FIFO the container writes to.

Design (why a FIFO): the container's stdout/stderr is the write side of <dir>/log.fifo, opened
O_RDWR by tcrd just for the start and then held only by the container. Because the container's own
fd is also a read end, a write never raises SIGPIPE/EPIPE when tcrd is gone (killed, restarting):
the pipe buffers (64 KiB) and then blocks the writer until tcrd opens the FIFO again and drains it.
tcrd reads it O_RDONLY|O_NONBLOCK from the event loop; EOF means every writer (the container and
anything it spawned) is gone.

On disk: container.log, container.log.1 ... container.log.<files-1>, each line a record in the
CRI log format "<RFC 3339 UTC timestamp> <stdout|stderr> <F|P> <bytes>\\n" (F: the bytes were
followed by a newline, P: a partial line; format version 2, docs/formats.md).
stdout and stderr have a FIFO each (log.fifo, err.fifo); a --tty container has one pty master.
Every file stays <= max_size bytes and there are never more
than max_files files, so the total is capped at max_size * max_files exactly. Lines longer than
LINE_MAX are split (P records); a record that cannot fit even an empty file is cut.

A full (or failing) log filesystem stops the log from growing, never the container: LogPump keeps
draining the FIFO, drops the records it cannot write (a half-written one is cut off again with
ftruncate, which needs no space), warns once a minute with the count, and writes again as soon
as a write succeeds.
"""

from __future__ import annotations

import errno
import os
import time

from tcr.common.log import get_logger

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Set, Tuple

    Subscriber = Callable[[str, Optional[bytes]], None]  # (stream, data); data None = end of output

log = get_logger("tcr.containers")

LINE_MAX = 16 * 1024
READ_CHUNK = 64 * 1024
DEFAULT_SIZE = 1024 * 1024
DEFAULT_FILES = 2


def timestamp(now: Optional[float] = None) -> str:
    t = time.time() if now is None else now
    whole = int(t)
    frac = int((t - whole) * 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{frac:06d}Z"


class RotatingLog:
    """Append-only writer over container.log(.N) with an exact size cap."""

    def __init__(self, path: str, max_size: int = DEFAULT_SIZE, max_files: int = DEFAULT_FILES):
        self.path = path
        self.max_size = max(1, max_size)
        self.max_files = max(1, max_files)
        self._fd: Optional[int] = None
        self._size = 0

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            self._size = os.fstat(self._fd).st_size
            if self._size > self.max_size:  # the cap was lowered: start a fresh file
                self._rotate()
        return self._fd

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        # Shift .N-2 -> .N-1 ... current -> .1 (the oldest falls off); with one file, O_TRUNC below.
        for i in range(self.max_files - 1, 0, -1):
            src = self.path if i == 1 else f"{self.path}.{i - 1}"
            if os.path.exists(src):
                os.replace(src, f"{self.path}.{i}")
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                           0o640)
        self._size = 0

    def write_record(self, rec: bytes) -> None:
        """Write one whole record (a line): never split across files, never over the cap."""
        if len(rec) > self.max_size:
            rec = rec[: self.max_size - 1] + b"\n"
        self._open()
        if self._size + len(rec) > self.max_size:
            self._rotate()
        assert self._fd is not None
        view = memoryview(rec)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError:
            if len(view) != len(rec):  # cut the partial record off: whole lines only
                try:
                    os.ftruncate(self._fd, self._size)
                except OSError:
                    pass
            raise
        self._size += len(rec)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def files(self) -> List[str]:
        """Existing log files, oldest first."""
        return log_files(self.path, self.max_files)


def log_files(path: str, max_files: int = 64) -> List[str]:
    out = [f"{path}.{i}" for i in range(max_files - 1, 0, -1) if os.path.exists(f"{path}.{i}")]
    if os.path.exists(path):
        out.append(path)
    return out


class LineFramer:
    """Bytes of one stream -> timestamped log records (CRI format, see the module doc).

    A line longer than LINE_MAX is cut into P(artial) records and its last piece is F(ull); a
    last line without a newline is flushed as P, so reading back restores the bytes exactly.
    """

    def __init__(self, stream: str = "stdout") -> None:
        self.tag = b" " + stream.encode() + b" "
        self._partial = b""

    def feed(self, data: bytes, now: Optional[float] = None) -> List[bytes]:
        buf = self._partial + data if self._partial else data
        lines = buf.split(b"\n")
        self._partial = lines.pop()
        out: List[bytes] = []
        ts = timestamp(now).encode()
        for line in lines:
            out.extend(self._records(ts, line, True))
        while len(self._partial) >= LINE_MAX:
            out.extend(self._records(ts, self._partial[:LINE_MAX], False))
            self._partial = self._partial[LINE_MAX:]
        return out

    def flush(self, now: Optional[float] = None) -> List[bytes]:
        if not self._partial:
            return []
        rest, self._partial = self._partial, b""
        return self._records(timestamp(now).encode(), rest, False)

    def _records(self, ts: bytes, line: bytes, full: bool) -> List[bytes]:
        head = ts + self.tag
        if len(line) <= LINE_MAX:
            return [head + (b"F " if full else b"P ") + line + b"\n"]
        pieces = [line[i:i + LINE_MAX] for i in range(0, len(line), LINE_MAX)]
        return [head + (b"F " if full and i == len(pieces) - 1 else b"P ") + piece + b"\n"
                for i, piece in enumerate(pieces)]


def parse_record(rec: bytes) -> Tuple[bytes, str, bytes]:
    """One stored record without its newline -> (timestamp, "stdout"|"stderr", bytes as written).

    Records of tcr <= 0.x ("<ts> <text>", no stream) read as stdout full lines.
    """
    ts, _, rest = rec.partition(b" ")
    if rest[:9] == b"stdout F " or rest[:9] == b"stderr F ":
        return ts, rest[:6].decode(), rest[9:] + b"\n"
    if rest[:9] == b"stdout P " or rest[:9] == b"stderr P ":
        return ts, rest[:6].decode(), rest[9:]
    return ts, "stdout", rest + b"\n"


class LogPump:
    """Drains a container's output (stdout/stderr FIFOs, or a pty master) from the event loop into
    its log sink, and hands the raw bytes to subscribers (attached clients, logs -f).

    pause()/resume() stop reading (the container then blocks on a full pipe): that is how a slow
    attached client or follower pushes back with bounded memory in tcrd.
    """

    def __init__(self, loop, fifo_path: str, log: Any, err_fifo: Optional[str] = None,
                 fds: Optional[List[Tuple[int, str]]] = None):
        self.loop = loop
        self.fifo_path = fifo_path
        self.err_fifo = err_fifo
        self.log = log  # RotatingLog, SyslogSink or NullSink: write_record(bytes), close()
        self.framers = {"stdout": LineFramer("stdout"), "stderr": LineFramer("stderr")}
        self.sources: Dict[int, str] = {}  # fd -> stream
        self._given = list(fds or [])
        self.subscribers: List[Subscriber] = []
        self.followers: List[Callable[[Optional[bytes]], None]] = []  # records (None = end)
        self._paused: Set[Any] = set()
        self.dropped = 0  # records lost to a full or failing log filesystem (since the last warning)
        self._started = False

    @property
    def fd(self) -> Optional[int]:
        return next(iter(self.sources), None)

    def open(self) -> None:
        """Open the read sides (never blocks: O_NONBLOCK) and start reading."""
        if self._started:
            return
        self._started = True
        for fd, stream in self._given:
            os.set_blocking(fd, False)
            self.sources[fd] = stream
        if not self._given:
            for path, stream in ((self.fifo_path, "stdout"), (self.err_fifo, "stderr")):
                if path and os.path.exists(path):
                    self.sources[os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)] = stream
        for fd in self.sources:
            self.loop.add_reader(fd, lambda fd=fd: self._on_readable(fd))

    @property
    def paused(self) -> bool:
        return bool(self._paused)

    def pause(self, who: Any) -> None:
        if not self._paused:
            for fd in self.sources:
                self.loop.remove_reader(fd)
        self._paused.add(who)

    def resume(self, who: Any) -> None:
        if who in self._paused:
            self._paused.discard(who)
            if not self._paused:
                for fd in self.sources:
                    self.loop.add_reader(fd, lambda fd=fd: self._on_readable(fd))

    def _read(self, fd: int) -> Optional[bytes]:
        try:
            return os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return None
        except InterruptedError:
            return None
        except OSError as exc:  # EIO: the pty's other side is closed
            if exc.errno in (errno.EAGAIN, errno.EINTR):
                return None
            return b""

    def _on_readable(self, fd: int) -> None:
        # A bounded number of chunks per wake-up, so a chatty container cannot starve the loop.
        for _ in range(4):
            if fd not in self.sources or self._paused:
                return
            data = self._read(fd)
            if data is None:
                return
            if not data:
                self._eof(fd)
                return
            self._got(self.sources[fd], data)
            if len(data) < READ_CHUNK:
                return

    def _got(self, stream: str, data: bytes) -> None:
        self._write(self.framers[stream].feed(data))
        for s in list(self.subscribers):
            s(stream, data)

    def _write(self, records: List[bytes]) -> None:
        for i, rec in enumerate(records):
            try:
                self.log.write_record(rec)
            except OSError as exc:
                self._dropped(len(records) - i, exc)
                break
        if records and self.followers:
            blob = b"".join(records)
            for f in list(self.followers):
                f(blob)

    def _dropped(self, n: int, exc: OSError) -> None:
        from tcr.common import oserrors

        self.dropped += n
        self.log.close()  # reopened (and its size re-read) by the next write
        if oserrors.warn(log, f"log.{self.log.path}", "%s: %d log lines dropped: %s", self.log.path,
                         self.dropped, oserrors.describe(exc, self.log.path)):
            self.dropped = 0

    def drain(self, max_chunks: int = 16) -> None:
        """Read what is buffered now (e.g. right after the container exited), at most max_chunks
        reads per stream: a container that keeps writing must not hold the loop here."""
        for fd in list(self.sources):
            for _ in range(max_chunks):
                if fd not in self.sources:
                    break
                data = self._read(fd)
                if data is None:
                    break
                if not data:
                    self._eof(fd)
                    break
                self._got(self.sources[fd], data)

    def _eof(self, fd: int) -> None:
        stream = self.sources.pop(fd)
        self.loop.remove_reader(fd)
        os.close(fd)
        self._write(self.framers[stream].flush())
        if not self.sources:
            self.close()

    def close(self) -> None:
        for fd in list(self.sources):
            self.loop.remove_reader(fd)
            os.close(fd)
        self.sources = {}
        for fr in self.framers.values():
            self._write(fr.flush())
        self.log.close()
        followers, self.followers = self.followers, []
        for f in followers:
            f(None)
        subs, self.subscribers = self.subscribers, []
        for s in subs:
            s("stdout", None)


class NullSink:
    """--log-driver none: nothing is kept."""

    def write_record(self, rec: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def make_fifo(path: str) -> None:
    try:
        os.mkfifo(path, 0o600)
    except FileExistsError:
        pass


def open_writer(path: str) -> int:
    """The container's end: O_RDWR so the pipe always has a reader (no SIGPIPE without tcrd)."""
    return os.open(path, os.O_RDWR | os.O_CLOEXEC)
