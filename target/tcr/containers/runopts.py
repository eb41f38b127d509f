"""`tcr run` / `tcr create` flags -> RunOptions (tcr.containers.runrecord, persisted with the container).

tcrd parses in a forked worker (tcr.commands.containers): this module, its parser and every
helper here stay out of the daemon's memory; the records the daemon keeps are in runrecord.

Parsing is pure apart from reading --env-file, --label-file and --config files through
`read_file` (paths are the client's, resolved against its working directory; the Python client
has already expanded --env-file, --label-file and `-e NAME` itself: tcr.cli.runargs). Flag
meanings are docker's; options stop at the image name, so `tcr run busybox ls -l` passes `-l` to
ls. `--config FILE` loads the C tool's JSON run config (tools/run-config-schema.json); flags given
on the command line override it, and list flags (-e, -v, --tmpfs, -p) add to it.
"""

from __future__ import annotations

import os

from tcr.common import signames, syntax
from tcr.common.errors import InvalidArgument, UsageError
from tcr.common.record import replace
from tcr.containers import caps as capsmod
from tcr.containers import resources
from tcr.containers.runrecord import (
    DEFAULT_LOG_FILES,
    DEFAULT_NETWORK,
    DEFAULT_TMPFS_SIZE,
    RESTART_POLICIES,
    ULIMITS,
    Device,
    RestartPolicy,
    RunOptions,
    Tmpfs,
    Ulimit,
    Volume,
)

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

    from tcr.commands.argv import ArgParser

MIN_LOG_SIZE = 4 << 10  # below this a log file holds no useful line


def valid_hostname(text: str) -> bool:
    """^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$"""
    return syntax.word(text, syntax.ALNUM, syntax.ALNUM + ".-", 63)


def valid_user_part(text: str) -> bool:
    """^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,31}\\$?$ (a user or group name; a trailing $ as Samba's)."""
    return syntax.word(text[:-1] if text.endswith("$") else text, syntax.ALNUM + "_", syntax.NAME_CHARS, 32)


# ---------------------------------------------------------------------------------------------
# Value parsers: each raises InvalidArgument with one line naming the flag and the bad value.


def _abs_in_container(path: str, what: str) -> str:
    if not path.startswith("/"):
        raise InvalidArgument(f"{what} must be an absolute path in the container: {path!r}")
    norm = os.path.normpath(path)
    return "/" + norm.lstrip("/") if norm != "/" else "/"


def _host_path(path: str, base: str) -> str:
    return os.path.normpath(os.path.join(base or "/", path))




def parse_volume(spec: str, pwd: str) -> Volume:
    """-v SRC:DST[:ro|rw], -v NAME:DST[:ro] (a named volume) or -v DST (an anonymous volume).
    A SRC with a '/' or starting with '.' is a host path (relative ones against pwd)."""
    parts = spec.split(":")
    hint = "use -v HOST_PATH:CONTAINER_PATH[:ro], -v VOLUME:CONTAINER_PATH[:ro] or -v CONTAINER_PATH"
    if len(parts) == 1:
        dst = _abs_in_container(parts[0], "volume destination")
        if dst == "/":
            raise InvalidArgument(f"invalid volume {spec!r}: cannot mount over /")
        return Volume("", dst, False, "volume", anonymous=True)
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume {spec!r}", hint=hint)
    src, dst = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise InvalidArgument(f"invalid volume mode {mode!r} in {spec!r}: use ro or rw")
    dst = _abs_in_container(dst, "volume destination")
    if dst == "/":
        raise InvalidArgument(f"invalid volume {spec!r}: cannot mount over /")
    if not (src.startswith("/") or src.startswith(".") or "/" in src):
        if not syntax.name(src):
            raise InvalidArgument(f"invalid volume name {src!r}",
                                  hint="letters, digits, '_', '.', '-'; must start with a letter or digit")
        return Volume(src, dst, mode == "ro", "volume")
    return Volume(_host_path(src, pwd), dst, mode == "ro")


