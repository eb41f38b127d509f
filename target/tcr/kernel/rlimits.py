"""Resource limits as /proc/self/limits shows them (stdlib only).

tcrd reads a few hard and soft limits (its open-file limit at start, the host's limits for OCI
configs): a read of this file instead of the `resource` extension module, which costs an idle tcrd
~40 kB resident for those reads (docs/profile.md). setrlimit, on the rare path that raises the
open-file limit for published ports, still goes through `resource`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Dict, Tuple

INFINITY = -1  # resource.RLIM_INFINITY on Linux
# getrlimit names -> the row labels of fs/proc/base.c's lnames[]
LABELS = {
    "RLIMIT_CORE": "Max core file size",
    "RLIMIT_MEMLOCK": "Max locked memory",
    "RLIMIT_NOFILE": "Max open files",
    "RLIMIT_NPROC": "Max processes",
}


def _value(text: str) -> int:
    return INFINITY if text == "unlimited" else int(text)


def parse(text: str) -> Dict[str, Tuple[int, int]]:
    """{getrlimit name: (soft, hard)} of the limits in LABELS found in /proc/PID/limits text."""
    out: Dict[str, Tuple[int, int]] = {}
    for line in text.splitlines():
        for name, label in LABELS.items():
            if line.startswith(label + " "):
                fields = line[len(label):].split()
                if len(fields) >= 2:
                    try:
                        out[name] = (_value(fields[0]), _value(fields[1]))
                    except ValueError:
                        pass
    return out


def limits(path: str = "/proc/self/limits") -> Dict[str, Tuple[int, int]]:
    """This process's limits (empty where /proc is not mounted)."""
    try:
        with open(path, "rb") as f:
            return parse(f.read(16384).decode("ascii", "replace"))
    except OSError:
        return {}
