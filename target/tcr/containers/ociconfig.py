"""The final OCI runtime config.json of a container: image config + RunOptions + host facts. Pure.

Only process.args/env/cwd/user (and org.opencontainers.image.* annotations) are taken from the
image's config.json; everything that touches security (capabilities, namespaces, mounts, devices,
seccomp, rlimits, other annotations such as crun's run.oci.*) is built here from fixed defaults,
so an image cannot weaken its own sandbox. docs/security.md explains each default.
"""

from __future__ import annotations

import os

from tcr.common import jsonc, syntax
from tcr.common.errors import InvalidArgument
from tcr.common.record import dataclass, field
from tcr.containers import caps as capsmod
from tcr.containers import resources, seccomp
from tcr.containers.runrecord import RunOptions

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Annotations tcr-create-image may write to keep the image's Entrypoint and Cmd apart (umoci's
# config.json only has their concatenation in process.args). JSON-encoded string lists.
ANN_ENTRYPOINT = "org.tcr.image.entrypoint"
ANN_CMD = "org.tcr.image.cmd"

MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

_MACHINE_TO_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "386",
    "i486": "386",
    "i586": "386",
    "i686": "386",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv8l": "arm",
    "armv7l": "arm",
    "armv6l": "arm",
    "armv5tel": "arm",
    "riscv64": "riscv64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "mips64": "mips64le",
}