def parse_mount(spec: str, pwd: str) -> Any:
    """--mount type=bind|volume|tmpfs,source=..,target=..[,readonly][,tmpfs-size=..][,tmpfs-mode=..]
    -> a Volume or a Tmpfs. Unlike -v, a bind source must exist."""
    kv: Dict[str, str] = {}
    flags = set()
    for item in [x.strip() for x in spec.split(",") if x.strip()]:
        k, eq, v = item.partition("=")
        k = k.lower()
        if not eq:
            flags.add(k)
        else:
            kv[{"src": "source", "dst": "target", "destination": "target", "ro": "readonly"}.get(k, k)] = v
    typ = kv.pop("type", "volume")
    dst = kv.pop("target", "")
    if not dst:
        raise InvalidArgument(f"invalid --mount {spec!r}: target= is required")
    dst = _abs_in_container(dst, "--mount target")
    if dst == "/":
        raise InvalidArgument(f"invalid --mount {spec!r}: cannot mount over /")
    ro_text = kv.pop("readonly", None)
    ro = "readonly" in flags or "ro" in flags or (ro_text is not None and ro_text.lower() in ("1", "true"))
    if ro_text is not None and ro_text.lower() not in ("0", "1", "true", "false"):
        raise InvalidArgument(f"invalid --mount {spec!r}: readonly={ro_text!r} is not a boolean")
    flags -= {"readonly", "ro"}
    if typ == "tmpfs":
        if kv.pop("source", ""):
            raise InvalidArgument(f"invalid --mount {spec!r}: a tmpfs has no source")
        t = Tmpfs(dst, ro=ro)
        if "tmpfs-size" in kv:
            t = replace(t, size=resources.parse_size(kv.pop("tmpfs-size"), "tmpfs-size"))
        if "tmpfs-mode" in kv:
            mode = kv.pop("tmpfs-mode")
            if not syntax.octal_mode(mode):
                raise InvalidArgument(f"invalid tmpfs-mode {mode!r} in --mount: use octal like 1777")
            t = replace(t, mode=int(mode, 8))
        rest = sorted(kv) + sorted(flags)
    elif typ in ("bind", "volume"):
        src = kv.pop("source", "")
        rest = sorted(kv) + sorted(flags)
        if typ == "bind":
            if not src:
                raise InvalidArgument(f"invalid --mount {spec!r}: a bind mount needs source=")
            vol = Volume(_host_path(src, pwd), dst, ro, "bind", create=False)
        elif not src:
            vol = Volume("", dst, ro, "volume", anonymous=True)
        elif not syntax.name(src):
            raise InvalidArgument(f"invalid volume name {src!r} in --mount")
        else:
            vol = Volume(src, dst, ro, "volume")
        if rest:
            raise InvalidArgument(f"unsupported --mount option {rest[0]!r} in {spec!r}")
        return vol
    else:
        raise InvalidArgument(f"invalid --mount type {typ!r}: use bind, volume or tmpfs")
    if rest:
        raise InvalidArgument(f"unsupported --mount option {rest[0]!r} in {spec!r}")
    return t


def parse_device(spec: str) -> Device:
    """--device HOST[:CONTAINER][:PERMS]."""
    parts = spec.split(":")
    perms = "rwm"
    if len(parts) > 1 and parts[-1] and not parts[-1].startswith("/"):
        perms = parts.pop()
        if not perms or any(c not in "rwm" for c in perms) or len(set(perms)) != len(perms):
            raise InvalidArgument(f"invalid device permissions {perms!r} in --device {spec!r}",
                                  hint="a combination of r, w and m")
    if len(parts) > 2 or not parts[0]:
        raise InvalidArgument(f"invalid --device {spec!r}", hint="use --device HOST[:CONTAINER][:rwm]")
    host = parts[0]
    if not host.startswith("/"):
        raise InvalidArgument(f"invalid --device {spec!r}: the host path must be absolute")
    ctr = _abs_in_container(parts[1] if len(parts) == 2 and parts[1] else host, "device path")
    host = os.path.normpath(host)
    return Device(host, ctr, "".join(c for c in "rwm" if c in perms))




def _cgroup_rule_parts(norm: str) -> Tuple[str, str, str, str]:
    """^([abc]) (\\*|\\d+):(\\*|\\d+) ([rwm]{1,3})$: 'c 189:* rwm' -> ('c', '189', '*', 'rwm');
    all empty if it is not a rule."""
    parts = norm.split(" ")
    if len(parts) == 3 and parts[0] in ("a", "b", "c"):
        major, colon, minor = parts[1].partition(":")
        if (colon and all(n == "*" or syntax.number(n) for n in (major, minor))
                and 0 < len(parts[2]) <= 3 and syntax.only(parts[2], "rwm")):
            return parts[0], major, minor, parts[2]
    return "", "", "", ""


def parse_cgroup_rule(text: str) -> str:
    """--device-cgroup-rule 'c 189:* rwm' (type a|b|c, major and minor a number or *)."""
    norm = " ".join(text.split())
    kind, major, minor, perms = _cgroup_rule_parts(norm)
    if not kind or len(set(perms)) != len(perms):
        raise InvalidArgument(f"invalid --device-cgroup-rule {text!r}", hint="e.g. 'c 189:* rwm'")
    # the kernel's dev_t: 12-bit majors, 20-bit minors
    if (major != "*" and int(major) > 4095) or (minor != "*" and int(minor) > 0xFFFFF):
        raise InvalidArgument(f"invalid --device-cgroup-rule {text!r}: major or minor out of range")
    return norm


def parse_group(text: str) -> str:
    if not (text.isdigit() or valid_user_part(text)) or text.endswith("$"):
        raise InvalidArgument(f"invalid --group-add {text!r}: use a gid or a group name of the image")
    if text.isdigit() and int(text) > 0xFFFFFFFE:
        raise InvalidArgument(f"invalid --group-add {text!r}: gid out of range")
    return text


def _is_ip(text: str) -> bool:
    from tcr.network import ipaddr  # not ipaddress: ~0.4 MB resident for a daemon (docs/profile.md)

    try:
        ipaddr.ip_address(text)
    except ValueError:
        return False
    return True


def parse_add_host(text: str) -> str:
    """--add-host NAME:IP (docker also takes NAME=IP); IPv6 addresses keep their colons."""
    sep = "=" if "=" in text else ":"
    name, _, ip = text.partition(sep)
    ip = ip.strip("[]")
    if not name or not valid_hostname(name) or not _is_ip(ip):
        raise InvalidArgument(f"invalid --add-host {text!r}", hint="use NAME:IP, e.g. db:10.0.0.5")
    return f"{name}:{ip}"


