"""`tcr logs`: the retained log streamed in chunks, whatever its size, with bounded memory.

LogReader opens every log file at once (oldest first, sizes noted: a snapshot that rotation cannot
disturb, since open files survive their renames), starts at the record --tail asks for (found by
reading backwards), and hands out the records of one READ_CHUNK at a time, filtered by
--since/--until and formatted (-t) per stream. Streamer drives a reader from the event loop into
an attach data channel (tcr.rpc.channel), stopping while the client is slow; with -f it then goes
on with the records the container's log pump writes from now on: those arrive straight from the
pump, so following never misses or repeats a line across a rotation.
"""

from __future__ import annotations

import os
import time

from tcr.common.errors import InvalidArgument
from tcr.containers.logs import log_files, parse_record, timestamp

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

READ_CHUNK = 64 * 1024
STEPS = 8  # chunks per loop turn, so one big log does not starve other clients
LIVE_CAP = 1 << 20  # records queued from the pump while the snapshot is still streaming

# patterns for `re`, which parse_time imports only for --since/--until (~1 MB in tcrd: docs/profile.md)
_REL = r"^(?:(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h))+$"
_PART = r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)"
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_time(text: str, flag: str, now: Optional[float] = None) -> float:
    """docker's --since/--until: RFC 3339 (date, date-time, with or without zone: local time),
    a Unix timestamp, or a duration before now (10m, 1h30m, 45s)."""
    import re

    t = text.strip()
    now = time.time() if now is None else now
    if re.match(_REL, t):
        return now - sum(float(v) * _UNIT[u] for v, u in re.findall(_PART, t))
    try:
        return float(t)
    except ValueError:
        pass
    m = re.match(_RFC3339, t)
    if not m:
        raise InvalidArgument(f"invalid {flag} {text!r}",
                              hint="use RFC 3339 (2024-05-01T10:00:00Z), a Unix time or a duration (10m)")
    y, mo, d, hh, mm, ss = (int(g or 0) for g in m.group(1, 2, 3, 4, 5, 6))
    frac = float(m.group(7) or 0)
    zone = m.group(8)
    if not (1 <= mo <= 12 and 1 <= d <= 31 and hh < 24 and mm < 60 and ss < 61):
        raise InvalidArgument(f"invalid {flag} {text!r}: out of range")
    if zone is None:  # no zone: local time, as in docker
        return time.mktime((y, mo, d, hh, mm, ss, 0, 0, -1)) + frac
    offset = 0
    if zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return _days_from_civil(y, mo, d) * 86400 + hh * 3600 + mm * 60 + ss + frac - offset


_RFC3339 = (r"^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?"
            r"([Zz]|[+-]\d{2}:?\d{2})?$")


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (no datetime: it is a separate package
    on Yocto, docs/board-integration.md)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


class Formatter:
    """Records -> (stream, bytes) runs: since/until filter, -t prefixes at the start of each line."""

    def __init__(self, timestamps: bool = False, since: Optional[float] = None,
                 until: Optional[float] = None):
        self.timestamps = timestamps
        self.since = timestamp(since).encode() if since is not None else None
        self.until = timestamp(until).encode() if until is not None else None
        self.line_start = {"stdout": True, "stderr": True}

    def format(self, blob: bytes) -> List[Tuple[str, bytes]]:
        out: List[Tuple[str, bytes]] = []
        cur: Optional[str] = None
        parts: List[bytes] = []
        since, until = self.since, self.until
        for rec in blob.split(b"\n"):
            if not rec:
                continue
            ts, stream, data = parse_record(rec)
            if (since is not None and ts < since) or (until is not None and ts > until):
                continue
            if self.timestamps:
                if self.line_start[stream]:
                    data = ts + b" " + data
                self.line_start[stream] = data.endswith(b"\n")
            if stream != cur:
                if parts:
                    out.append((cur or "stdout", b"".join(parts)))
                cur, parts = stream, []
            parts.append(data)
        if parts:
            out.append((cur or "stdout", b"".join(parts)))
        return out


class LogReader:
    def __init__(self, path: str, max_files: int, tail: Optional[int] = None):
        self.files: List[Tuple[int, int]] = []  # (fd, size at open), oldest first
        for p in log_files(path, max(max_files, 1)):
            try:
                fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError:
                continue
            self.files.append((fd, os.fstat(fd).st_size))
        self.index, self.offset = 0, 0
        self.carry = b""
        if tail is not None:
            self._seek_tail(tail)

    def _seek_tail(self, n: int) -> None:
        """Start at the n-th record from the end (records end with a newline)."""
        seen = 0
        for i in range(len(self.files) - 1, -1, -1):
            fd, size = self.files[i]
            pos = size
            while pos > 0:
                start = max(0, pos - READ_CHUNK)
                block = os.pread(fd, pos - start, start)
                j = len(block)
                while True:
                    j = block.rfind(b"\n", 0, j)
                    if j < 0:
                        break
                    seen += 1
                    if seen == n + 1:
                        self.index, self.offset = i, start + j + 1
                        return
                pos = start
        self.index, self.offset = 0, 0  # fewer records than asked: all of them

    def read(self) -> Optional[bytes]:
        """The next whole records (b"" possible), or None at the end of the snapshot."""
        while self.index < len(self.files):
            fd, size = self.files[self.index]
            if self.offset >= size:
                self.index, self.offset = self.index + 1, 0
                if self.carry:  # a file ends with a whole record; a torn one is dropped
                    self.carry = b""
                continue
            data = os.pread(fd, min(READ_CHUNK, size - self.offset), self.offset)
            if not data:
                self.offset = size
                continue
            self.offset += len(data)
            data = self.carry + data
            cut = data.rfind(b"\n") + 1
            self.carry = data[cut:]
            if len(self.carry) > 4 * READ_CHUNK:  # not a record file: never hold more than this
                self.carry = b""
            return data[:cut]
        return None

    def close(self) -> None:
        for fd, _size in self.files:
            os.close(fd)
        self.files = []


