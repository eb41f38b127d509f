"""`tcr check` / `tcrd --check`: kernel and tool prerequisites, each with a fix.

The parsing functions are pure (tested on canned /proc content); run_checks() reads this machine.
"""

from __future__ import annotations

import os

from tcr.common import syntax
from tcr.common.record import dataclass
from tcr.kernel import loopdev, mountinfo

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Dict, Iterable, List, Optional, Set, Tuple


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def to_dict(self) -> Dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


HUGETLB_FIX = "mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb"
DAEMON_REQUIRED = ("root", "loop", "squashfs")  # tcrd refuses to start without these

# ---- pure parsers ----------------------------------------------------------------------------


def parse_filesystems(text: str) -> Set[str]:
    """/proc/filesystems -> {'squashfs', 'overlay', ...}."""
    return {line.split()[-1] for line in text.splitlines() if line.split()}


def parse_kernel_config(text: str) -> Dict[str, str]:
    """A kernel .config (/proc/config.gz, /boot/config-*) -> {'CONFIG_X': 'y'|'m'|...}."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("CONFIG_") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v.strip('"')
    return out


def parse_modules_list(text: str) -> Set[str]:
    """modules.builtin / modules.dep / /proc/modules -> module names ('squashfs', 'nf_tables')."""
    names = set()
    for line in text.splitlines():
        tok = line.split(":")[0].split()[0] if line.split() else ""
        base = os.path.basename(tok)
        for ext in (".ko.zst", ".ko.xz", ".ko.gz", ".ko"):
            if base.endswith(ext):
                base = base[: -len(ext)]
        if base:
            names.add(base.replace("-", "_"))
    return names


def parse_crun_version(text: str) -> Optional[Tuple[int, ...]]:
    """re.search(r"crun version (\\d+(?:\\.\\d+)*)") as numbers (not re: tcrd runs this at start-up)."""
    at = text.find("crun version ")
    while at >= 0:
        numbers = syntax.leading_ints(text[at + len("crun version "):], 64)
        if numbers:
            return tuple(numbers)
        at = text.find("crun version ", at + 1)
    return None


def parse_crun_features(text: str) -> Set[str]:
    """`crun --version`'s feature line ('+SYSTEMD +CAP +SECCOMP ...') -> {'CAP', 'SECCOMP', ...}."""
    return {tok[1:] for tok in text.split() if tok.startswith("+") and tok[1:].isalnum()}


# Without these crun silently ignores --cap-drop/--user's capability sets and every seccomp
# profile (Buildroot builds it so unless libcap and libseccomp are selected).
CRUN_SECURITY_FEATURES = ("CAP", "SECCOMP")
INSECURE_CRUN_OVERRIDE = "TCR_ALLOW_INSECURE_CRUN"
CRUN_SECURITY_FIX = ("rebuild crun with libcap and libseccomp (Buildroot: BR2_PACKAGE_LIBCAP, "
                     "BR2_PACKAGE_LIBSECCOMP; Debian's crun has both)")


def crun_check(path: str, version_text: str) -> Check:
    """One check from `crun --version`: version 1.0+ and the +CAP/+SECCOMP features."""
    ver = parse_crun_version(version_text)
    if ver is None:
        return Check("crun", False, f"{path}: cannot read its version", "reinstall crun")
    v = ".".join(map(str, ver))
    if ver < (1, 0):
        return Check("crun", False, f"crun {v} is too old (need 1.0+)", "install crun 1.0 or newer")
    feats = parse_crun_features(version_text)
    lacking = [f for f in CRUN_SECURITY_FEATURES if f not in feats]
    if lacking:
        return Check("crun", False,
                     f"crun {v} at {path} is built without {' '.join('+' + f for f in lacking)}: containers "
                     "would keep every capability and run without seccomp", CRUN_SECURITY_FIX)
    return Check("crun", True, f"crun {v} at {path} (+CAP +SECCOMP)")


def crun_security(path: Optional[str] = None) -> Optional[Check]:
    """tcrd's start-up check of crun (None when crun is not installed: containers then fail
    at run time with 'crun not found')."""
    from tcr.common.run import run, which

    crun = path or which("crun")
    if not crun:
        return None
    res = run([crun, "--version"], check=False, timeout=10)
    return crun_check(crun, res.stdout)