def parse_dns(text: str) -> str:
    if not _is_ip(text):
        raise InvalidArgument(f"invalid --dns {text!r}: use an IP address")
    return text


def parse_dns_word(text: str, flag: str) -> str:
    if not (0 < len(text) <= 253 and syntax.only(text, syntax.ALNUM + "_.:-")):  # ^[A-Za-z0-9_.:-]{1,253}$
        raise InvalidArgument(f"invalid {flag} {text!r}")
    return text



def parse_ulimit(text: str) -> Ulimit:
    """--ulimit NAME=SOFT[:HARD]; -1 or 'unlimited' = no limit."""
    name, eq, val = text.partition("=")
    if name not in ULIMITS or not eq:
        raise InvalidArgument(f"invalid --ulimit {text!r}", hint="NAME=SOFT[:HARD], NAME one of "
                              + ", ".join(sorted(ULIMITS)))
    soft_s, _, hard_s = val.partition(":")

    def num(x: str) -> int:
        if x in ("-1", "unlimited"):
            return -1
        if not x.isdigit() or int(x) >= 1 << 63:
            raise InvalidArgument(f"invalid --ulimit {text!r}: {x!r} is not a number (-1 = unlimited)")
        return int(x)

    soft = num(soft_s)
    hard = num(hard_s) if hard_s else soft
    if hard != -1 and (soft == -1 or soft > hard):
        raise InvalidArgument(f"invalid --ulimit {text!r}: the soft limit is above the hard limit")
    return Ulimit(name, soft, hard)


def parse_label(text: str) -> str:
    key, eq, val = text.partition("=")
    if not key or key != key.strip() or "\0" in text:
        raise InvalidArgument(f"invalid --label {text!r}", hint="use KEY=VALUE")
    return f"{key}={val}"


# namespaced sysctls a container may set (docker's list, minus IPC for now: net.* is what boards need)
_SYSCTL_PREFIXES = ("net.",)
_SYSCTL_IPC = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
               "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def _sysctl_key(key: str) -> bool:
    """^[a-z0-9_]+(\\.[a-zA-Z0-9_-]+)+$"""
    return syntax.dotted(key, syntax.DIGITS + syntax.LOWER + "_", syntax.ALNUM + "_-")


def parse_sysctl(text: str) -> str:
    key, eq, val = text.partition("=")
    key = key.replace("/", ".")
    if not eq or not _sysctl_key(key) or "\n" in val or not val:
        raise InvalidArgument(f"invalid --sysctl {text!r}", hint="use KEY=VALUE, e.g. net.ipv4.ip_forward=1")
    if not (key.startswith(_SYSCTL_PREFIXES) or key in _SYSCTL_IPC or key.startswith("fs.mqueue.")):
        raise InvalidArgument(f"--sysctl {key} is not namespaced: it would change the host",
                              hint="only net.*, fs.mqueue.* and the IPC kernel.* keys can be set")
    return f"{key}={val}"


def parse_tmpfs(spec: str) -> Tmpfs:
    """--tmpfs DST[:OPTS] with docker options (size=64m, mode=1777, exec, noexec, ro, rw, nosuid, nodev),
    or DST:SIZE like the C tool."""
    dst, _, opts = spec.partition(":")
    dst = _abs_in_container(dst, "tmpfs destination")
    if dst == "/":
        raise InvalidArgument("invalid --tmpfs: cannot mount over /")
    t = Tmpfs(dst)
    for opt in [o.strip() for o in opts.split(",") if o.strip()] if opts else []:
        key, eq, val = opt.partition("=")
        if key == "size" and eq:
            t = replace(t, size=resources.parse_size(val, "tmpfs size"))
        elif key == "mode" and eq:
            if not syntax.octal_mode(val):
                raise InvalidArgument(f"invalid tmpfs mode {val!r} in {spec!r}: use octal like 1777")
            t = replace(t, mode=int(val, 8))
        elif opt in ("exec", "noexec"):
            t = replace(t, executable=opt == "exec")
        elif opt in ("ro", "rw"):
            t = replace(t, ro=opt == "ro")
        elif opt in ("nosuid", "nodev", "rprivate", "private"):
            pass  # always applied / the default anyway
        elif not eq and opt[0] in syntax.DIGITS:
            t = replace(t, size=resources.parse_size(opt, "tmpfs size"))
        else:
            raise InvalidArgument(
                f"unsupported tmpfs option {opt!r} in {spec!r}",
                hint="size=N, mode=OCTAL, exec, noexec, ro, rw",
            )
    return t


def parse_restart(text: str) -> RestartPolicy:
    name, _, count = text.partition(":")
    if name not in RESTART_POLICIES:
        raise InvalidArgument(
            f"invalid restart policy {text!r}", hint="no, on-failure[:N], unless-stopped, always"
        )
    if count:
        if name != "on-failure":
            raise InvalidArgument(f"invalid restart policy {text!r}: only on-failure takes a retry count")
        if not count.isdigit():
            raise InvalidArgument(f"invalid restart retry count {count!r}: use a whole number")
        return RestartPolicy(name, int(count))
    return RestartPolicy(name, 0)


