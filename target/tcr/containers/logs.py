"""Container logs: a size-capped set of rotating files fed from a FIFO the container writes to.

Design (why a FIFO): the container's stdout/stderr is the write side of <dir>/log.fifo, opened
O_RDWR by tcrd just for the start and then held only by the container. Because the container's own
fd is also a read end, a write never raises SIGPIPE/EPIPE when tcrd is gone (killed, restarting):
the pipe buffers (64 KiB) and then blocks the writer until tcrd opens the FIFO again and drains it.
tcrd reads it O_RDONLY|O_NONBLOCK from the event loop; EOF means every writer (the container and
anything it spawned) is gone.

On disk: container.log, container.log.1 ... container.log.<files-1>, each line
"<RFC 3339 UTC timestamp> <text>\\n". Every file stays <= max_size bytes and there are never more
than max_files files, so the total is capped at max_size * max_files exactly. Lines longer than
LINE_MAX are split; a line that cannot fit even an empty file is cut.

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
    from typing import Callable, List, Optional

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
    """Bytes from the FIFO -> timestamped line records; keeps a partial last line."""

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, data: bytes, now: Optional[float] = None) -> List[bytes]:
        buf = self._partial + data
        lines = buf.split(b"\n")
        self._partial = lines.pop()
        out = []
        ts = timestamp(now).encode()
        for line in lines:
            out.extend(_records(ts, line))
        while len(self._partial) >= LINE_MAX:
            out.extend(_records(ts, self._partial[:LINE_MAX]))
            self._partial = self._partial[LINE_MAX:]
        return out

    def flush(self, now: Optional[float] = None) -> List[bytes]:
        if not self._partial:
            return []
        rest, self._partial = self._partial, b""
        return _records(timestamp(now).encode(), rest)


def _records(ts: bytes, line: bytes) -> List[bytes]:
    return [ts + b" " + line[i:i + LINE_MAX] + b"\n" for i in range(0, max(1, len(line)), LINE_MAX)]


def split_record(rec: str):
    """'<ts> <text>' -> (ts, text)."""
    ts, _sep, text = rec.partition(" ")
    return ts, text


def read_lines(path: str, max_files: int, tail: Optional[int] = None) -> List[str]:
    """Stored records (without their newline), oldest first; only the last `tail` if given."""
    lines: List[str] = []
    for p in reversed(log_files(path, max_files)):  # newest file first, stop once we have enough
        try:
            with open(p, "rb") as f:
                chunk = f.read().decode("utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            continue
        lines[:0] = chunk
        if tail is not None and len(lines) >= tail:
            break
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    return lines


def format_lines(records: List[str], timestamps: bool) -> str:
    if not records:
        return ""
    if timestamps:
        return "\n".join(records) + "\n"
    return "\n".join(split_record(r)[1] for r in records) + "\n"


class LogPump:
    """Drains a container's log FIFO into its RotatingLog from the event loop.

    Followers (logs -f) get every record as it is written; on_eof runs when every writer is gone.
    """

    def __init__(self, loop, fifo_path: str, log: RotatingLog):
        self.loop = loop
        self.fifo_path = fifo_path
        self.log = log
        self.framer = LineFramer()
        self.fd: Optional[int] = None
        self.followers: List[Callable[[Optional[bytes]], None]] = []  # None = end of stream
        self.dropped = 0  # records lost to a full or failing log filesystem (since the last warning)

    def open(self) -> None:
        """Open the read side (never blocks: O_NONBLOCK) and start reading."""
        if self.fd is not None:
            return
        self.fd = os.open(self.fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self.loop.add_reader(self.fd, self._on_readable)

    def _on_readable(self) -> None:
        if self.fd is None:
            return
        # A bounded number of chunks per wake-up, so a chatty container cannot starve the loop.
        for _ in range(4):
            try:
                data = os.read(self.fd, READ_CHUNK)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EINTR):
                    return
                data = b""
            if not data:
                self._finish()
                return
            self._write(self.framer.feed(data))
            if len(data) < READ_CHUNK:
                return

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

    def drain(self) -> None:
        """Read whatever is buffered now (e.g. right after the container exited)."""
        while self.fd is not None:
            try:
                data = os.read(self.fd, READ_CHUNK)
            except OSError:
                return
            if not data:
                self._finish()
                return
            self._write(self.framer.feed(data))

    def _finish(self) -> None:
        self._write(self.framer.flush())
        self.close()

    def close(self) -> None:
        if self.fd is not None:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = None
        self.log.close()
        followers, self.followers = self.followers, []
        for f in followers:
            f(None)


def make_fifo(path: str) -> None:
    try:
        os.mkfifo(path, 0o600)
    except FileExistsError:
        pass


def open_writer(path: str) -> int:
    """The container's end: O_RDWR so the pipe always has a reader (no SIGPIPE without tcrd)."""
    return os.open(path, os.O_RDWR | os.O_CLOEXEC)
