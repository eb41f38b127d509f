"""A process's cgroups and their counters, on cgroup v1, v2 and hybrid hosts (stdlib only).

`tcr stats` and `tcr top` need a container's CPU, memory, block I/O, pid counters and process
list. crun places the container, so the truth is in /proc/PID/cgroup of its init process: one
line per v1 hierarchy ("4:memory:/tcr/ID") and one for v2 ("0::/tcr/ID").
"""

from __future__ import annotations

import os

from tcr.kernel.cgroupmem import CGROUP_ROOT, _keyed, _read, memory_dirs  # noqa: F401 - CGROUP_ROOT: its callers
from tcr.kernel.cgroupmem import oom_kills as _oom_kills

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Dict, List, Optional


def _int(path: str) -> Optional[int]:
    t = _read(path)
    if t is None:
        return None
    t = t.strip()
    if t == "max":
        return None
    try:
        return int(t.split()[0])
    except (ValueError, IndexError):
        return None


class Cgroups:
    """Where a process's cgroups live: v1 controller -> directory, and the v2 directory."""

    def __init__(self, v1: Dict[str, str], v2: Optional[str]):
        self.v1 = v1
        self.v2 = v2

    @classmethod
    def of_pid(cls, pid: int, root: str = CGROUP_ROOT) -> Cgroups:
        v1: Dict[str, str] = {}
        v2: Optional[str] = None
        for line in (_read(f"/proc/{pid}/cgroup") or "").splitlines():
            hid, _, rest = line.partition(":")
            ctrls, _, path = rest.partition(":")
            if hid == "0" and not ctrls:
                for base in (os.path.join(root, "unified"), root):
                    if os.path.exists(os.path.join(base, "cgroup.controllers")):
                        v2 = base + path
                        break
                continue
            for ctrl in ctrls.split(","):
                ctrl = ctrl.replace("name=", "")
                d = os.path.join(root, ctrl)
                if not os.path.isdir(d):  # co-mounted (cpu,cpuacct)
                    d = os.path.join(root, ctrls.replace("name=", ""))
                v1[ctrl] = d + path
        return cls(v1, v2)

    @classmethod
    def of_path(cls, path: str, root: str = CGROUP_ROOT) -> Cgroups:
        """The memory cgroup a runtime made at `path` (tcr.kernel.cgroupmem.memory_dirs): usable
        after its processes are gone."""
        mem, v2 = memory_dirs(path, root)
        return cls({"memory": mem} if mem is not None else {}, v2)

    def oom_kills(self) -> Optional[int]:
        """How many processes the kernel's OOM killer took in this cgroup (None = unknown)."""
        return _oom_kills(self.v1.get("memory"), self.v2)

    def _v2_has(self, name: str) -> bool:
        return self.v2 is not None and os.path.exists(os.path.join(self.v2, name))

    def procs(self) -> List[int]:
        """Every pid in the container's cgroup."""
        for d in [self.v1.get(c) for c in ("pids", "memory", "cpu", "freezer")] + [self.v2]:
            if d and os.path.exists(os.path.join(d, "cgroup.procs")):
                text = _read(os.path.join(d, "cgroup.procs")) or ""
                return sorted(int(x) for x in text.split() if x.isdigit())
        return []

    def cpu_usage_ns(self) -> Optional[int]:
        if "cpuacct" in self.v1:
            v = _int(os.path.join(self.v1["cpuacct"], "cpuacct.usage"))
            if v is not None:
                return v
        if self._v2_has("cpu.stat"):
            us = _keyed(os.path.join(self.v2 or "", "cpu.stat")).get("usage_usec")
            return None if us is None else us * 1000
        return None

    def memory(self) -> Dict[str, Optional[int]]:
        """usage (without inactive file cache, as docker shows it) and limit (None = none)."""
        if "memory" in self.v1:
            d = self.v1["memory"]
            usage = _int(os.path.join(d, "memory.usage_in_bytes"))
            limit = _int(os.path.join(d, "memory.limit_in_bytes"))
            inactive = _keyed(os.path.join(d, "memory.stat")).get("total_inactive_file", 0)
            if limit is not None and limit >= (1 << 62):
                limit = None
        elif self._v2_has("memory.current"):
            d = self.v2 or ""
            usage = _int(os.path.join(d, "memory.current"))
            limit = _int(os.path.join(d, "memory.max"))
            inactive = _keyed(os.path.join(d, "memory.stat")).get("inactive_file", 0)
        else:
            return {"usage": None, "limit": None}
        if usage is not None:
            usage = max(0, usage - inactive)
        return {"usage": usage, "limit": limit}

    def pids_current(self) -> Optional[int]:
        if "pids" in self.v1:
            v = _int(os.path.join(self.v1["pids"], "pids.current"))
            if v is not None:
                return v
        if self._v2_has("pids.current"):
            return _int(os.path.join(self.v2 or "", "pids.current"))
        return len(self.procs()) or None

    def block_io(self) -> Dict[str, int]:
        """Bytes read and written by the cgroup's processes."""
        rd = wr = 0
        if "blkio" in self.v1:
            for name in ("blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_service_bytes"):
                text = _read(os.path.join(self.v1["blkio"], name))
                if text is None:
                    continue
                for line in text.splitlines():
                    parts = line.split()
                    if len(parts) == 3 and parts[2].isdigit():
                        if parts[1] == "Read":
                            rd += int(parts[2])
                        elif parts[1] == "Write":
                            wr += int(parts[2])
                break
        elif self._v2_has("io.stat"):
            for line in (_read(os.path.join(self.v2 or "", "io.stat")) or "").splitlines():
                for kv in line.split()[1:]:
                    k, _, v = kv.partition("=")
                    if v.isdigit():
                        if k == "rbytes":
                            rd += int(v)
                        elif k == "wbytes":
                            wr += int(v)
        return {"read": rd, "write": wr}


def net_io(pid: int) -> Dict[str, int]:
    """Bytes received and sent on every interface but lo, as the process's netns counts them."""
    rx = tx = 0
    for line in (_read(f"/proc/{pid}/net/dev") or "").splitlines()[2:]:
        name, _, rest = line.partition(":")
        f = rest.split()
        if name.strip() == "lo" or len(f) < 9:
            continue
        try:
            rx += int(f[0])
            tx += int(f[8])
        except ValueError:
            continue
    return {"rx": rx, "tx": tx}


def host_memory() -> Optional[int]:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            try:
                return int(line.split()[1]) * 1024
            except (ValueError, IndexError):
                return None
    return None
