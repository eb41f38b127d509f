"""What `run` / `create` asked for: RunOptions and its parts, persisted with every container.

The records and the constants the daemon needs resident (container records, recovery, the OCI
config); the flag parser that builds them (tcr.containers.runopts) runs in a forked worker for
`run` and `create` (tcr.commands.containers), so a daemon never holds its ~100 kB of code
(docs/profile.md). to_dict/from_dict are the worker's reply and the on-disk shape: a faithful
round trip of everything the parser produces (test/unit/test_runopts.py).
"""

from __future__ import annotations

from tcr.common.record import dataclass, field

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Tuple

DEFAULT_NETWORK = "tcr_default"
DEFAULT_STOP_TIMEOUT = 10
DEFAULT_LOG_SIZE = 1 << 20  # per log file; small flash on the boards
DEFAULT_LOG_FILES = 2  # the default: 1 MiB x 2 files
DEFAULT_TMPFS_SIZE = 64 << 20  # the C tool's default; docker's "half of RAM" is too much on a board
RESTART_POLICIES = ("no", "on-failure", "unless-stopped", "always")


# docker's --ulimit names -> OCI rlimit types
ULIMITS = {"core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
           "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
           "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS",
           "rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING",
           "stack": "RLIMIT_STACK", "as": "RLIMIT_AS"}


@dataclass(frozen=True)
class Volume:
    """A bind mount (src: absolute host path) or a volume (src: its name; "" = anonymous, named by
    the daemon at create) -> absolute container path. create: -v makes a missing host directory,
    --mount type=bind refuses it (docker's two behaviours)."""

    src: str
    dst: str
    ro: bool = False
    kind: str = "bind"  # bind | volume
    create: bool = True
    anonymous: bool = False

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"src": self.src, "dst": self.dst, "ro": self.ro}
        if self.kind != "bind":
            d["kind"] = self.kind
        if not self.create:
            d["create"] = False
        if self.anonymous:
            d["anonymous"] = True
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> Volume:
        return cls(str(d["src"]), str(d["dst"]), bool(d.get("ro", False)), str(d.get("kind") or "bind"),
                   bool(d.get("create", True)), bool(d.get("anonymous", False)))


@dataclass(frozen=True)
class Device:
    """--device HOST[:CONTAINER][:PERMS]; perms a subset of rwm."""

    host: str
    container: str
    perms: str = "rwm"

    def to_dict(self) -> Dict[str, Any]:
        return {"host": self.host, "container": self.container, "perms": self.perms}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> Device:
        return cls(str(d["host"]), str(d["container"]), str(d.get("perms") or "rwm"))


@dataclass(frozen=True)
class Ulimit:
    name: str  # nofile, nproc, core ... (docker's names)
    soft: int  # -1 = unlimited
    hard: int

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "soft": self.soft, "hard": self.hard}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> Ulimit:
        return cls(str(d["name"]), int(d["soft"]), int(d["hard"]))


@dataclass(frozen=True)
class Tmpfs:
    """A tmpfs mount; nosuid,nodev always, noexec unless `exec` was asked for (docker's default)."""

    dst: str
    size: int = DEFAULT_TMPFS_SIZE
    mode: Optional[int] = None
    executable: bool = False
    ro: bool = False

    def to_dict(self) -> Dict[str, Any]:
        return {"dst": self.dst, "size": self.size, "mode": self.mode, "exec": self.executable, "ro": self.ro}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> Tmpfs:
        mode = d.get("mode")
        return cls(
            str(d["dst"]),
            int(d.get("size") or DEFAULT_TMPFS_SIZE),
            None if mode is None else int(mode),
            bool(d.get("exec", False)),
            bool(d.get("ro", False)),
        )


@dataclass(frozen=True)
class RestartPolicy:
    name: str = "no"
    max_retries: int = 0  # on-failure only; 0 = unlimited

    def __str__(self) -> str:
        return (
            f"{self.name}:{self.max_retries}" if self.name == "on-failure" and self.max_retries else self.name
        )

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "maxRetries": self.max_retries}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> RestartPolicy:
        return cls(str(d.get("name", "no")), int(d.get("maxRetries", 0)))


