"""Linux capabilities for containers: names, Docker's default set, --cap-add/--cap-drop.

Pure. Semantics follow docker: `--cap-add ALL` grants every capability except the dropped ones;
`--cap-drop ALL` starts from nothing and adds back the --cap-add ones; otherwise the default set
minus drops plus adds (an explicit add wins over a drop of the same name).
"""

from __future__ import annotations

from tcr.common.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Dict, Iterable, List, Optional, Sequence

# Every capability the Linux uapi defines, in number order (index == capability number).
ALL_CAPS = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
CAP_NUMBER: Dict[str, int] = {name: i for i, name in enumerate(ALL_CAPS)}

# Docker's default grant: enough for typical daemons (bind low ports, drop privileges, chown files)
# without anything that reaches the kernel or other containers (no SYS_ADMIN, NET_ADMIN, SYS_PTRACE ...).
DEFAULT_CAPS = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)


def normalize(name: str) -> str:
    """'net_admin', 'CAP_NET_ADMIN', 'Net_Admin' -> 'CAP_NET_ADMIN'; 'all' -> 'ALL'.

    An unknown name is an InvalidArgument."""
    raw = name.strip().upper()
    if raw == "ALL":
        return "ALL"
    full = raw if raw.startswith("CAP_") else "CAP_" + raw
    if full not in CAP_NUMBER:
        raise InvalidArgument(
            f"unknown capability: {name!r}", hint="names like NET_ADMIN or CAP_NET_ADMIN, or ALL"
        )
    return full


def normalize_all(names: Iterable[str]) -> List[str]:
    out: List[str] = []
    for n in names:
        c = normalize(n)
        if c not in out:
            out.append(c)
    return out


def resolve(
    cap_add: Sequence[str] = (),
    cap_drop: Sequence[str] = (),
    last_cap: Optional[int] = None,
    available: Optional[int] = None,
) -> List[str]:
    """The granted capability set, in capability-number order.

    last_cap (the kernel's /proc/sys/kernel/cap_last_cap) and available (the daemon's own bounding
    set as a bit mask) filter out what this host cannot grant, so defaults and `--cap-add ALL` work
    on old kernels and in restricted hosts (crun fails on such capabilities). Naming one of them
    explicitly with --cap-add is an InvalidArgument.
    """
    adds = normalize_all(cap_add)
    drops = normalize_all(cap_drop)
    granted: List[str]
    if "ALL" in adds:
        granted = [c for c in ALL_CAPS if c not in drops]
    elif "ALL" in drops:
        granted = list(adds)
    else:
        granted = [c for c in DEFAULT_CAPS if c not in drops] + adds
    limit = len(ALL_CAPS) - 1 if last_cap is None else last_cap

    def grantable(c: str) -> bool:
        n = CAP_NUMBER[c]
        return n <= limit and (available is None or bool(available >> n & 1))

    for c in adds:
        if c != "ALL" and not grantable(c):
            raise InvalidArgument(f"capability {c} is not available on this host")
    return sorted({c for c in granted if grantable(c)}, key=CAP_NUMBER.__getitem__)


def oci_capabilities(caps: Sequence[str], is_root: bool) -> Dict[str, List[str]]:
    """process.capabilities for the granted set.

    Like docker: nothing inheritable or ambient (so exec'd programs cannot carry capabilities past
    a uid change), and a non-root user gets the set only as its bounding set: it holds no
    capability unless a file capability/setuid binary grants it (and noNewPrivileges blocks that).
    """
    caps = list(caps)
    live = caps if is_root else []
    return {
        "bounding": caps,
        "effective": list(live),
        "permitted": list(live),
        "inheritable": [],
        "ambient": [],
    }
