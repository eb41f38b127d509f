"""docker's --since/--until values: RFC 3339 times, Unix timestamps, or durations ago (pure)."""

from __future__ import annotations

import re
import time

from tcr.common.errors import UsageError

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Optional

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?")


def _timegm(y: int, mo: int, d: int, hh: int, mi: int, ss: int) -> int:
    """UTC calendar time -> Unix seconds (calendar.timegm without the calendar module, which a
    board's Python may leave out)."""
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        raise ValueError("date out of range")
    y -= mo <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return days * 86400 + hh * 3600 + mi * 60 + ss


def parse_duration(text: str) -> Optional[float]:
    """Go's duration syntax ("10m", "1h30m", "2.5s") in seconds, or None if it is not one."""
    if not text:
        return None
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total if pos == len(text) else None


def parse_time(text: str, flag: str, now: Optional[float] = None) -> float:
    """A --since/--until value as Unix seconds: "2026-12-01T10:00:00Z", "2026-12-01",
    "1764583200[.5]", or a duration before now ("10m", "1h")."""
    now = time.time() if now is None else now
    s = text.strip()
    d = parse_duration(s)
    if d is not None:
        return now - d
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    m = _RFC3339.fullmatch(s)
    if m:
        y, mo, da, hh, mi, ss, frac, tz = m.groups()
        try:
            t = float(_timegm(int(y), int(mo), int(da), int(hh or 0), int(mi or 0), int(ss or 0)))
            time.gmtime(t)
        except (ValueError, OverflowError):
            raise UsageError(f"{flag}: invalid time {text[:64]!r}")
        if not (1 <= int(mo) <= 12 and 1 <= int(da) <= 31 and int(hh or 0) < 24 and int(mi or 0) < 60
                and int(ss or 0) < 61):
            raise UsageError(f"{flag}: invalid time {text[:64]!r}")
        if tz and tz != "Z":
            sign = 1 if tz[0] == "+" else -1
            digits = tz[1:].replace(":", "")
            t -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
        elif not tz and hh is not None:
            t = time.mktime(time.strptime(f"{y}-{mo}-{da} {hh}:{mi}:{ss or 0}", "%Y-%m-%d %H:%M:%S"))
        return t + (float(frac) if frac else 0.0)
    raise UsageError(f"{flag}: invalid time {text[:64]!r}",
                     hint="use RFC 3339 (2026-12-01T10:00:00Z), a Unix timestamp, or a duration such as 10m")