LOG_DRIVERS = {"file": "file", "json-file": "file", "local": "file", "k8s-file": "file", "syslog": "syslog",
               "journald": "syslog", "none": "none"}


def parse_log_driver(text: str) -> str:
    """--log-driver: docker's file-backed names all mean tcr's rotating file; journald reads
    /dev/log like syslog does."""
    d = LOG_DRIVERS.get(text.strip().lower())
    if d is None:
        raise InvalidArgument(f"unsupported --log-driver {text!r}", hint="use file, syslog or none")
    return d


def parse_user(text: str) -> str:
    user, sep, group = text.partition(":")
    if not user or (sep and not group):
        raise InvalidArgument(f"invalid --user {text!r}", hint="use UID[:GID] or NAME[:GROUP]")
    for part in (user, group) if sep else (user,):
        if not (part.isdigit() or valid_user_part(part)):
            raise InvalidArgument(f"invalid --user {text!r}: {part!r} is not a uid or a user/group name")
    return text


def parse_env_line(text: str) -> Optional[str]:
    """-e K=V -> 'K=V'. -e K (docker copies K from the client's environment; the daemon's is not
    the user's, so, like an unset client variable, it is skipped) -> None."""
    key, eq, _ = text.partition("=")
    if not key or "=" in key or "\0" in key or key != key.strip():
        raise InvalidArgument(f"invalid environment variable {text!r}")
    return text if eq else None


def parse_env_file(text: str, path: str) -> List[str]:
    """docker's env-file format: KEY=VALUE lines taken literally (no quotes), # comments, blank lines."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        try:
            v = parse_env_line(line)
        except InvalidArgument:
            raise InvalidArgument(f"invalid line {n} in env file {path}: {line[:60]!r}")
        if v is not None:
            out.append(v)
    return out


def parse_network(text: str) -> str:
    if text in ("bridge", "default"):  # docker's name for the default NAT network
        return DEFAULT_NETWORK
    if not syntax.name(text):
        raise InvalidArgument(f"invalid network name: {text!r}")
    return text


def _int_flag(text: str, flag: str, minimum: int = 0) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise InvalidArgument(f"invalid {flag} value: {text!r} is not a whole number")
    if value < minimum:
        raise InvalidArgument(f"invalid {flag} value: {text!r} must be at least {minimum}")
    return value


# ---------------------------------------------------------------------------------------------
# The C tool's JSON run config (tools/run-config-schema.json).

_CONFIG_KEYS = {
    "image",
    "name",
    "detached",
    "terminal",
    "readonly",
    "autoRemove",
    "command",
    "env",
    "mounts",
    "tmpfs",
    "ports",
    "network",
    "noNetwork",
    "restartPolicy",
    "stopTimeout",
}


def _want(value: Any, typ: Any, what: str) -> Any:
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        names = {str: "a string", bool: "a boolean", int: "an integer", list: "an array", dict: "an object"}
        raise InvalidArgument(f"run config: {what} must be {names.get(typ, typ)}")
    return value


def parse_run_config(data: Any, config_dir: str) -> Dict[str, Any]:
    """The C tool's run config -> RunOptions fields. Relative mount sources are resolved against the
    config file's directory (its documented rule)."""
    if not isinstance(data, dict):
        raise InvalidArgument("run config must be a JSON object")
    unknown = sorted(set(data) - _CONFIG_KEYS)
    if unknown:
        raise InvalidArgument(
            f"run config: unknown key {unknown[0]!r}", hint="see tools/run-config-schema.json"
        )
    out: Dict[str, Any] = {}
    if "image" not in data:
        raise InvalidArgument("run config: 'image' is required")
    out["image"] = _want(data["image"], str, "'image'")
    if data.get("name") is not None:
        out["name"] = _want(data["name"], str, "'name'")
    for key, attr in (
        ("detached", "detach"),
        ("terminal", "tty"),
        ("readonly", "read_only"),
        ("autoRemove", "rm"),
    ):
        if data.get(key) is not None:
            out[attr] = _want(data[key], bool, f"'{key}'")
    if data.get("command") is not None:
        cmd = _want(data["command"], list, "'command'")
        if not cmd:
            raise InvalidArgument("run config: 'command' must not be empty")
        out["command"] = tuple(_want(c, str, "'command' items") for c in cmd)
        out["entrypoint"] = ()  # the C tool's command is the full argv
    if data.get("env") is not None:
        env = _want(data["env"], dict, "'env'")
        out["env"] = [f"{k}={_want(v, str, f'env value of {k!r}')}" for k, v in env.items()]
        for e in out["env"]:
            parse_env_line(e)
    vols = []
    for i, m in enumerate(_want(data.get("mounts") or [], list, "'mounts'")):
        _want(m, dict, f"mounts[{i}]")
        extra = set(m) - {"source", "destination", "readonly"}
        if extra or "source" not in m or "destination" not in m:
            raise InvalidArgument(
                f"run config: mounts[{i}] needs source and destination only"
                + (f" (unknown {sorted(extra)[0]!r})" if extra else "")
            )
        src = _want(m["source"], str, f"mounts[{i}].source")
        dst = _abs_in_container(
            _want(m["destination"], str, f"mounts[{i}].destination"), f"mounts[{i}].destination"
        )
        ro = _want(m.get("readonly", False), bool, f"mounts[{i}].readonly")
        vols.append(Volume(_host_path(src, config_dir), dst, ro))
    out["volumes"] = vols
    tmpfs = []
    for i, t in enumerate(_want(data.get("tmpfs") or [], list, "'tmpfs'")):
        _want(t, dict, f"tmpfs[{i}]")
        if "destination" not in t or set(t) - {"destination", "size"}:
            raise InvalidArgument(f"run config: tmpfs[{i}] needs destination and optional size only")
        dst = _abs_in_container(
            _want(t["destination"], str, f"tmpfs[{i}].destination"), f"tmpfs[{i}].destination"
        )
        size = _want(t.get("size", 0), int, f"tmpfs[{i}].size")
        if size < 0:
            raise InvalidArgument(f"run config: tmpfs[{i}].size must be >= 0")
        tmpfs.append(Tmpfs(dst, size or DEFAULT_TMPFS_SIZE))
    out["tmpfs"] = tmpfs
    ports = []
    for i, p in enumerate(_want(data.get("ports") or [], list, "'ports'")):
        _want(p, dict, f"ports[{i}]")
        if set(p) - {"hostPort", "containerPort", "hostIp", "protocol"}:
            raise InvalidArgument(f"run config: ports[{i}] has an unknown key")
        hp = _want(p.get("hostPort"), int, f"ports[{i}].hostPort")
        cp = _want(p.get("containerPort"), int, f"ports[{i}].containerPort")
        if not (1 <= hp <= 65535 and 1 <= cp <= 65535):
            raise InvalidArgument(f"run config: ports[{i}] ports must be 1-65535")
        proto = _want(p.get("protocol", "tcp"), str, f"ports[{i}].protocol")
        if proto not in ("tcp", "udp"):
            raise InvalidArgument(f"run config: ports[{i}].protocol must be 'tcp' or 'udp'")
        ip = _want(p.get("hostIp", ""), str, f"ports[{i}].hostIp")
        ports.append(f"{ip + ':' if ip else ''}{hp}:{cp}/{proto}")
    out["publish"] = ports
    no_net = _want(data.get("noNetwork", False), bool, "'noNetwork'")
    if data.get("network") is not None:
        if no_net:
            raise InvalidArgument("run config: 'network' and 'noNetwork' are mutually exclusive")
        out["network"] = parse_network(_want(data["network"], str, "'network'"))
    elif no_net:
        out["network"] = "none"
    if data.get("restartPolicy") is not None:
        rp = _want(data["restartPolicy"], str, "'restartPolicy'")
        if rp not in ("no", "unless-stopped", "always"):
            raise InvalidArgument("run config: restartPolicy must be 'no', 'unless-stopped' or 'always'")
        out["restart"] = RestartPolicy(rp)
    if data.get("stopTimeout") is not None:
        st = _want(data["stopTimeout"], int, "'stopTimeout'")
        if st < 0:
            raise InvalidArgument("run config: stopTimeout must be >= 0")
        out["stop_timeout"] = st
    return out