@dataclass(frozen=True)
class CgroupLayout:
    mode: str  # "v1" | "v2" | "hybrid" | "none"
    v1_controllers: Tuple[str, ...]
    unified_mount: str  # cgroup2 mount point ("" if none)


def cgroup_layout(mounts: Iterable[mountinfo.Mount]) -> CgroupLayout:
    v1: List[str] = []
    unified = ""
    for m in mounts:
        if m.fstype == "cgroup2":
            unified = unified or m.mount_point
        elif m.fstype == "cgroup":
            for opt in m.super_options.split(","):
                if opt in ("rw", "ro") or opt.startswith("name=") or "=" in opt:
                    continue
                v1.append(opt)
    if unified and v1:
        mode = "hybrid"
    elif unified:
        mode = "v2"
    elif v1:
        mode = "v1"
    else:
        mode = "none"
    return CgroupLayout(mode, tuple(sorted(set(v1))), unified)


def cgroup_check(layout: CgroupLayout, unified_controllers: Iterable[str]) -> Check:
    ctrl = [c for c in unified_controllers if c]
    if layout.mode == "none":
        return Check("cgroups", False, "no cgroup filesystem is mounted",
                     "mount -t cgroup2 none /sys/fs/cgroup")
    if layout.mode == "hybrid" and ctrl:
        # crun refuses a hybrid layout where the v2 hierarchy holds controllers.
        fix = " && ".join(
            f"mkdir -p /sys/fs/cgroup/{c} && mount -t cgroup -o {c} cgroup /sys/fs/cgroup/{c}" for c in ctrl
        )
        return Check("cgroups", False,
                     f"hybrid v1/v2 layout with controllers on the v2 mount {layout.unified_mount}: "
                     f"{' '.join(ctrl)} (crun refuses this)", fix)
    if layout.mode == "v2":
        names = " ".join(ctrl) or "none"
        return Check("cgroups", True, f"v2 at {layout.unified_mount} (controllers: {names})")
    return Check("cgroups", True, f"{layout.mode} (v1 controllers: {' '.join(layout.v1_controllers)})")


# ---- this machine ----------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


class _Kernel:
    """What the kernel offers: /proc/filesystems, its config (if shipped), module lists."""

    def __init__(self) -> None:
        self.fs = parse_filesystems(_read("/proc/filesystems"))
        self.config: Dict[str, str] = {}
        try:
            import gzip

            with gzip.open("/proc/config.gz", "rt") as f:
                self.config = parse_kernel_config(f.read())
        except (OSError, EOFError):
            rel = os.uname().release
            self.config = parse_kernel_config(_read(f"/boot/config-{rel}"))
        rel = os.uname().release
        self.modules = parse_modules_list(_read("/proc/modules"))
        self.modules |= parse_modules_list(_read(f"/lib/modules/{rel}/modules.builtin"))
        self.modules |= parse_modules_list(_read(f"/lib/modules/{rel}/modules.dep"))

    def has(self, config: str, module: str, sysmodule: Optional[str] = None) -> Optional[bool]:
        """True/False when known, None when this kernel does not say."""
        if self.config:
            return self.config.get(config) in ("y", "m")
        if module in self.modules or os.path.isdir(f"/sys/module/{sysmodule or module}"):
            return True
        return None


def _feature(name: str, known: Optional[bool], what: str, fix: str) -> Check:
    if known is None:
        return Check(name, True, f"{what}: cannot tell (no kernel config or module list); assumed present")
    return Check(name, known, what if known else f"{what}: missing", "" if known else fix)


