"""Compose files: load (YAML via PyYAML when installed, JSON always), interpolate, validate (pure).

The result is the normalized project: a dict in the long forms of the compose spec (what
`tcr compose config` prints), with every relative path made absolute and every unknown key refused
with its path (`services.web.build: not supported by tcr`), never ignored silently.
"""

import os
import re
import shlex
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from tcr.common.errors import InvalidArgument

COMPOSE_FILE_CAP = 1024 * 1024
ENV_FILE_CAP = 1024 * 1024

# The subset of the compose spec tcr implements (docs/cli.md, "compose").
SERVICE_KEYS = frozenset((
    "image", "command", "entrypoint", "environment", "env_file", "ports", "volumes", "devices",
    "networks", "restart", "depends_on", "healthcheck", "user", "working_dir", "read_only", "tmpfs",
    "cap_add", "cap_drop", "mem_limit", "cpus", "pids_limit", "labels", "hostname", "stop_signal",
    "stop_grace_period",
))
TOP_KEYS = frozenset(("services", "networks", "volumes", "name", "version"))
NETWORK_KEYS = frozenset(("driver", "labels", "external", "ipam", "name"))
VOLUME_KEYS = frozenset(("driver", "labels", "external", "name"))
HEALTH_KEYS = frozenset(("test", "interval", "timeout", "retries", "start_period", "disable"))
RESTART = ("no", "always", "unless-stopped", "on-failure")
CONDITIONS = ("service_started", "service_healthy")

_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_SERVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VAR_RE = re.compile(r"\$(?:(\$)|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")


class ComposeError(InvalidArgument):
    """A compose file that tcr refuses; the message names the file and the key's path."""


def _fail(path: str, msg: str) -> "ComposeError":
    return ComposeError(f"{path}: {msg}" if path else msg)


# ---------------------------------------------------------------------------------------------
# Loading


def parse_text(text: str, name: str = "compose file") -> Any:
    """A document from YAML (PyYAML, imported only here) or JSON text."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        from tcr.common import jsonc

        try:
            return jsonc.loads(text)
        except ValueError as exc:
            raise ComposeError(f"{name}: invalid JSON: {exc}")
    try:
        yaml = _import_yaml()
    except ImportError:
        raise ComposeError(f"{name}: YAML needs PyYAML, which is not installed",
                           hint="install PyYAML (BR2_PACKAGE_PYTHON_PYYAML) or write the file as JSON")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ComposeError(f"{name}: invalid YAML{at}: {problem}")


def _import_yaml() -> Any:
    """PyYAML, also when the client runs as `python3 -IS` (the installed `tcr` skips site-packages
    to start fast): tcr.common.siteimport then adds the system's site directories and tries again."""
    from tcr.common.siteimport import import_module

    return import_module("yaml")


def read_env_file(path: str) -> Dict[str, str]:
    """KEY=VALUE lines (# comments, blank lines, optional quotes), as docker compose reads .env."""
    from tcr.common.fileread import read_text

    out: Dict[str, str] = {}
    for n, raw in enumerate(read_text(path, ENV_FILE_CAP, what=path).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, eq, val = line.partition("=")
        key = key.strip()
        if not eq or not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*$", key):
            raise ComposeError(f"{path}:{n}: expected KEY=VALUE")
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] and val[0] in "\"'":
            val = val[1:-1]
        out[key] = val
    return out


