"""Image config -> the "unpatched" OCI runtime config.json stored in the image (pure functions).

Mirrors what `umoci unpack` writes (the C tool's pipeline), so the device-side patching works on
either: args = Entrypoint + Cmd (umoci's "sh" when both are empty), Env over PATH/TERM defaults,
HOME from /etc/passwd, cwd, the user resolved against the image's /etc/passwd and /etc/group,
root.path "rootfs", the default mounts, namespaces and masked paths, and the image metadata as
annotations.
"""

import copy
import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from tcr.common.errors import InvalidArgument

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OCI_VERSION = "1.0.2"
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

_MOUNTS: List[Dict[str, Any]] = [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
]
_MASKED = ["/proc/kcore", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
           "/proc/sched_debug", "/sys/firmware", "/proc/scsi"]
_READONLY = ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: Tuple[str, ...]


def parse_passwd(text: Optional[bytes]) -> List[PasswdEntry]:
    out = []
    for line in (text or b"").decode("utf-8", "replace").splitlines():
        f = line.split(":")
        if len(f) < 7 or line.startswith("#") or not f[2].isdigit() or not f[3].isdigit():
            continue
        out.append(PasswdEntry(f[0], int(f[2]), int(f[3]), f[5]))
    return out


def parse_group(text: Optional[bytes]) -> List[GroupEntry]:
    out = []
    for line in (text or b"").decode("utf-8", "replace").splitlines():
        f = line.split(":")
        if len(f) < 4 or line.startswith("#") or not f[2].isdigit():
            continue
        out.append(GroupEntry(f[0], int(f[2]), tuple(m for m in f[3].split(",") if m)))
    return out


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    additional_gids: Tuple[int, ...] = ()
    home: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"uid": self.uid, "gid": self.gid}
        if self.additional_gids:
            d["additionalGids"] = list(self.additional_gids)
        return d


def _id(s: str) -> Optional[int]:
    if s.isdigit():
        v = int(s)
        if v < 2**32 - 1:
            return v
    return None


def resolve_user(spec: str, passwd: Optional[bytes], group: Optional[bytes]) -> User:
    """Docker's USER forms: '', name, uid, name:group, uid:gid, uid:group, name:gid."""
    spec = (spec or "").strip()
    users = parse_passwd(passwd)
    groups = parse_group(group)
    upart, _, gpart = spec.partition(":")
    upart = upart or "0"
    entry: Optional[PasswdEntry] = None
    uid = _id(upart)
    if uid is not None:
        entry = next((u for u in users if u.uid == uid), None)
    else:
        entry = next((u for u in users if u.name == upart), None)
        if entry is None:
            where = "the image has no /etc/passwd" if passwd is None else "not in the image's /etc/passwd"
            raise InvalidArgument(f"image user {upart!r} cannot be resolved: {where}")
        uid = entry.uid
    if gpart:
        gid = _id(gpart)
        if gid is None:
            g = next((g for g in groups if g.name == gpart), None)
            if g is None:
                where = "the image has no /etc/group" if group is None else "not in the image's /etc/group"
                raise InvalidArgument(f"image group {gpart!r} cannot be resolved: {where}")
            gid = g.gid
    else:
        gid = entry.gid if entry else 0
    extra: Tuple[int, ...] = ()
    if entry is not None and not gpart:
        extra = tuple(sorted({g.gid for g in groups if entry.name in g.members and g.gid != gid}))
    return User(uid, gid, extra, entry.home if entry else None)


def _merge_env(base: List[str], extra: List[str]) -> List[str]:
    out = list(base)
    index = {e.split("=", 1)[0]: i for i, e in enumerate(out)}
    for e in extra:
        key = e.split("=", 1)[0]
        if key in index:
            out[index[key]] = e
        else:
            index[key] = len(out)
            out.append(e)
    return out


def _str_list(v: Any, what: str) -> List[str]:
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InvalidArgument(f"malformed image config: {what} must be a list of strings")
    return list(v)


def runtime_config(image_config: Dict[str, Any], passwd: Optional[bytes] = None,
                   group: Optional[bytes] = None, hostname: str = "tcr") -> Dict[str, Any]:
    """The OCI runtime config for an image config (the JSON blob the manifest points to)."""
    cfg = image_config.get("config") or {}
    if not isinstance(cfg, dict):
        raise InvalidArgument("malformed image config: 'config' is not an object")
    entrypoint = _str_list(cfg.get("Entrypoint"), "Entrypoint")
    cmd = _str_list(cfg.get("Cmd"), "Cmd")
    args = entrypoint + cmd
    user_spec = cfg.get("User") or ""
    if not isinstance(user_spec, str):
        raise InvalidArgument("malformed image config: User must be a string")
    user = resolve_user(user_spec, passwd, group)
    env = _merge_env([f"PATH={DEFAULT_PATH}", "TERM=xterm"], _str_list(cfg.get("Env"), "Env"))
    if user.home and not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home}")
    cwd = cfg.get("WorkingDir") or "/"
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        cwd = "/" + str(cwd)
    ports = cfg.get("ExposedPorts") or {}
    labels = cfg.get("Labels") or {}
    annotations: Dict[str, str] = {}
    if isinstance(labels, dict):
        annotations.update({str(k): str(v) for k, v in labels.items()})
    annotations.update({
        "org.opencontainers.image.architecture": str(image_config.get("architecture", "")),
        "org.opencontainers.image.os": str(image_config.get("os", "linux")),
        "org.opencontainers.image.author": str(image_config.get("author", "")),
        "org.opencontainers.image.created": str(image_config.get("created", "")),
        "org.opencontainers.image.exposedPorts": ",".join(sorted(ports)) if isinstance(ports, dict) else "",
        "org.opencontainers.image.stopSignal": str(cfg.get("StopSignal") or ""),
        # Entrypoint and Cmd kept apart so the device can apply docker's --entrypoint/COMMAND rules.
        "org.tcr.image.entrypoint": json.dumps(entrypoint),
        "org.tcr.image.cmd": json.dumps(cmd),
    })
    hc = cfg.get("Healthcheck")
    if isinstance(hc, dict) and hc.get("Test"):  # HEALTHCHECK, applied on the device (docs/containers.md)
        annotations["org.tcr.image.healthcheck"] = json.dumps(hc, sort_keys=True)
    caps = list(DEFAULT_CAPS)
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": user.to_dict(),
            "args": args or ["sh"],
            "env": env,
            "cwd": cwd,
            "capabilities": {k: list(caps) for k in ("bounding", "effective", "inheritable", "permitted",
                                                      "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs"},
        "hostname": hostname,
        "mounts": copy.deepcopy(_MOUNTS),
        "annotations": annotations,
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": list(_MASKED),
            "readonlyPaths": list(_READONLY),
        },
    }