def run_checks() -> List[Check]:
    from tcr.common.run import run, which

    k = _Kernel()
    out: List[Check] = []
    euid = os.geteuid()
    out.append(Check("root", euid == 0, "running as root" if euid == 0 else f"running as uid {euid}",
                     "" if euid == 0 else "run tcrd as root"))

    sq = "squashfs" in k.fs or k.has("CONFIG_SQUASHFS", "squashfs")
    zstd = k.config.get("CONFIG_SQUASHFS_ZSTD") in ("y",) if k.config else None
    if not sq:
        out.append(Check("squashfs", False, "squashfs filesystem not available",
                         "enable CONFIG_SQUASHFS (and CONFIG_SQUASHFS_ZSTD) or modprobe squashfs"))
    elif zstd is False:
        out.append(Check("squashfs", False, "squashfs without zstd support",
                         "enable CONFIG_SQUASHFS_ZSTD in the kernel"))
    else:
        zs = " with zstd" if zstd else " (zstd: not verifiable)"
        out.append(Check("squashfs", True, "squashfs" + zs))

    ov = "overlay" in k.fs or k.has("CONFIG_OVERLAY_FS", "overlay")
    out.append(_feature("overlay", True if ov else (None if ov is None else False), "overlayfs",
                        "enable CONFIG_OVERLAY_FS or modprobe overlay"))
    lc = loopdev.ensure_control()  # made (and the module loaded) where no udev did it
    out.append(Check("loop", lc, "/dev/loop-control" + ("" if lc else " is missing"),
                     "" if lc else "enable CONFIG_BLK_DEV_LOOP or modprobe loop"))
    netns = k.config.get("CONFIG_NET_NS") in ("y",) if k.config else os.path.exists("/proc/self/ns/net")
    out.append(_feature("netns", netns, "network namespaces", "enable CONFIG_NET_NS"))

    nft = which("nft")
    if not nft:
        out.append(Check("nftables", False, "nft binary not found", "apt-get install nftables"))
    else:
        res = run([nft, "list", "tables"], check=False, timeout=10)
        if res.returncode == 0:
            out.append(Check("nftables", True, f"{nft}; kernel nf_tables works"))
        else:
            last = (res.stderr.strip().splitlines() or ["?"])[-1]
            out.append(Check("nftables", False, f"nft cannot talk to the kernel: {last}",
                             "enable CONFIG_NF_TABLES (and NFT_NAT, NFT_MASQ) or modprobe nf_tables"))
    out.append(_feature("veth", k.has("CONFIG_VETH", "veth"), "veth pairs", "enable CONFIG_VETH"))
    out.append(_feature("bridge", k.has("CONFIG_BRIDGE", "bridge"), "linux bridge", "enable CONFIG_BRIDGE"))

    mounts = mountinfo.read()
    layout = cgroup_layout(mounts)
    ctrl = []
    if layout.unified_mount:
        ctrl = _read(os.path.join(layout.unified_mount, "cgroup.controllers")).split()
    out.append(cgroup_check(layout, ctrl))

    crun = which("crun")
    if not crun:
        out.append(Check("crun", False, "crun not found", "apt-get install crun"))
    else:
        res = run([crun, "--version"], check=False, timeout=10)
        out.append(crun_check(crun, res.stdout))
    return out


def render(checks: List[Check]) -> str:
    lines = []
    for c in checks:
        lines.append(f"[{'ok' if c.ok else 'FAIL':>4}] {c.name:<9} {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"{'':16}fix: {c.fix}")
    bad = [c.name for c in checks if not c.ok]
    lines.append("all prerequisites are met" if not bad else f"{len(bad)} problem(s): {', '.join(bad)}")
    return "\n".join(lines) + "\n"


def daemon_prerequisites() -> List[Check]:
    """The cheap subset tcrd needs to start at all (no subprocesses)."""
    euid = os.geteuid()
    out = [Check("root", euid == 0, "running as root" if euid == 0 else f"running as uid {euid}",
                 "" if euid == 0 else "run tcrd as root")]
    lc = loopdev.ensure_control()  # under BusyBox init nothing else makes it for a loop module
    out.append(Check("loop", lc, "/dev/loop-control" + ("" if lc else " is missing"),
                     "" if lc else "enable CONFIG_BLK_DEV_LOOP or modprobe loop"))
    fs = parse_filesystems(_read("/proc/filesystems"))
    rel = os.uname().release
    mods = parse_modules_list(_read(f"/lib/modules/{rel}/modules.dep"))
    ok = "squashfs" in fs or "squashfs" in mods
    out.append(Check("squashfs", ok, "squashfs" + ("" if ok else " filesystem not available"),
                     "" if ok else "enable CONFIG_SQUASHFS or modprobe squashfs"))
    return out