@dataclass(frozen=True)
class HostInfo:
    """Facts about this host that the config depends on; detected once by the daemon."""

    arch: str = "amd64"  # Go/OCI-image name: amd64, arm64, arm ...
    cgroup_version: Union[int, str] = 2  # 1, 2 or "hybrid" (v1 controllers + a v2 mount: crun uses v1)
    rlimits: Dict[str, int] = field(default_factory=dict)  # RLIMIT_* -> current hard limit, -1 = unlimited
    kernel: Tuple[int, ...] = (0, 0)
    cap_last_cap: Optional[int] = None  # /proc/sys/kernel/cap_last_cap; None = all known to tcr
    cap_bounding: Optional[int] = None  # the daemon's own bounding set (bit mask); None = unrestricted
    hostname: str = "localhost"
    ncpu: int = 1

    def to_dict(self) -> Dict[str, Any]:
        return {
            "arch": self.arch,
            "cgroupVersion": self.cgroup_version,
            "rlimits": dict(self.rlimits),
            "kernel": list(self.kernel),
            "capLastCap": self.cap_last_cap,
            "capBounding": self.cap_bounding,
            "hostname": self.hostname,
            "ncpu": self.ncpu,
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> HostInfo:
        return cls(
            arch=str(d["arch"]),
            cgroup_version=d["cgroupVersion"],
            rlimits=dict(d.get("rlimits") or {}),
            kernel=tuple(int(x) for x in d.get("kernel") or (0, 0)),
            cap_last_cap=d.get("capLastCap"),
            cap_bounding=d.get("capBounding"),
            hostname=str(d.get("hostname", "localhost")),
            ncpu=int(d.get("ncpu", 1)),
        )

    @classmethod
    def detect(cls) -> HostInfo:
        """Read the facts from this host (uname, /sys/fs/cgroup, getrlimit, /proc)."""
        from tcr.kernel import rlimits
        from tcr.kernel import sockets as socket

        machine = os.uname().machine
        arch = _MACHINE_TO_ARCH.get(machine, machine)
        if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            cg: Union[int, str] = 2
        elif os.path.exists("/sys/fs/cgroup/unified/cgroup.controllers"):
            cg = "hybrid"
        else:
            cg = 1
        found = rlimits.limits()  # /proc/self/limits: -1 = unlimited, as getrlimit's RLIM_INFINITY
        names = ("RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_CORE", "RLIMIT_MEMLOCK")
        limits: Dict[str, int] = {name: found[name][1] for name in names if name in found}
        numbers = syntax.leading_ints(os.uname().release, 3)  # '6.1.0-13-amd64' -> 6, 1, 0
        kernel = tuple(numbers) if len(numbers) >= 2 else (0, 0)
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                last: Optional[int] = int(f.read().strip())
        except (OSError, ValueError):
            last = None
        bounding: Optional[int] = None
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("CapBnd:"):
                        bounding = int(line.split()[1], 16)
        except (OSError, ValueError):
            pass
        return cls(
            arch=arch,
            cgroup_version=cg,
            rlimits=limits,
            kernel=kernel,
            cap_last_cap=last,
            cap_bounding=bounding,
            hostname=socket.gethostname(),
            ncpu=os.cpu_count() or 1,
        )


@dataclass(frozen=True)
class HostDevice:
    """A host device node as the daemon found it (tcr.kernel.devices), to appear in the container
    at `path`. bind: the node lives on a devpts (a pty): a copy made with mknod cannot be opened
    (EIO), so the host node is bind-mounted instead."""

    path: str  # in the container
    type: str  # c | b
    major: int
    minor: int
    perms: str = "rwm"
    file_mode: int = 0o600
    uid: int = 0
    gid: int = 0
    host_path: str = ""
    bind: bool = False

    def to_dict(self) -> Dict[str, Any]:
        return {"path": self.path, "type": self.type, "major": self.major, "minor": self.minor,
                "perms": self.perms, "fileMode": self.file_mode, "uid": self.uid, "gid": self.gid,
                "hostPath": self.host_path, "bind": self.bind}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> HostDevice:
        return cls(str(d["path"]), str(d["type"]), int(d["major"]), int(d["minor"]),
                   str(d.get("perms", "rwm")), int(d.get("fileMode", 0o600)), int(d.get("uid", 0)),
                   int(d.get("gid", 0)),
                   str(d.get("hostPath", "")), bool(d.get("bind", False)))


INIT_PATH = "/dev/init"  # where --init's tini appears: /dev is a tmpfs, nothing is made in the image


@dataclass(frozen=True)
class BundlePaths:
    """Where the manager put things for this container (all host paths)."""

    rootfs: str  # overlay merged dir, or the image rootfs itself for --read-only
    etc_hosts: Optional[str] = None  # generated files, bind-mounted over /etc/*
    etc_hostname: Optional[str] = None
    etc_resolv: Optional[str] = None
    netns_path: Optional[str] = None  # None = new (empty) netns; "host" = no network namespace
    volume_sources: Tuple[str, ...] = ()  # resolved -v sources, parallel to opts.volumes (empty = as given)
    cgroup_path: Optional[str] = None  # default "/tcr/<id>"
    image_user_db: Optional[str] = (
        None  # rootfs whose /etc/passwd and /etc/group resolve --user; default rootfs
    )
    devices: Tuple[HostDevice, ...] = ()  # --device (or every host device with --privileged)
    init_binary: Optional[str] = None  # host path of tini for --init

    def to_dict(self) -> Dict[str, Any]:
        return {
            "rootfs": self.rootfs,
            "etcHosts": self.etc_hosts,
            "etcHostname": self.etc_hostname,
            "etcResolv": self.etc_resolv,
            "netnsPath": self.netns_path,
            "volumeSources": list(self.volume_sources),
            "cgroupPath": self.cgroup_path,
            "imageUserDb": self.image_user_db,
            "devices": [d.to_dict() for d in self.devices],
            "initBinary": self.init_binary,
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> BundlePaths:
        return cls(
            rootfs=str(d["rootfs"]),
            etc_hosts=d.get("etcHosts"),
            etc_hostname=d.get("etcHostname"),
            etc_resolv=d.get("etcResolv"),
            netns_path=d.get("netnsPath"),
            volume_sources=tuple(d.get("volumeSources") or ()),
            cgroup_path=d.get("cgroupPath"),
            image_user_db=d.get("imageUserDb"),
            devices=tuple(HostDevice.from_dict(x) for x in d.get("devices") or ()),
            init_binary=d.get("initBinary"),
        )


# ---------------------------------------------------------------------------------------------
# Users: resolved from the image's own /etc/passwd and /etc/group, never the host's.


def walk_in_root(root: str, path: str, max_links: int = 40, must_exist: bool = False,
                 binds: Sequence[Tuple[str, str]] = ()) -> Optional[str]:
    """Host path of `path` inside `root`, following symlinks as if root were / (an image's
    /etc/passwd -> /host/secret symlink stays inside the image). With must_exist, None when a
    component is missing. A symlink loop is an InvalidArgument.

    binds: (container path, host source) of bind mounts and volumes: a component under one is
    looked up in the mount's host source, as the container will see it (the 126/127 check)."""
    table = sorted(((d.rstrip("/") or "/", s) for d, s in binds), key=lambda b: -len(b[0]))

    def host_of(parts: List[str]) -> str:
        if table:
            cpath = "/" + "/".join(parts)
            for dst, src in table:
                if cpath == dst or cpath.startswith(dst.rstrip("/") + "/"):
                    return os.path.join(src, cpath[len(dst):].lstrip("/"))
        return os.path.join(root, *parts)

    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: List[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = host_of(resolved + [part])
        if must_exist and not os.path.lexists(candidate):
            return None
        if os.path.islink(candidate):
            links += 1
            if links > max_links:
                raise InvalidArgument(f"too many symlinks resolving {path} in the image")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return host_of(resolved)


def path_in_root(root: str, path: str, max_links: int = 40) -> str:
    """walk_in_root for a path that may not exist yet (where it would be)."""
    found = walk_in_root(root, path, max_links)
    assert found is not None  # only must_exist gives None
    return found


def _read_db(root: str, path: str) -> List[List[str]]:
    try:
        with open(path_in_root(root, path), encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 20)
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


@dataclass(frozen=True)
class ExecUser:
    uid: int
    gid: int
    additional_gids: Tuple[int, ...] = ()
    home: str = "/"


def resolve_user(spec: str, root: Optional[str]) -> ExecUser:
    """docker's --user: NAME|UID[:GROUP|GID]. Names must exist in the image; a numeric uid that is
    not in /etc/passwd runs as that uid with gid 0. Supplementary groups come from /etc/group."""
    user, _, group = spec.partition(":")
    passwd = _read_db(root, "/etc/passwd") if root else []
    groups = _read_db(root, "/etc/group") if root else []
    entry = None
    for p in passwd:
        if len(p) >= 4 and (p[0] == user or (user.isdigit() and p[2] == user)):
            entry = p
            break
    if entry is not None:
        try:
            uid, gid = int(entry[2]), int(entry[3])
        except ValueError:
            raise InvalidArgument(f"invalid /etc/passwd entry for user {user!r} in the image")
        name, home = entry[0], (entry[5] if len(entry) > 5 and entry[5] else "/")
    elif user.isdigit():
        uid, gid, name, home = int(user), 0, None, "/"
    else:
        raise InvalidArgument(f"unable to find user {user}: no matching entries in the image's /etc/passwd")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            for g in groups:
                if len(g) >= 3 and g[0] == group:
                    gid = int(g[2]) if g[2].isdigit() else gid
                    break
            else:
                raise InvalidArgument(
                    f"unable to find group {group}: no matching entries in the image's /etc/group"
                )
    extra: List[int] = []
    if name is not None:
        for g in groups:
            if len(g) >= 4 and g[2].isdigit() and name in g[3].split(","):
                gi = int(g[2])
                if gi != gid and gi not in extra:
                    extra.append(gi)
    if uid > 0xFFFFFFFE or gid > 0xFFFFFFFE:
        raise InvalidArgument(f"uid/gid out of range in --user {spec!r}")
    return ExecUser(uid, gid, tuple(extra), home)


def resolve_groups(specs: Tuple[str, ...], root: Optional[str]) -> List[int]:
    """--group-add: gids as given, names looked up in the image's /etc/group."""
    if not specs:
        return []
    groups = _read_db(root, "/etc/group") if root else []
    out: List[int] = []
    for spec in specs:
        if spec.isdigit():
            gid = int(spec)
        else:
            for g in groups:
                if len(g) >= 3 and g[0] == spec and g[2].isdigit():
                    gid = int(g[2])
                    break
            else:
                raise InvalidArgument(f"unable to find group {spec}: no matching entries in the image's "
                                      "/etc/group",
                                      hint="use the numeric gid, e.g. --group-add 20")
        if gid not in out:
            out.append(gid)
    return out


# ---------------------------------------------------------------------------------------------
# Process.


def _image_entrypoint_cmd(image_config: Dict[str, Any]) -> Tuple[List[str], List[str]]:
    ann = image_config.get("annotations") or {}
    proc = image_config.get("process") or {}
    try:
        if ANN_ENTRYPOINT in ann or ANN_CMD in ann:
            ep = jsonc.loads(ann.get(ANN_ENTRYPOINT) or "[]") or []
            cmd = jsonc.loads(ann.get(ANN_CMD) or "[]") or []
            return [str(x) for x in ep], [str(x) for x in cmd]
    except (ValueError, TypeError):
        pass
    # Images without the split (e.g. made by the C tool): the whole argv counts as the command,
    # so COMMAND replaces it, as the C tool does.
    return [], [str(x) for x in proc.get("args") or []]


def resolve_args(image_config: Dict[str, Any], opts: RunOptions) -> List[str]:
    """docker's rule: --entrypoint replaces the image entrypoint and drops the image cmd;
    COMMAND replaces the image cmd."""
    image_ep, image_cmd = _image_entrypoint_cmd(image_config)
    ep = list(opts.entrypoint) if opts.entrypoint is not None else image_ep
    if opts.command:
        cmd = list(opts.command)
    else:
        cmd = [] if opts.entrypoint is not None else image_cmd
    args = ep + cmd
    if not args:
        raise InvalidArgument(
            "no command specified", hint="the image has no entrypoint or cmd; give a COMMAND"
        )
    return args


def container_hostname(opts: RunOptions, host: HostInfo, container_id: str) -> str:
    """--hostname, else the host's name with --network host (like docker), else the short id."""
    if opts.hostname:
        return opts.hostname
    if opts.network == "host":
        return host.hostname
    return container_id[:12]


def merge_env(*layers: List[str]) -> List[str]:
    """Merge K=V lists; a later value wins but keeps the key's first position."""
    out: Dict[str, str] = {}
    for layer in layers:
        for kv in layer:
            k, _, v = kv.partition("=")
            out[k] = v
    return [f"{k}={v}" for k, v in out.items()]


def _mount(dst: str, typ: str, src: str, options: List[str]) -> Dict[str, Any]:
    return {"destination": dst, "type": typ, "source": src, "options": options}


def default_mounts(shm_size: Optional[int] = None, privileged: bool = False) -> List[Dict[str, Any]]:
    shm = f"size={shm_size}" if shm_size else "size=65536k"
    sys_ro = [] if privileged else ["ro"]
    return [
        _mount("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
        _mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        _mount(
            "/dev/pts",
            "devpts",
            "devpts",
            ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        _mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev"] + sys_ro),
        _mount("/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime"] + sys_ro),
        _mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        _mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", shm]),
    ]


def _user_mounts(opts: RunOptions, paths: BundlePaths) -> List[Dict[str, Any]]:
    if paths.volume_sources and len(paths.volume_sources) != len(opts.volumes):
        raise InvalidArgument("internal: volume_sources does not match the volumes")
    out = []
    for i, v in enumerate(opts.volumes):
        src = paths.volume_sources[i] if paths.volume_sources else v.src
        out.append(
            _mount(v.dst, "bind", src, ["rbind", "rprivate", "nosuid", "nodev"] + (["ro"] if v.ro else []))
        )
    for t in opts.tmpfs:
        o = ["nosuid", "nodev"] + ([] if t.executable else ["noexec"])
        o += [f"mode={t.mode:o}" if t.mode is not None else "mode=1777", f"size={t.size}"]
        out.append(_mount(t.dst, "tmpfs", "tmpfs", o + (["ro"] if t.ro else [])))
    # Parents before children (/data before /data/logs), stable otherwise, like docker.
    out.sort(key=lambda m: m["destination"].rstrip("/").count("/"))
    return out


def _device_mounts(paths: BundlePaths) -> List[Dict[str, Any]]:
    return [_mount(d.path, "bind", d.host_path, ["rbind", "rprivate", "nosuid", "noexec"])
            for d in paths.devices if d.bind]


def _oci_devices(paths: BundlePaths) -> List[Dict[str, Any]]:
    return [{"path": d.path, "type": d.type, "major": d.major, "minor": d.minor, "fileMode": d.file_mode,
             "uid": d.uid, "gid": d.gid} for d in paths.devices if not d.bind]


def device_rules(opts: RunOptions, paths: BundlePaths) -> List[Dict[str, Any]]:
    """The device cgroup: docker's defaults, then exactly the permissions each --device asked for,
    then the --device-cgroup-rule lines. --privileged allows every device."""
    if opts.privileged:
        return [{"allow": True, "access": "rwm"}]
    rules = [dict(r) for r in resources.DEVICE_RULES]
    for d in paths.devices:
        rules.append({"allow": True, "type": d.type, "major": d.major, "minor": d.minor, "access": d.perms})
    for text in opts.device_cgroup_rules:
        typ, nums, access = text.split()
        major, _, minor = nums.partition(":")
        rule: Dict[str, Any] = {"allow": True, "type": typ, "access": access}
        if major != "*":
            rule["major"] = int(major)
        if minor != "*":
            rule["minor"] = int(minor)
        rules.append(rule)
    return rules


def build_config(
    image_config: Dict[str, Any], opts: RunOptions, host: HostInfo, paths: BundlePaths, container_id: str
) -> Dict[str, Any]:
    """The config.json crun runs. Raises InvalidArgument for requests this host cannot honour."""
    proc_in = image_config.get("process") or {}
    if opts.cpus and opts.cpus > host.ncpu:
        raise InvalidArgument(f"--cpus {opts.cpus:g} is more than the {host.ncpu} CPUs of this host")
    if opts.privileged:
        granted = capsmod.resolve(("ALL",), opts.cap_drop, host.cap_last_cap, host.cap_bounding)
    else:
        granted = capsmod.resolve(opts.cap_add, opts.cap_drop, host.cap_last_cap, host.cap_bounding)

    # user
    root_db = paths.image_user_db or paths.rootfs
    home: Optional[str] = None
    if opts.user:
        eu = resolve_user(opts.user, root_db)
        user: Dict[str, Any] = {"uid": eu.uid, "gid": eu.gid}
        if eu.additional_gids:
            user["additionalGids"] = list(eu.additional_gids)
        home = eu.home
    else:
        u = proc_in.get("user") or {}
        user = {"uid": int(u.get("uid", 0)), "gid": int(u.get("gid", 0))}
        if u.get("additionalGids"):
            user["additionalGids"] = [int(g) for g in u["additionalGids"]]
        if user["uid"] == 0:
            home = "/root"
    extra = [g for g in resolve_groups(opts.group_add, root_db) if g not in user.get("additionalGids", [])]
    if extra:
        user["additionalGids"] = list(user.get("additionalGids", [])) + extra
    is_root = user["uid"] == 0

    hostname = container_hostname(opts, host, container_id)
    image_env = [str(e) for e in proc_in.get("env") or [] if "=" in str(e)]
    base = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"] + (["TERM=xterm"] if opts.tty else [])
    env = merge_env(base, image_env, list(opts.env))
    if home and not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home}")

    args = resolve_args(image_config, opts)
    if opts.init:
        if not paths.init_binary:
            raise InvalidArgument("--init needs tini on this host", hint="install tini (tini-static)")
        args = [INIT_PATH, "--"] + args
    process: Dict[str, Any] = {
        "terminal": bool(opts.tty),
        "user": user,
        "args": args,
        "env": env,
        "cwd": opts.workdir or str(proc_in.get("cwd") or "/"),
        "capabilities": capsmod.oci_capabilities(granted, is_root),
        "rlimits": resources.rlimits(host.rlimits, [(u.name, u.soft, u.hard) for u in opts.ulimits]),
        "noNewPrivileges": not opts.privileged,
        "oomScoreAdj": 0,
    }

    mounts = default_mounts(opts.shm_size, opts.privileged)
    etc_opts = ["rbind", "rprivate", "nosuid", "nodev", "noexec"] + (["ro"] if opts.read_only else [])
    for dst, src in (
        ("/etc/hosts", paths.etc_hosts),
        ("/etc/hostname", paths.etc_hostname),
        ("/etc/resolv.conf", paths.etc_resolv),
    ):
        if src:
            mounts.append(_mount(dst, "bind", src, list(etc_opts)))
    mounts += _user_mounts(opts, paths)
    mounts += _device_mounts(paths)
    if opts.init and paths.init_binary:
        mounts.append(_mount(INIT_PATH, "bind", paths.init_binary, ["rbind", "rprivate", "ro", "nosuid"]))

    namespaces: List[Dict[str, Any]] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if paths.netns_path != "host" and opts.network != "host":
        ns: Dict[str, Any] = {"type": "network"}
        if paths.netns_path:
            ns["path"] = paths.netns_path
        namespaces.append(ns)
    if host.cgroup_version == 2:
        namespaces.append({"type": "cgroup"})

    annotations = {
        k: str(v)
        for k, v in (image_config.get("annotations") or {}).items()
        if str(k).startswith("org.opencontainers.image.")
    }
    res = resources.oci_resources(opts.memory, opts.cpus, opts.pids_limit)
    res["devices"] = device_rules(opts, paths)
    linux: Dict[str, Any] = {
        "namespaces": namespaces,
        "cgroupsPath": paths.cgroup_path or f"/tcr/{container_id}",
        "resources": res,
    }
    devices = _oci_devices(paths)
    if devices:
        linux["devices"] = devices
    if not opts.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
        linux["seccomp"] = seccomp.default_for(host.arch, granted, host.kernel)
    if opts.sysctls:
        linux["sysctl"] = dict(kv.split("=", 1) for kv in opts.sysctls)
    config: Dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": paths.rootfs, "readonly": bool(opts.read_only)},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
    }
    if annotations:
        config["annotations"] = annotations
    return config