@dataclass(frozen=True)
class RunOptions:
    """Everything `run`/`create` was asked for. Lists are tuples (frozen); env is final: --config
    env, then --env-file contents, then -e, in order (later wins for the same key)."""

    image: str = ""
    command: Tuple[str, ...] = ()
    entrypoint: Optional[Tuple[str, ...]] = None  # None = the image's; () = cleared (--entrypoint "")
    detach: bool = False
    interactive: bool = False
    tty: bool = False
    rm: bool = False
    name: Optional[str] = None
    env: Tuple[str, ...] = ()
    env_files: Tuple[str, ...] = ()  # absolute paths, kept for inspect
    volumes: Tuple[Volume, ...] = ()
    tmpfs: Tuple[Tmpfs, ...] = ()
    publish: Tuple[str, ...] = ()  # raw -p specs, parsed by tcr.network.ports
    network: str = DEFAULT_NETWORK  # tcr_default | host | none | a NAT network name
    # Create a missing NAT network on first use, and remove it with its last container (the C
    # tool's rule, asked for by its dialect); docker's rule otherwise: it must exist.
    network_create: bool = False
    read_only: bool = False
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    stop_timeout: int = DEFAULT_STOP_TIMEOUT
    stop_signal: Optional[str] = None  # None = the image's (or SIGTERM)
    memory: Optional[int] = None  # bytes
    cpus: Optional[float] = None
    pids_limit: Optional[int] = None
    cap_add: Tuple[str, ...] = ()  # normalized: CAP_X or ALL
    cap_drop: Tuple[str, ...] = ()
    user: Optional[str] = None  # uid[:gid] | name[:group]; None = the image's
    workdir: Optional[str] = None
    hostname: Optional[str] = None
    log_max_size: int = DEFAULT_LOG_SIZE
    log_max_files: int = DEFAULT_LOG_FILES
    log_driver: str = "file"  # file | syslog | none
    config_file: Optional[str] = None  # the --config file it came from, for inspect
    devices: Tuple[Device, ...] = ()
    device_cgroup_rules: Tuple[str, ...] = ()  # normalized "c 189:* rwm"
    group_add: Tuple[str, ...] = ()  # gids or group names of the image
    privileged: bool = False
    add_hosts: Tuple[str, ...] = ()  # "name:ip"
    dns: Tuple[str, ...] = ()
    dns_search: Tuple[str, ...] = ()
    dns_options: Tuple[str, ...] = ()
    init: bool = False
    ulimits: Tuple[Ulimit, ...] = ()
    labels: Tuple[str, ...] = ()  # "k=v", in order
    sysctls: Tuple[str, ...] = ()  # "net.x=v"
    shm_size: Optional[int] = None
    publish_all: bool = False
    health: Optional[Dict[str, Any]] = None  # --health-* flags (healthcfg.py); None = the image's
    network_aliases: Tuple[str, ...] = ()  # --network-alias: more DNS names on its network(s)
    # More NAT networks from a repeated --network (docker 25's run --network A --network B): the
    # container is connected to them too at its start, as by `network connect` (docs/networking.md).
    extra_networks: Tuple[str, ...] = ()

    def to_dict(self) -> Dict[str, Any]:
        return {
            "image": self.image,
            "command": list(self.command),
            "entrypoint": None if self.entrypoint is None else list(self.entrypoint),
            "detach": self.detach,
            "interactive": self.interactive,
            "tty": self.tty,
            "rm": self.rm,
            "name": self.name,
            "env": list(self.env),
            "envFiles": list(self.env_files),
            "volumes": [v.to_dict() for v in self.volumes],
            "tmpfs": [t.to_dict() for t in self.tmpfs],
            "publish": list(self.publish),
            "network": self.network,
            "networkCreate": self.network_create,
            "readOnly": self.read_only,
            "restart": self.restart.to_dict(),
            "stopTimeout": self.stop_timeout,
            "stopSignal": self.stop_signal,
            "memory": self.memory,
            "cpus": self.cpus,
            "pidsLimit": self.pids_limit,
            "capAdd": list(self.cap_add),
            "capDrop": list(self.cap_drop),
            "user": self.user,
            "workdir": self.workdir,
            "hostname": self.hostname,
            "logMaxSize": self.log_max_size,
            "logMaxFiles": self.log_max_files,
            "logDriver": self.log_driver,
            "configFile": self.config_file,
            "devices": [x.to_dict() for x in self.devices],
            "deviceCgroupRules": list(self.device_cgroup_rules),
            "groupAdd": list(self.group_add),
            "privileged": self.privileged,
            "addHosts": list(self.add_hosts),
            "dns": list(self.dns),
            "dnsSearch": list(self.dns_search),
            "dnsOptions": list(self.dns_options),
            "init": self.init,
            "ulimits": [u.to_dict() for u in self.ulimits],
            "labels": self.label_dict(),  # an object, as docker shows labels (commands/views.py)
            "sysctls": list(self.sysctls),
            "shmSize": self.shm_size,
            "publishAll": self.publish_all,
            "health": self.health,
            "networkAliases": list(self.network_aliases),
            "extraNetworks": list(self.extra_networks),
        }

    def label_dict(self) -> Dict[str, str]:
        return dict(kv.partition("=")[::2] for kv in self.labels)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> RunOptions:
        ep = d.get("entrypoint")
        cpus = d.get("cpus")
        return cls(
            image=str(d.get("image", "")),
            command=tuple(str(x) for x in d.get("command") or ()),
            entrypoint=None if ep is None else tuple(str(x) for x in ep),
            detach=bool(d.get("detach", False)),
            interactive=bool(d.get("interactive", False)),
            tty=bool(d.get("tty", False)),
            rm=bool(d.get("rm", False)),
            name=d.get("name"),
            env=tuple(str(x) for x in d.get("env") or ()),
            env_files=tuple(str(x) for x in d.get("envFiles") or ()),
            volumes=tuple(Volume.from_dict(v) for v in d.get("volumes") or ()),
            tmpfs=tuple(Tmpfs.from_dict(t) for t in d.get("tmpfs") or ()),
            publish=tuple(str(x) for x in d.get("publish") or ()),
            network=str(d.get("network") or DEFAULT_NETWORK),
            network_create=bool(d.get("networkCreate", False)),
            read_only=bool(d.get("readOnly", False)),
            restart=RestartPolicy.from_dict(d.get("restart") or {}),
            stop_timeout=int(d.get("stopTimeout", DEFAULT_STOP_TIMEOUT)),
            stop_signal=d.get("stopSignal"),
            memory=d.get("memory"),
            cpus=None if cpus is None else float(cpus),
            pids_limit=d.get("pidsLimit"),
            cap_add=tuple(d.get("capAdd") or ()),
            cap_drop=tuple(d.get("capDrop") or ()),
            user=d.get("user"),
            workdir=d.get("workdir"),
            hostname=d.get("hostname"),
            log_max_size=int(d.get("logMaxSize", DEFAULT_LOG_SIZE)),
            log_max_files=int(d.get("logMaxFiles", DEFAULT_LOG_FILES)),
            log_driver=str(d.get("logDriver") or "file"),
            config_file=d.get("configFile"),
            devices=tuple(Device.from_dict(x) for x in d.get("devices") or ()),
            device_cgroup_rules=tuple(str(x) for x in d.get("deviceCgroupRules") or ()),
            group_add=tuple(str(x) for x in d.get("groupAdd") or ()),
            privileged=bool(d.get("privileged", False)),
            add_hosts=tuple(str(x) for x in d.get("addHosts") or ()),
            dns=tuple(str(x) for x in d.get("dns") or ()),
            dns_search=tuple(str(x) for x in d.get("dnsSearch") or ()),
            dns_options=tuple(str(x) for x in d.get("dnsOptions") or ()),
            init=bool(d.get("init", False)),
            ulimits=tuple(Ulimit.from_dict(u) for u in d.get("ulimits") or ()),
            labels=_labels_from(d.get("labels")),
            sysctls=tuple(str(x) for x in d.get("sysctls") or ()),
            shm_size=d.get("shmSize"),
            publish_all=bool(d.get("publishAll", False)),
            health=_health_record(d.get("health")),
            network_aliases=tuple(str(x) for x in d.get("networkAliases") or ()),
            extra_networks=tuple(str(x) for x in d.get("extraNetworks") or ()),
        )


def _labels_from(v: Any) -> Tuple[str, ...]:
    if isinstance(v, dict):
        return tuple(f"{k}={val}" for k, val in v.items())
    return tuple(str(x) for x in v or ())


def _health_record(d: Any) -> Optional[Dict[str, Any]]:
    if d is None:
        return None
    from tcr.containers.healthcfg import validate_record

    return validate_record(d)