class Streamer:
    """Drive a LogReader (and with follow, a pump's new records) into a data channel."""

    def __init__(self, loop: Any, channel: Any, reader: LogReader, fmt: Formatter, pump: Any,
                 done: Callable[[int], None]):
        from _collections import deque  # not `collections` (~0.4 MB in tcrd: docs/profile.md)

        self.loop = loop
        self.channel = channel
        self.reader = reader
        self.fmt = fmt
        self.pump = pump  # None: no follow
        self.done = done
        self.live: Deque[bytes] = deque()
        self.live_bytes = 0
        self.snapshot = True
        self.pump_ended = False
        self.finished = False

    def start(self) -> None:
        if self.pump is not None:
            self.pump.followers.append(self._on_live)
        self.channel.open()
        self.channel.on_drain = self._on_drain
        self.loop.call_soon(self._step)

    def _send(self, blob: bytes) -> None:
        for stream, data in self.fmt.format(blob):
            self.channel.write(stream, data)

    def _step(self) -> None:
        if self.finished:
            return
        for _ in range(STEPS):
            if self.channel.pressured:
                return  # _on_drain resumes
            blob = self.reader.read()
            if blob is None:
                self._snapshot_done()
                return
            if blob:
                self._send(blob)
        self.loop.call_soon(self._step)

    def _snapshot_done(self) -> None:
        self.snapshot = False
        self.reader.close()
        while self.live:
            blob = self.live.popleft()
            self._send(blob)
        self.live_bytes = 0
        if self.pump is None or self.pump_ended:
            self.finish(0)
            return
        if self.channel.pressured:
            self.pump.pause(self)
        else:
            self.pump.resume(self)

    def _on_live(self, blob: Optional[bytes]) -> None:
        if self.finished:
            return
        if blob is None:
            self.pump_ended = True
            if not self.snapshot:
                self.finish(0)
            return
        if self.snapshot:
            self.live.append(blob)
            self.live_bytes += len(blob)
            if self.live_bytes > LIVE_CAP:
                self.pump.pause(self)
            return
        self._send(blob)
        if self.channel.pressured:
            self.pump.pause(self)

    def _on_drain(self) -> None:
        if self.finished:
            return
        if self.snapshot:
            self.loop.call_soon(self._step)
        elif self.pump is not None:
            self.pump.resume(self)

    def finish(self, code: int) -> None:
        if self.finished:
            return
        self.finished = True
        self.reader.close()
        if self.pump is not None:
            if self._on_live in self.pump.followers:
                self.pump.followers.remove(self._on_live)
            self.pump.resume(self)
        self.done(code)

    def cancel(self) -> None:
        self.done = lambda _code: None
        self.finish(0)


def collect(reader: LogReader, fmt: Formatter, cap: int) -> Tuple[Dict[str, List[bytes]], bool]:
    """For clients without a data channel (the C client): at most the last `cap` bytes of output
    per stream, in one reply. Returns ({stream: chunks}, cut?)."""
    from _collections import deque  # not `collections` (~0.4 MB in tcrd: docs/profile.md)

    kept: Dict[str, Deque[bytes]] = {"stdout": deque(), "stderr": deque()}
    size = {"stdout": 0, "stderr": 0}
    cut = False
    while True:
        blob = reader.read()
        if blob is None:
            break
        for stream, data in fmt.format(blob):
            kept[stream].append(data)
            size[stream] += len(data)
            while size[stream] > cap and kept[stream]:
                size[stream] -= len(kept[stream].popleft())
                cut = True
    reader.close()
    return {k: list(v) for k, v in kept.items()}, cut


# ---- small logs at once (tests, tools) ----------------------------------------------------------


def split_record(rec: str):
    """'<ts> <text>' -> (ts, text) (text without the stream tag)."""
    ts, stream, data = parse_record(rec.encode("utf-8", "surrogateescape"))
    return ts.decode(), data.rstrip(b"\n").decode("utf-8", "replace")


def read_lines(path: str, max_files: int, tail: Optional[int] = None) -> List[str]:
    """Stored records (without their newline), oldest first; only the last `tail` if given.
    Small logs only (tests, tools): `tcr logs` streams with LogReader. Here, not in
    tcr.containers.logs, which every tcrd holds for the pump."""
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
    out = []
    for r in records:
        ts, text = split_record(r)
        out.append(f"{ts} {text}\n" if timestamps else text + "\n")
    return "".join(out)