# ---------------------------------------------------------------------------------------------
# Command line.


def _read_text(path: str) -> str:
    """--env-file and --config files: read by the daemon for the client, so never blocking (a FIFO),
    regular files only (/dev/zero), capped (tcr.common.fileread: 1 MiB for both)."""
    from tcr.common import fileread

    return fileread.read_text(path, max(fileread.ENV_FILE_CAP, fileread.RUN_CONFIG_CAP))


_PARSERS: Dict[str, Any] = {}


def _parser(prog: str):
    from tcr.commands.base import Parser

    p = Parser(
        prog,
        add_help=False,
        usage=f"tcr {prog} [OPTIONS] IMAGE [COMMAND [ARG...]]",
        description="Run a command in a new container." if prog == "run" else "Create a new container.",
    )
    a = p.add_argument
    a("--help", action="help", help="show this help")
    a("-d", "--detach", action="store_true", default=None, help="run in the background, print the id")
    a("-i", "--interactive", action="store_true", default=None, help="keep stdin open")
    a("-t", "--tty", action="store_true", default=None, help="allocate a pseudo-TTY")
    a("--rm", action="store_true", default=None, help="remove the container when it exits")
    a("--name", help="container name")
    a("-e", "--env", action="append", default=[], metavar="K=V", help="set an environment variable")
    a("--env-file", action="append", default=[], metavar="FILE", help="read KEY=VALUE lines from a file")
    a("-v", "--volume", action="append", default=[], metavar="SRC:DST[:ro]", help="bind mount a host path")
    a(
        "--tmpfs",
        action="append",
        default=[],
        metavar="DST[:OPTS]",
        help="mount a tmpfs (size=64m, mode, exec)",
    )
    a("-p", "--publish", action="append", default=[], metavar="[IP:]HOST:CTR[/PROTO]", help="publish a port")
    a(
        "--network",
        "--net",
        dest="network",
        action="append",
        metavar="NAME",
        help="tcr_default (default), host, none, or a network; repeat it for more networks",
    )
    a("--read-only", action="store_true", default=None, help="mount the root filesystem read-only")
    a("--restart", metavar="POLICY", help="no, on-failure[:N], unless-stopped, always")
    a("--stop-timeout", metavar="SECONDS", help="seconds between the stop signal and SIGKILL (default 10)")
    a("--stop-signal", metavar="SIGNAL", help="signal that stops the container (default SIGTERM)")
    a("-m", "--memory", metavar="BYTES", help="memory limit, e.g. 64m, 1g")
    a("--cpus", metavar="N", help="CPU limit, e.g. 0.5")
    a("--pids-limit", metavar="N", help="process limit (-1 = unlimited)")
    a("--cap-add", action="append", default=[], metavar="CAP", help="add a capability (or ALL)")
    a("--cap-drop", action="append", default=[], metavar="CAP", help="drop a capability (or ALL)")
    a("-u", "--user", metavar="USER[:GROUP]", help="user name or uid, optional group")
    a("-w", "--workdir", metavar="DIR", help="working directory inside the container")
    a("--entrypoint", metavar="CMD", help="override the image's entrypoint ('' clears it)")
    a("-h", "--hostname", metavar="NAME", help="container hostname")
    a("--log-size", metavar="BYTES", help="size of one log file for detached runs (default 1m)")
    a("--log-files", metavar="N", help=f"number of rotated log files kept (default {DEFAULT_LOG_FILES})")
    a("--log-driver", metavar="DRIVER", help="file (default; json-file, local), syslog or none")
    a(
        "--log-opt",
        action="append",
        default=[],
        metavar="max-size=S|max-file=N",
        help="docker-style log options",
    )
    a("--config", metavar="FILE", help="JSON run config (the C tool's format); flags override it")
    a("--mount", action="append", default=[], metavar="type=bind|volume|tmpfs,...", help="attach a mount")
    a("-P", "--publish-all", action="store_true", default=None, help="publish every EXPOSEd port")
    a("--device", action="append", default=[], metavar="HOST[:CTR][:rwm]", help="add a host device")
    a("--device-cgroup-rule", action="append", default=[], metavar="'c MAJ:MIN rwm'",
      help="allow devices in the device cgroup (hot-plug)")
    a("--group-add", action="append", default=[], metavar="GROUP", help="add a supplementary group")
    a("--privileged", action="store_true", default=None,
      help="all devices, all capabilities, no seccomp (docs/security.md)")
    a("--add-host", action="append", default=[], metavar="NAME:IP", help="add a line to /etc/hosts")
    a("--dns", action="append", default=[], metavar="IP", help="DNS server")
    a("--dns-search", action="append", default=[], metavar="DOMAIN", help="DNS search domain")
    a("--dns-option", "--dns-opt", dest="dns_option", action="append", default=[], metavar="OPT",
      help="resolv.conf option")
    a("--init", action="store_true", default=None, help="run tini as PID 1 (reaps zombies)")
    a("--ulimit", action="append", default=[], metavar="NAME=SOFT[:HARD]", help="set a ulimit")
    a("-l", "--label", action="append", default=[], metavar="K=V", help="set a label")
    a("--label-file", action="append", default=[], metavar="FILE", help="read K=V labels from a file")
    a("--sysctl", action="append", default=[], metavar="K=V", help="namespaced sysctl (net.*)")
    a("--shm-size", metavar="BYTES", help="size of /dev/shm (default 64m)")
    a("--health-cmd", metavar="CMD", help="command run in the container to check its health (sh -c)")
    a("--health-interval", metavar="DURATION", help="time between checks (default 30s)")
    a("--health-timeout", metavar="DURATION", help="a check that runs longer fails (default 30s)")
    a("--health-retries", metavar="N", help="consecutive failures that make it unhealthy (default 3)")
    a("--health-start-period", metavar="DURATION", help="failures in this time after start do not count")
    a("--no-healthcheck", action="store_true", default=None, help="disable the image's HEALTHCHECK")
    a("--network-alias", action="append", default=[], metavar="NAME", help="another DNS name on its network")
    return p