def interpolate(obj: Any, env: Mapping[str, str], path: str = "") -> Any:
    """${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, $VAR and $$ in every string value."""
    if isinstance(obj, dict):
        return {k: interpolate(v, env, f"{path}.{k}" if path else str(k)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [interpolate(v, env, f"{path}[{i}]") for i, v in enumerate(obj)]
    if not isinstance(obj, str) or "$" not in obj:
        return obj

    def sub(m: "re.Match[str]") -> str:
        if m.group(1):
            return "$"
        if m.group(3):
            return env.get(m.group(3), "")
        expr = m.group(2)
        for op in (":-", ":?", "-", "?"):
            name, found, arg = expr.partition(op)
            if found and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
                val = env.get(name)
                empty = val is None or (op.startswith(":") and val == "")
                if op.endswith("-"):
                    return arg if empty else str(val)
                if empty:
                    raise _fail(path, f"variable {name} is required: {arg or 'not set'}")
                return str(val)
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", expr):
            raise _fail(path, f"invalid interpolation ${{{expr}}}")
        return env.get(expr, "")

    return _VAR_RE.sub(sub, obj)


def load(path: str, project_name: Optional[str] = None, environ: Optional[Mapping[str, str]] = None,
         ) -> Dict[str, Any]:
    """Read, interpolate and validate a compose file; the normalized project."""
    from tcr.common.fileread import read_text

    path = os.path.abspath(path)
    text = read_text(path, COMPOSE_FILE_CAP, what=path)
    doc = parse_text(text, path)
    project_dir = os.path.dirname(path)
    env: Dict[str, str] = {}
    dotenv = os.path.join(project_dir, ".env")
    if os.path.isfile(dotenv):
        env.update(read_env_file(dotenv))
    env.update(os.environ if environ is None else environ)
    try:
        return normalize(interpolate(doc, env), project_dir, project_name, env, read_env_file)
    except ComposeError as exc:
        raise ComposeError(f"{os.path.basename(path)}: {exc.message}", exc.hint)


# ---------------------------------------------------------------------------------------------
# Validation (pure: env files are read through the given callable)


def _keys(obj: Any, allowed: frozenset, path: str) -> Dict[str, Any]:
    if not isinstance(obj, dict):
        raise _fail(path, f"must be a mapping, not {_kind(obj)}")
    for k in obj:
        if not isinstance(k, str):
            raise _fail(path, f"key {k!r} must be a string")
        if k not in allowed and not k.startswith("x-"):
            raise _fail(f"{path}.{k}" if path else k, "not supported by tcr (see docs/cli.md, compose)")
    return {k: v for k, v in obj.items() if not k.startswith("x-")}


def _kind(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "empty"}.get(type(v), type(v).__name__)


def _str(v: Any, path: str, allow_num: bool = True) -> str:
    if isinstance(v, str):
        return v
    if allow_num and isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    raise _fail(path, f"must be a string, not {_kind(v)}")


def _str_list(v: Any, path: str, split: bool = False) -> List[str]:
    """A list of strings; a single string is one item (or shell-split when `split`)."""
    if isinstance(v, str):
        if not split:
            return [v]
        try:
            return shlex.split(v)
        except ValueError as exc:
            raise _fail(path, f"cannot split {v!r}: {exc}")
    if not isinstance(v, list):
        raise _fail(path, f"must be a string or a list, not {_kind(v)}")
    return [_str(x, f"{path}[{i}]") for i, x in enumerate(v)]


def _mapping(v: Any, path: str, allow_bare: bool = False) -> Dict[str, Optional[str]]:
    """environment/labels: a mapping, or a list of K=V (K alone when `allow_bare`)."""
    out: Dict[str, Optional[str]] = {}
    if isinstance(v, dict):
        for k, x in v.items():
            key = _str(k, path)
            if x is None:
                out[key] = None
            elif isinstance(x, bool):
                out[key] = "true" if x else "false"
            else:
                out[key] = _str(x, f"{path}.{key}")
        return out
    if isinstance(v, list):
        for i, x in enumerate(v):
            item = _str(x, f"{path}[{i}]")
            k, eq, val = item.partition("=")
            if not k:
                raise _fail(f"{path}[{i}]", "expected KEY=VALUE")
            out[k] = val if eq else None
        return out
    raise _fail(path, f"must be a mapping or a list, not {_kind(v)}")


def _bool(v: Any, path: str) -> bool:
    if isinstance(v, bool):
        return v
    raise _fail(path, f"must be true or false, not {_kind(v)}")


def duration(v: Any, path: str) -> float:
    """Compose durations: 1m30s, 500ms, 10s; a bare number is seconds. Seconds as float."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if v < 0:
            raise _fail(path, "must not be negative")
        return float(v)
    s = _str(v, path)
    total, pos = 0.0, 0
    for m in _DURATION_RE.finditer(s):
        if m.start() != pos:
            break
        mult = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[m.group(2)]
        total += float(m.group(1)) * mult
        pos = m.end()
    if pos != len(s) or not s:
        raise _fail(path, f"invalid duration {s!r} (e.g. 30s, 1m30s, 500ms)")
    return total


def _port(v: Any, path: str) -> str:
    """A ports entry as tcr's -p text: [IP:]HOST:CTR[/PROTO] (short or long syntax)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, str):
        if not re.match(r"^[0-9A-Za-z.:\[\]/-]+$", v):
            raise _fail(path, f"invalid port {v!r}")
        return v
    if isinstance(v, dict):
        d = _keys(v, frozenset(("target", "published", "host_ip", "protocol", "mode")), path)
        if "target" not in d:
            raise _fail(path, "needs target")
        if d.get("mode", "ingress") not in ("ingress", "host"):
            raise _fail(f"{path}.mode", "must be ingress or host")
        text = _str(d["target"], f"{path}.target")
        if d.get("published") is not None:
            text = f"{_str(d['published'], f'{path}.published')}:{text}"
            if d.get("host_ip"):
                text = f"{_str(d['host_ip'], f'{path}.host_ip')}:{text}"
        if d.get("protocol"):
            proto = _str(d["protocol"], f"{path}.protocol")
            if proto not in ("tcp", "udp"):
                raise _fail(f"{path}.protocol", "must be tcp or udp")
            text += f"/{proto}"
        return text
    raise _fail(path, f"must be a string, a number or a mapping, not {_kind(v)}")


def _volume(v: Any, path: str, project_dir: str, declared: Dict[str, Any]) -> Dict[str, Any]:
    """A service volume in the long form {type, source, target, read_only}."""
    if isinstance(v, str):
        parts = v.split(":")
        if len(parts) == 1:
            src, dst, mode = "", parts[0], ""
        elif len(parts) == 2:
            src, dst, mode = parts[0], parts[1], ""
        elif len(parts) == 3:
            src, dst, mode = parts
        else:
            raise _fail(path, f"invalid volume {v!r} (SOURCE:TARGET[:ro])")
        if mode not in ("", "ro", "rw"):
            raise _fail(path, f"invalid volume mode {mode!r} (ro or rw)")
        kind = "volume" if src and not src.startswith((".", "/", "~")) else "bind"
        if not src:
            raise _fail(path, "anonymous volumes are not supported: name the volume")
        d: Dict[str, Any] = {"type": kind, "source": src, "target": dst, "read_only": mode == "ro"}
    elif isinstance(v, dict):
        raw = _keys(v, frozenset(("type", "source", "target", "read_only")), path)
        kind = raw.get("type", "volume")
        if kind not in ("volume", "bind"):
            raise _fail(f"{path}.type", f"{kind!r} is not supported (volume or bind)")
        if "source" not in raw or "target" not in raw:
            raise _fail(path, "needs source and target")
        d = {"type": kind, "source": _str(raw["source"], f"{path}.source", False),
             "target": _str(raw["target"], f"{path}.target", False),
             "read_only": _bool(raw.get("read_only", False), f"{path}.read_only")}
    else:
        raise _fail(path, f"must be a string or a mapping, not {_kind(v)}")
    if not d["target"].startswith("/"):
        raise _fail(path, f"target {d['target']!r} must be an absolute path")
    if d["type"] == "bind":
        src = os.path.expanduser(d["source"])
        d["source"] = os.path.normpath(os.path.join(project_dir, src))
    elif d["source"] not in declared:
        raise _fail(path, f"volume {d['source']!r} is not declared in the top-level volumes")
    return d


def _healthcheck(v: Any, path: str) -> Dict[str, Any]:
    d = _keys(v, HEALTH_KEYS, path)
    if d.get("disable") is not None and _bool(d["disable"], f"{path}.disable"):
        return {"disable": True}
    out: Dict[str, Any] = {}
    if "test" in d:
        t = d["test"]
        if isinstance(t, str):
            out["test"] = ["CMD-SHELL", t]
        else:
            items = _str_list(t, f"{path}.test")
            if not items or items[0] not in ("CMD", "CMD-SHELL", "NONE"):
                raise _fail(f"{path}.test", "must start with CMD, CMD-SHELL or NONE")
            if items[0] == "NONE":
                return {"disable": True}
            if len(items) < 2 or (items[0] == "CMD-SHELL" and len(items) != 2):
                raise _fail(f"{path}.test", "CMD needs a command, CMD-SHELL exactly one string")
            out["test"] = items
    for key in ("interval", "timeout", "start_period"):
        if key in d:
            out[key] = duration(d[key], f"{path}.{key}")
            if key != "start_period" and out[key] <= 0:
                raise _fail(f"{path}.{key}", "must be positive")
    if "retries" in d:
        r = d["retries"]
        if not isinstance(r, int) or isinstance(r, bool) or r < 1:
            raise _fail(f"{path}.retries", "must be a positive integer")
        out["retries"] = r
    return out


def _depends(v: Any, path: str, services: Dict[str, Any]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    if isinstance(v, list):
        for i, x in enumerate(v):
            out[_str(x, f"{path}[{i}]", False)] = "service_started"
    elif isinstance(v, dict):
        for k, x in v.items():
            p = f"{path}.{k}"
            cond = "service_started"
            if x is not None:
                c = _keys(x, frozenset(("condition", "restart", "required")), p)
                cond = c.get("condition", cond)
                if cond not in CONDITIONS:
                    raise _fail(f"{p}.condition", f"{cond!r} is not supported ({', '.join(CONDITIONS)})")
            out[str(k)] = cond
    else:
        raise _fail(path, f"must be a list or a mapping, not {_kind(v)}")
    for name, cond in out.items():
        if name not in services:
            raise _fail(path, f"service {name!r} is not defined")
        if cond == "service_healthy":
            hc = services[name].get("healthcheck") if isinstance(services[name], dict) else None
            if not hc:
                raise _fail(path, f"{name!r} has condition service_healthy but no healthcheck in the file")
    return out


def _service(name: str, raw: Any, project_dir: str, top_nets: Dict[str, Any], top_vols: Dict[str, Any],
             services: Dict[str, Any], env: Mapping[str, str],
             env_reader: Callable[[str], Dict[str, str]]) -> Dict[str, Any]:
    p = f"services.{name}"
    if not _SERVICE_RE.fullmatch(name):
        raise _fail(p, "invalid service name (letters, digits, _ . -)")
    d = _keys(raw, SERVICE_KEYS, p)
    if "image" not in d:
        raise _fail(p, "needs image (tcr does not build: load the image with `tcr load`)")
    s: Dict[str, Any] = {"image": _str(d["image"], f"{p}.image", False)}
    if "command" in d and d["command"] is not None:
        s["command"] = _str_list(d["command"], f"{p}.command", split=True)
    if "entrypoint" in d and d["entrypoint"] is not None:
        s["entrypoint"] = _str_list(d["entrypoint"], f"{p}.entrypoint", split=True)
    environment: Dict[str, str] = {}
    if "env_file" in d:
        for f in _str_list(d["env_file"], f"{p}.env_file"):
            environment.update(env_reader(os.path.join(project_dir, f)))
    if "environment" in d:
        for k, v in _mapping(d["environment"], f"{p}.environment", allow_bare=True).items():
            if v is None:  # KEY alone: from the environment of `tcr compose`, dropped if unset
                if k in env:
                    environment[k] = env[k]
            else:
                environment[k] = v
    if environment:
        s["environment"] = environment
    if "ports" in d:
        if not isinstance(d["ports"], list):
            raise _fail(f"{p}.ports", "must be a list")
        s["ports"] = [_port(x, f"{p}.ports[{i}]") for i, x in enumerate(d["ports"])]
    if "volumes" in d:
        if not isinstance(d["volumes"], list):
            raise _fail(f"{p}.volumes", "must be a list")
        s["volumes"] = [_volume(x, f"{p}.volumes[{i}]", project_dir, top_vols)
                        for i, x in enumerate(d["volumes"])]
    if "devices" in d:
        s["devices"] = _str_list(d["devices"], f"{p}.devices")
    nets: List[str] = []
    if "networks" in d:
        n = d["networks"]
        if isinstance(n, list):
            nets = [_str(x, f"{p}.networks[{i}]", False) for i, x in enumerate(n)]
        elif isinstance(n, dict):
            for k, v in n.items():
                if v is not None:
                    _keys(v, frozenset(), f"{p}.networks.{k}")
                nets.append(str(k))
        else:
            raise _fail(f"{p}.networks", f"must be a list or a mapping, not {_kind(n)}")
        for x in nets:
            if x not in top_nets:
                raise _fail(f"{p}.networks", f"network {x!r} is not declared in the top-level networks")
    s["networks"] = nets or ["default"]
    if "restart" in d:
        r = _str(d["restart"], f"{p}.restart", False)
        if r.partition(":")[0] not in RESTART or (":" in r and not r.startswith("on-failure:")):
            raise _fail(f"{p}.restart", f"invalid policy {r!r} (no, always, unless-stopped, on-failure[:N])")
        s["restart"] = r
    if "depends_on" in d:
        s["depends_on"] = _depends(d["depends_on"], f"{p}.depends_on", services)
        if name in s["depends_on"]:
            raise _fail(f"{p}.depends_on", "a service cannot depend on itself")
    if "healthcheck" in d:
        s["healthcheck"] = _healthcheck(d["healthcheck"], f"{p}.healthcheck")
    for key in ("user", "working_dir", "hostname", "stop_signal"):
        if key in d:
            s[key] = _str(d[key], f"{p}.{key}")
    if "working_dir" in s and not s["working_dir"].startswith("/"):
        raise _fail(f"{p}.working_dir", "must be an absolute path")
    if "stop_grace_period" in d:
        s["stop_grace_period"] = duration(d["stop_grace_period"], f"{p}.stop_grace_period")
    if "read_only" in d:
        s["read_only"] = _bool(d["read_only"], f"{p}.read_only")
    for key in ("tmpfs", "cap_add", "cap_drop"):
        if key in d:
            s[key] = _str_list(d[key], f"{p}.{key}")
    if "mem_limit" in d:
        s["mem_limit"] = _str(d["mem_limit"], f"{p}.mem_limit")
    if "cpus" in d:
        s["cpus"] = _str(d["cpus"], f"{p}.cpus")
    if "pids_limit" in d:
        pl = d["pids_limit"]
        if not isinstance(pl, int) or isinstance(pl, bool):
            raise _fail(f"{p}.pids_limit", "must be an integer")
        s["pids_limit"] = pl
    if "labels" in d:
        labs = _mapping(d["labels"], f"{p}.labels")
        for k in labs:
            if k.startswith("com.docker.compose."):
                raise _fail(f"{p}.labels.{k}", "com.docker.compose.* labels are reserved for compose")
        s["labels"] = {k: ("" if v is None else v) for k, v in labs.items()}
    return s


def normalize(doc: Any, project_dir: str, project_name: Optional[str], env: Mapping[str, str],
              env_reader: Callable[[str], Dict[str, str]]) -> Dict[str, Any]:
    """The validated, normalized project (pure apart from env_reader)."""
    top = _keys(doc if doc is not None else {}, TOP_KEYS, "")
    name = project_name or (_str(top["name"], "name") if "name" in top else None) \
        or env.get("COMPOSE_PROJECT_NAME") or os.path.basename(project_dir)
    name = project_name_from(name)
    raw_services = top.get("services")
    if not isinstance(raw_services, dict) or not raw_services:
        raise _fail("services", "the file defines no services")
    nets: Dict[str, Any] = {}
    for k, v in _section(top, "networks").items():
        nets[k] = _network(k, v, name)
    vols: Dict[str, Any] = {}
    for k, v in _section(top, "volumes").items():
        vols[k] = _vol(k, v, name)
    services = {str(k): _service(str(k), v, project_dir, nets, vols, raw_services, env, env_reader)
                for k, v in raw_services.items()}
    order(services)  # refuses cycles now, not half-way through `up`
    if any("default" in s["networks"] for s in services.values()) and "default" not in nets:
        nets["default"] = {"name": f"{name}_default", "labels": {}, "external": False}
    used_nets = {n for s in services.values() for n in s["networks"]}
    return {
        "name": name,
        "services": services,
        "networks": {k: v for k, v in nets.items() if k in used_nets or k != "default"},
        "volumes": vols,
    }


def _section(top: Dict[str, Any], key: str) -> Dict[str, Any]:
    v = top.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _fail(key, f"must be a mapping, not {_kind(v)}")
    return {str(k): x for k, x in v.items()}


def _network(key: str, v: Any, project: str) -> Dict[str, Any]:
    p = f"networks.{key}"
    d = _keys(v if v is not None else {}, NETWORK_KEYS, p)
    if d.get("driver", "bridge") != "bridge":
        raise _fail(f"{p}.driver", f"{d['driver']!r} is not supported (bridge)")
    out: Dict[str, Any] = {"name": _str(d["name"], f"{p}.name", False) if "name" in d else f"{project}_{key}",
                           "external": _bool(d.get("external", False), f"{p}.external"),
                           "labels": _labels(d, p)}
    if "ipam" in d:
        ipam = _keys(d["ipam"], frozenset(("driver", "config")), f"{p}.ipam")
        cfg = ipam.get("config") or []
        if not isinstance(cfg, list) or len(cfg) > 1:
            raise _fail(f"{p}.ipam.config", "must be a list of one subnet")
        if cfg:
            c = _keys(cfg[0], frozenset(("subnet",)), f"{p}.ipam.config[0]")
            if "subnet" in c:
                out["subnet"] = _str(c["subnet"], f"{p}.ipam.config[0].subnet", False)
    return out


def _vol(key: str, v: Any, project: str) -> Dict[str, Any]:
    p = f"volumes.{key}"
    d = _keys(v if v is not None else {}, VOLUME_KEYS, p)
    if d.get("driver", "local") != "local":
        raise _fail(f"{p}.driver", f"{d['driver']!r} is not supported (local)")
    return {"name": _str(d["name"], f"{p}.name", False) if "name" in d else f"{project}_{key}",
            "external": _bool(d.get("external", False), f"{p}.external"),
            "labels": _labels(d, p)}


def _labels(d: Dict[str, Any], p: str) -> Dict[str, str]:
    return {k: v or "" for k, v in _mapping(d.get("labels", {}), f"{p}.labels").items()}


def project_name_from(text: str) -> str:
    """docker compose's rule: lower case, only [a-z0-9_-], starting with a letter or digit."""
    name = re.sub(r"[^a-z0-9_-]", "", text.lower()).lstrip("_-")
    if not name or not _PROJECT_RE.fullmatch(name):
        raise ComposeError(f"invalid project name {text!r}", hint="use -p NAME (a-z, 0-9, _ and -)")
    return name


def order(services: Dict[str, Any]) -> List[str]:
    """Services in start order (dependencies first; ties by name); a cycle is refused."""
    done: List[str] = []
    state: Dict[str, int] = {}

    def visit(n: str, chain: Tuple[str, ...]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            raise _fail(f"services.{n}.depends_on", "dependency cycle: " + " -> ".join(chain + (n,)))
        state[n] = 1
        for dep in sorted(services[n].get("depends_on", {})):
            visit(dep, chain + (n,))
        state[n] = 2
        done.append(n)

    for n in sorted(services):
        visit(n, ())
    return done
