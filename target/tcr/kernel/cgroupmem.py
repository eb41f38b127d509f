"""A container's memory cgroup after its processes are gone, and its OOM-kill counter (stdlib only).

The one cgroup read tcrd makes for every container (at its exit): kept apart from
tcr.kernel.cgroupfs (the counters of `tcr stats` and `tcr top`), so an idle daemon does not hold
that module (docs/profile.md).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple

CGROUP_ROOT = "/sys/fs/cgroup"
MAX_READ = 64 * 1024


def _read(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return f.read(MAX_READ).decode("ascii", "replace")
    except OSError:
        return None


def _keyed(path: str) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def memory_dirs(path: str, root: str = CGROUP_ROOT) -> Tuple[Optional[str], Optional[str]]:
    """(v1 memory directory, v2 directory) of the cgroup a runtime made at `path` (crun's cgroupfs
    manager puts an absolute cgroupsPath under each hierarchy's root); None where there is none."""
    v1: Optional[str] = None
    v2: Optional[str] = None
    mem = os.path.join(root, "memory")
    if os.path.exists(os.path.join(mem, "memory.limit_in_bytes")):  # hybrid or pure v1
        v1 = mem + path
    for base in (os.path.join(root, "unified"), root):
        if os.path.exists(os.path.join(base, "cgroup.controllers")):
            v2 = base + path
            break
    return v1, v2


def oom_kills(v1_memory: Optional[str], v2: Optional[str]) -> Optional[int]:
    """How many processes the kernel's OOM killer took in this cgroup (None = unknown). v1:
    memory.oom_control's oom_kill (kernel 4.13+); v2: memory.events' oom_kill."""
    if v1_memory is not None:
        n = _keyed(os.path.join(v1_memory, "memory.oom_control")).get("oom_kill")
        if n is not None:
            return n
    if v2 is not None and os.path.exists(os.path.join(v2, "memory.events")):
        return _keyed(os.path.join(v2, "memory.events")).get("oom_kill")
    return None


def oom_kills_at(path: str, root: str = CGROUP_ROOT) -> Optional[int]:
    return oom_kills(*memory_dirs(path, root))