def _split_at_image(p: ArgParser, args: List[str]) -> Tuple[List[str], List[str]]:
    """Options end at the first positional (the image), like docker; '--' also ends them."""
    takes_value = {s for a in p._actions for s in a.option_strings if a.nargs != 0}
    known = {s for a in p._actions for s in a.option_strings}
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--":
            return args[:i], args[i + 1 :]
        if not tok.startswith("-") or tok == "-":
            return args[:i], args[i:]
        if tok.startswith("--"):
            opt = tok.split("=", 1)[0]
            if opt not in known:
                raise UsageError(f"{p.prog}: unknown flag: {opt}", hint=f"see '{p.prog} --help'")
            i += 2 if (opt in takes_value and "=" not in tok) else 1
            continue
        # a cluster of short flags: -dit, -eK=V, -p80:80
        j = 1
        skip = 1
        while j < len(tok):
            opt = "-" + tok[j]
            if opt not in known:
                raise UsageError(
                    f"{p.prog}: unknown shorthand flag: {tok[j]!r} in {tok}", hint=f"see '{p.prog} --help'"
                )
            if opt in takes_value:
                skip = 1 if j + 1 < len(tok) else 2
                break
            j += 1
        i += skip
    return args, []


def parse_run_args(
    args: List[str], pwd: str, read_file: Callable[[str], str] = _read_text, prog: str = "run"
) -> RunOptions:
    """argv after `tcr run` -> validated RunOptions. Raises UsageError / InvalidArgument (one line);
    HelpRequested for --help."""
    p = _PARSERS.get(prog)
    if p is None:  # built once per daemon: ~3 ms of every run/create (parse_args leaves it unchanged)
        p = _PARSERS[prog] = _parser(prog)
    opt_args, rest = _split_at_image(p, list(args))
    ns = p.parse_args(opt_args)

    fields: Dict[str, Any] = {}
    env: List[str] = []
    volumes: List[Volume] = []
    tmpfs: List[Tmpfs] = []
    publish: List[str] = []
    if ns.config:
        path = _host_path(ns.config, pwd)
        try:
            text = read_file(path)
        except OSError as e:
            raise InvalidArgument(f"cannot read run config {path}: {e.strerror or e}")
        except InvalidArgument as e:
            raise InvalidArgument(f"cannot read run config {e.message}")
        from tcr.common import jsonc

        try:
            data = jsonc.loads(text)
        except ValueError as e:
            raise InvalidArgument(
                f"run config {path} is not valid JSON: {str(e).splitlines()[0] if str(e) else e}"
            )
        cfg = parse_run_config(data, os.path.dirname(path))
        env += cfg.pop("env", [])
        volumes += cfg.pop("volumes", [])
        tmpfs += cfg.pop("tmpfs", [])
        publish += cfg.pop("publish", [])
        fields.update(cfg)
        fields["config_file"] = path

    env_files = []
    for f in ns.env_file:
        path = _host_path(f, pwd)
        try:
            text = read_file(path)
        except OSError as e:
            raise InvalidArgument(f"cannot read env file {path}: {e.strerror or e}")
        except InvalidArgument as e:
            raise InvalidArgument(f"cannot read env file {e.message}")
        env += parse_env_file(text, path)
        env_files.append(path)
    for item in ns.env:
        v = parse_env_line(item)
        if v is not None:
            env.append(v)
    volumes += [parse_volume(v, pwd) for v in ns.volume]
    tmpfs += [parse_tmpfs(t) for t in ns.tmpfs]
    for m in ns.mount:
        got = parse_mount(m, pwd)
        (tmpfs if isinstance(got, Tmpfs) else volumes).append(got)
    publish += list(ns.publish)
    if ns.publish_all:
        fields["publish_all"] = True
    if ns.privileged:
        fields["privileged"] = True
    if ns.init:
        fields["init"] = True
    fields["devices"] = tuple(parse_device(x) for x in ns.device)
    fields["device_cgroup_rules"] = tuple(parse_cgroup_rule(x) for x in ns.device_cgroup_rule)
    fields["group_add"] = tuple(parse_group(x) for x in ns.group_add)
    fields["add_hosts"] = tuple(parse_add_host(x) for x in ns.add_host)
    fields["dns"] = tuple(parse_dns(x) for x in ns.dns)
    fields["dns_search"] = tuple(parse_dns_word(x, "--dns-search") for x in ns.dns_search)
    fields["dns_options"] = tuple(parse_dns_word(x, "--dns-option") for x in ns.dns_option)
    ulimits: Dict[str, Ulimit] = {}
    for x in ns.ulimit:
        u = parse_ulimit(x)
        ulimits[u.name] = u  # the last one wins, like docker
    fields["ulimits"] = tuple(ulimits.values())
    labels: List[str] = []
    for f in ns.label_file:
        path = _host_path(f, pwd)
        try:
            text = read_file(path)
        except OSError as e:
            raise InvalidArgument(f"cannot read label file {path}: {e.strerror or e}")
        labels += [parse_label(ln.strip()) for ln in text.splitlines()
                   if ln.strip() and not ln.lstrip().startswith("#")]
    labels += [parse_label(x) for x in ns.label]
    merged: Dict[str, str] = {}
    for kv in labels:  # a repeated key: the last value wins (docker)
        k, _, v = kv.partition("=")
        merged[k] = v
    fields["labels"] = tuple(f"{k}={v}" for k, v in merged.items())
    fields["sysctls"] = tuple(parse_sysctl(x) for x in ns.sysctl)
    if ns.shm_size is not None:
        fields["shm_size"] = resources.parse_size(ns.shm_size, "--shm-size")

    for attr in ("detach", "interactive", "tty", "rm", "read_only"):
        if getattr(ns, attr):
            fields[attr] = True
    if ns.name is not None:
        fields["name"] = ns.name
    if ns.network:
        nets = [parse_network(n) for n in ns.network]
        if len(nets) > 1 and any(n in ("host", "none") for n in nets):
            raise InvalidArgument("conflicting options: cannot attach both user-defined and non-user-defined "
                                  "network-modes")
        for n in nets:
            if nets.count(n) > 1:
                raise InvalidArgument(f"network {n} is specified multiple times")
        fields["network"] = nets[0]
        if len(nets) > 1:
            fields["extra_networks"] = tuple(nets[1:])
    if ns.restart is not None:
        fields["restart"] = parse_restart(ns.restart)
    if ns.stop_timeout is not None:
        fields["stop_timeout"] = _int_flag(ns.stop_timeout, "--stop-timeout", 0)
    if ns.stop_signal is not None:
        fields["stop_signal"] = signames.parse(ns.stop_signal)
    if ns.memory is not None:
        fields["memory"] = resources.parse_memory(ns.memory)
    if ns.cpus is not None:
        fields["cpus"] = resources.parse_cpus(ns.cpus)
    if ns.pids_limit is not None:
        fields["pids_limit"] = resources.parse_pids(ns.pids_limit)
    if ns.user is not None:
        fields["user"] = parse_user(ns.user)
    if ns.workdir is not None:
        fields["workdir"] = _abs_in_container(ns.workdir, "--workdir")
    if ns.entrypoint is not None:
        fields["entrypoint"] = (ns.entrypoint,) if ns.entrypoint else ()
    if ns.hostname is not None:
        if not valid_hostname(ns.hostname):
            raise InvalidArgument(f"invalid hostname: {ns.hostname!r}")
        fields["hostname"] = ns.hostname
    for lo in ns.log_opt:
        k, eq, v = lo.partition("=")
        if k == "max-size" and eq:
            ns.log_size = v
        elif k == "max-file" and eq:
            ns.log_files = v
        else:
            raise InvalidArgument(f"unsupported --log-opt {lo!r}", hint="max-size=SIZE or max-file=N")
    if ns.log_driver is not None:
        fields["log_driver"] = parse_log_driver(ns.log_driver)
    if ns.log_size is not None:
        fields["log_max_size"] = resources.parse_size(ns.log_size, "--log-size")
        if fields["log_max_size"] < MIN_LOG_SIZE:
            raise InvalidArgument(f"--log-size {ns.log_size[:64]!r} is too small: at least 4k",
                                  hint="a log file must hold whole lines")
    if ns.log_files is not None:
        fields["log_max_files"] = _int_flag(ns.log_files, "--log-files", 1)
    health = (ns.health_cmd, ns.health_interval, ns.health_timeout, ns.health_retries, ns.health_start_period)
    if ns.no_healthcheck or any(x is not None for x in health):
        from tcr.containers import healthcfg

        fields["health"] = healthcfg.from_flags(*health, disabled=bool(ns.no_healthcheck))
    for alias in ns.network_alias:
        if not valid_hostname(alias):
            raise InvalidArgument(f"invalid --network-alias: {alias[:64]!r}",
                                  hint="letters, digits, '.', '-'")
    if ns.network_alias:
        fields["network_aliases"] = tuple(dict.fromkeys(ns.network_alias))
    fields["cap_add"] = tuple(capsmod.normalize_all(ns.cap_add))
    fields["cap_drop"] = tuple(capsmod.normalize_all(ns.cap_drop))

    if rest:
        fields["image"] = rest[0]
        if len(rest) > 1:
            fields["command"] = tuple(rest[1:])
            if ns.config and ns.entrypoint is None and fields.get("entrypoint") == ():
                # COMMAND on the line replaces the config's full argv; keep the image entrypoint
                fields.pop("entrypoint")
    if not fields.get("image"):
        raise UsageError(
            f"tcr {prog}: requires an IMAGE argument", hint=f"usage: tcr {prog} [OPTIONS] IMAGE [COMMAND]"
        )

    opts = RunOptions(
        env=tuple(env),
        env_files=tuple(env_files),
        volumes=tuple(volumes),
        tmpfs=tuple(tmpfs),
        publish=tuple(publish),
        **fields,
    )
    validate(opts, created=prog == "create")
    return opts


