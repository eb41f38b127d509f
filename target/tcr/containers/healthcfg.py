"""Health-check configuration (pure): run flags and the image's HEALTHCHECK -> one record.

The record (RunOptions.health) is docker's shape in seconds:
{"test": ["CMD-SHELL", "curl -f localhost"] | ["CMD", "a", "b"], "interval": 30.0, "timeout": 30.0,
 "retries": 3, "startPeriod": 0.0}; {"test": ["NONE"]} disables the image's check (--no-healthcheck).
The monitor that runs it lives in health.py, imported only when a container has a check.
"""

from __future__ import annotations

import re

from tcr.common.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
MAX_COMMAND = 4096

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, flag: str, allow_zero: bool = False) -> float:
    """Go durations as docker takes them (30s, 1m30s, 500ms); a bare number is seconds."""
    s = text.strip()
    try:
        v = float(s)
    except ValueError:
        v, pos = 0.0, 0
        for m in _DURATION_RE.finditer(s):
            if m.start() != pos:
                break
            v += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if not s or pos != len(s):
            raise InvalidArgument(f"invalid {flag} {text[:40]!r}", hint="a duration: 30s, 1m30s, 500ms")
    if v < 0 or (v == 0 and not allow_zero) or v > 86400 * 365:
        raise InvalidArgument(f"invalid {flag} {text[:40]!r}: must be {'>= 0' if allow_zero else '> 0'}")
    return v


def from_flags(cmd: Optional[str], interval: Optional[str], timeout: Optional[str], retries: Optional[str],
               start_period: Optional[str], disabled: bool) -> Optional[Dict[str, Any]]:
    """The --health-* flags of run/create; None when none was given (the image's check applies)."""
    given = [x for x in (cmd, interval, timeout, retries, start_period) if x is not None]
    if disabled:
        if given:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"test": ["NONE"]}
    if not given:
        return None
    out: Dict[str, Any] = {}
    if cmd is not None:
        if not cmd.strip() or len(cmd) > MAX_COMMAND or "\0" in cmd:
            raise InvalidArgument("invalid --health-cmd: empty or too long")
        out["test"] = ["CMD-SHELL", cmd]
    if interval is not None:
        out["interval"] = parse_duration(interval, "--health-interval")
    if timeout is not None:
        out["timeout"] = parse_duration(timeout, "--health-timeout")
    if start_period is not None:
        out["startPeriod"] = parse_duration(start_period, "--health-start-period", allow_zero=True)
    if retries is not None:
        try:
            n = int(retries)
        except ValueError:
            n = -1
        if n < 1 or n > 1000:
            raise InvalidArgument(f"invalid --health-retries {retries[:20]!r}: an integer from 1")
        out["retries"] = n
    return out


def from_image(hc: Any) -> Optional[Dict[str, Any]]:
    """The image config's Healthcheck (docker's: Test, Interval/Timeout/StartPeriod in ns, Retries)."""
    if not isinstance(hc, dict):
        return None
    test = hc.get("Test")
    if not isinstance(test, list) or not test or not all(isinstance(x, str) for x in test):
        return None
    if test[0] not in ("CMD", "CMD-SHELL", "NONE") or (test[0] != "NONE" and len(test) < 2):
        return None
    out: Dict[str, Any] = {"test": list(test)}
    for key, name in (("Interval", "interval"), ("Timeout", "timeout"), ("StartPeriod", "startPeriod")):
        v = hc.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            out[name] = v / 1e9
    r = hc.get("Retries")
    if isinstance(r, int) and not isinstance(r, bool) and r > 0:
        out["retries"] = r
    return out


def effective(run: Optional[Dict[str, Any]], image: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """Flags over the image's check, key by key (docker: --health-interval alone keeps the image's
    test); None when there is no test to run."""
    if run is not None and run.get("test") == ["NONE"]:
        return None
    merged: Dict[str, Any] = dict(image or {})
    merged.update(run or {})
    test = merged.get("test")
    if not test or test[0] == "NONE":
        return None
    return {"test": list(test), "interval": float(merged.get("interval", DEFAULT_INTERVAL)),
            "timeout": float(merged.get("timeout", DEFAULT_TIMEOUT)),
            "retries": int(merged.get("retries", DEFAULT_RETRIES)),
            "startPeriod": float(merged.get("startPeriod", 0.0))}


def command(test: List[str]) -> List[str]:
    """The argv run inside the container: CMD as is, CMD-SHELL through /bin/sh -c."""
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", test[1]]
    return list(test[1:])


def validate_record(d: Any) -> Optional[Dict[str, Any]]:
    """RunOptions.health from a stored record: None, or a dict that from_flags could have made."""
    if not isinstance(d, dict):
        return None
    out: Dict[str, Any] = {}
    test = d.get("test")
    if isinstance(test, list) and test and all(isinstance(x, str) for x in test) \
            and test[0] in ("CMD", "CMD-SHELL", "NONE") and (test[0] == "NONE" or len(test) >= 2):
        out["test"] = list(test)
    for key in ("interval", "timeout", "startPeriod"):
        v = d.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 86400 * 366 \
                and (v > 0 or key == "startPeriod"):  # a zero interval would spin
            out[key] = float(v)
    r = d.get("retries")
    if isinstance(r, int) and not isinstance(r, bool) and r >= 1:
        out["retries"] = r
    return out
