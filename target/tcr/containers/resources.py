"""Resource limits: size/cpu parsing, OCI linux.resources (cgroups), device rules and rlimits. Pure.

The same OCI fields (memory.limit/swap, cpu.quota/period, pids.limit) work on cgroup v1 and v2:
crun translates them, so nothing here depends on the cgroup version.
"""

from __future__ import annotations

from tcr.common import syntax
from tcr.common.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

CPU_PERIOD = 100000  # microseconds, docker's --cpus period
MIN_MEMORY = 6 << 20  # docker's minimum: below this the runtime itself cannot start
DEFAULT_NOFILE = 1024  # docker/containerd soft limit: select()-safe, big enough for most daemons
MAX_NOFILE = 1 << 20


# what may follow the number: a unit letter and an optional "b" or "ib" ("64m", "64mb", "64MiB")
_SUFFIXES = {u + s: u.strip("b") for u in ("", "b", "k", "m", "g", "t") for s in ("", "b", "ib")}


def _split_size(text: str) -> Optional[Tuple[str, str]]:
    """' 1.5 GiB' -> ('1.5', 'g'); None if it is not a size
    (re: ^\\s*(\\d+(?:\\.\\d+)?)\\s*([bkmgt]?)(?:i?b)?\\s*$, case-insensitive)."""
    text = text.strip()
    n = len(text) - len(text.lstrip(syntax.DIGITS))
    if not n:
        return None
    if text[n:n + 1] == ".":
        frac = len(text) - n - 1 - len(text[n + 1:].lstrip(syntax.DIGITS))
        if not frac:
            return None
        n += 1 + frac
    unit = _SUFFIXES.get(text[n:].lstrip().lower())
    return None if unit is None else (text[:n], unit)


def parse_size(text: str, what: str = "size") -> int:
    """'64m', '1g', '512k', '1048576', '1.5g' -> bytes (binary units, like docker)."""
    parsed = _split_size(str(text))
    if parsed is None:
        raise InvalidArgument(
            f"invalid {what}: {text!r}", hint="use a number with an optional unit b, k, m, g"
        )
    value = int(float(parsed[0]) * _UNITS[parsed[1]])
    if value <= 0:
        raise InvalidArgument(f"invalid {what}: {text!r} must be greater than 0")
    return value


def parse_memory(text: str) -> int:
    value = parse_size(text, "memory limit")
    if value < MIN_MEMORY:
        raise InvalidArgument(f"memory limit {text!r} is too small: the minimum is 6m")
    return value


def parse_cpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgument(f"invalid --cpus value: {text!r}", hint="a number of CPUs, e.g. 0.5 or 2")
    if not 0.01 <= value <= 1024:
        raise InvalidArgument(f"invalid --cpus value: {text!r} must be between 0.01 and 1024")
    return value


def parse_pids(text: str) -> Optional[int]:
    """--pids-limit N; 0 or -1 mean unlimited (docker)."""
    try:
        value = int(text)
    except ValueError:
        raise InvalidArgument(f"invalid --pids-limit value: {text!r}", hint="a whole number; -1 = unlimited")
    if value < -1:
        raise InvalidArgument(f"invalid --pids-limit value: {text!r}")
    return None if value in (0, -1) else value


def _chr(major: int, minor: Optional[int], access: str = "rwm") -> Dict[str, Any]:
    rule: Dict[str, Any] = {"allow": True, "type": "c", "major": major, "access": access}
    if minor is not None:
        rule["minor"] = minor
    return rule


# The device cgroup: deny everything, allow mknod (CAP_MKNOD is default, so that images can create
# nodes, but they cannot be opened) and the standard pseudo devices. Same list as docker's.
DEVICE_RULES: List[Dict[str, Any]] = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    _chr(1, 3),  # /dev/null
    _chr(1, 5),  # /dev/zero
    _chr(1, 7),  # /dev/full
    _chr(1, 8),  # /dev/random
    _chr(1, 9),  # /dev/urandom
    _chr(5, 0),  # /dev/tty
    _chr(5, 1),  # /dev/console
    _chr(5, 2),  # /dev/ptmx
    _chr(136, None),  # /dev/pts/*
]


def oci_resources(memory: Optional[int], cpus: Optional[float], pids_limit: Optional[int]) -> Dict[str, Any]:
    """linux.resources from the run flags. Swap is set equal to the memory limit: no swap on top,
    like docker with --memory-swap equal to --memory (flash wears out; swap hides leaks)."""
    res: Dict[str, Any] = {"devices": [dict(r) for r in DEVICE_RULES]}
    if memory:
        res["memory"] = {"limit": int(memory), "swap": int(memory)}
    if cpus:
        res["cpu"] = {"quota": max(1000, int(round(cpus * CPU_PERIOD))), "period": CPU_PERIOD}
    if pids_limit:
        res["pids"] = {"limit": int(pids_limit)}
    return res


RLIM_INFINITY = (1 << 64) - 1  # OCI rlimits are uint64


def rlimits(hard_limits: Mapping[str, int],
            ulimits: Sequence[Tuple[str, int, int]] = ()) -> List[Dict[str, Any]]:
    """process.rlimits: RLIMIT_NOFILE soft 1024 like docker, hard as generous as allowed, and never
    above this host's current hard limit (a container must not get more than the daemon has).
    hard_limits: RLIMIT name -> current hard limit of the daemon (-1 or missing = unlimited).
    ulimits: --ulimit (docker name, soft, hard; -1 = unlimited); one above the host's hard limit
    is refused rather than silently lowered."""
    from tcr.containers.runrecord import ULIMITS

    host_hard = hard_limits.get("RLIMIT_NOFILE", -1)
    hard = MAX_NOFILE if host_hard is None or host_hard < 0 else min(MAX_NOFILE, host_hard)
    soft = min(DEFAULT_NOFILE, hard)
    out: Dict[str, Dict[str, Any]] = {"RLIMIT_NOFILE": {"type": "RLIMIT_NOFILE", "hard": hard, "soft": soft}}
    for name, s, h in ulimits:
        typ = ULIMITS[name]
        limit = hard_limits.get(typ, -1)
        if limit is not None and limit >= 0 and (h < 0 or h > limit):
            raise InvalidArgument(f"--ulimit {name}: the hard limit {'unlimited' if h < 0 else h} is above "
                                  f"this host's {limit}")
        out[typ] = {"type": typ, "hard": RLIM_INFINITY if h < 0 else h, "soft": RLIM_INFINITY if s < 0 else s}
    return list(out.values())