def validate(opts: RunOptions, created: bool = False, client_runs_crun: bool = False) -> None:
    """Cross-flag checks (also applied to records built elsewhere). tcrd supervises every container
    it starts, foreground runs included, so a restart policy needs no -d; client_runs_crun: the C
    client's foreground run (execArgs: crun runs in the client, nothing to restart)."""
    if not opts.image or opts.image.startswith("-"):
        raise InvalidArgument(f"invalid image reference: {opts.image!r}")
    if opts.name is not None and not syntax.name(opts.name):
        raise InvalidArgument(
            f"invalid container name {opts.name!r}",
            hint="letters, digits, '_', '.', '-'; must start with a letter or digit",
        )
    if opts.rm and opts.restart.name != "no":
        raise InvalidArgument("conflicting options: --restart and --rm")
    if client_runs_crun and opts.restart.name != "no" and not opts.detach and not created:
        raise InvalidArgument(f"--restart {opts.restart} needs a detached container (-d)")
    if (opts.publish or opts.publish_all) and opts.network in ("host", "none"):
        raise InvalidArgument(f"cannot publish ports with --network {opts.network}")
    if opts.network_aliases and opts.network in ("host", "none"):
        raise InvalidArgument(f"--network-alias needs a network, not --network {opts.network}")
    if opts.network == "host" and any(s.startswith("net.") for s in opts.sysctls):
        raise InvalidArgument("--sysctl net.* cannot be used with --network host: it would change the host")
    if opts.network == "host" and (opts.dns or opts.dns_search or opts.dns_options):
        raise InvalidArgument("--dns flags cannot be used with --network host (the host's resolv.conf)")
    devs: Dict[str, str] = {}
    for dv in opts.devices:
        if dv.container in devs:
            raise InvalidArgument(f"duplicate --device destination: {dv.container}")
        devs[dv.container] = dv.host
    seen: Dict[str, str] = {}
    for dst in [v.dst for v in opts.volumes] + [t.dst for t in opts.tmpfs]:
        if dst in seen:
            raise InvalidArgument(f"duplicate mount point: {dst}")
        seen[dst] = dst
