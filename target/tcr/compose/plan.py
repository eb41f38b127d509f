"""What `compose up`/`down` must do, from the normalized project and what exists (pure, no I/O).

A service's container carries labels as docker compose's do (project, service, container number,
config hash); the hash is over the exact `tcr run` arguments the service turns into, so any change
that reaches the container (image tag, command, env, ports ...) recreates it and nothing else does.
"""

import hashlib
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence

from tcr.compose import spec

L_PROJECT = "com.docker.compose.project"
L_SERVICE = "com.docker.compose.service"
L_NUMBER = "com.docker.compose.container-number"
L_HASH = "com.docker.compose.config-hash"
L_FILES = "com.docker.compose.project.config_files"
L_NETWORK = "com.docker.compose.network"
L_VOLUME = "com.docker.compose.volume"

RUNNING = ("running", "restarting", "paused")


def container_name(project: str, service: str) -> str:
    return f"{project}-{service}-1"


def _health_args(hc: Mapping[str, Any]) -> List[str]:
    if hc.get("disable"):
        return ["--no-healthcheck"]
    out: List[str] = []
    test = hc.get("test")
    if test:
        import shlex

        cmd = test[1] if test[0] == "CMD-SHELL" else shlex.join(test[1:])
        out.append(f"--health-cmd={cmd}")
    for key, flag in (("interval", "--health-interval"), ("timeout", "--health-timeout"),
                      ("start_period", "--health-start-period")):
        if key in hc:
            out.append(f"{flag}={_secs(hc[key])}")
    if "retries" in hc:
        out.append(f"--health-retries={hc['retries']}")
    return out


def _secs(v: float) -> str:
    return f"{int(v)}s" if float(v).is_integer() else f"{int(round(v * 1000))}ms"


def service_args(project: Mapping[str, Any], name: str) -> List[str]:
    """`tcr run` arguments for one service, without the compose labels (pure)."""
    s = project["services"][name]
    a: List[str] = ["-d", f"--name={container_name(project['name'], name)}"]
    for net in s["networks"]:  # the first is the primary (eth0, default route, ports)
        a.append(f"--network={project['networks'][net]['name']}")
    a.append(f"--network-alias={name}")  # reachable by its service name on each, as with docker compose
    for k, v in sorted(s.get("environment", {}).items()):
        a.append(f"--env={k}={v}")
    for p in s.get("ports", []):
        a.append(f"--publish={p}")
    for v in s.get("volumes", []):
        src = project["volumes"][v["source"]]["name"] if v["type"] == "volume" else v["source"]
        a.append(f"--volume={src}:{v['target']}" + (":ro" if v["read_only"] else ""))
    for d in s.get("devices", []):
        a.append(f"--device={d}")
    for t in s.get("tmpfs", []):
        a.append(f"--tmpfs={t}")
    if "restart" in s:
        a.append(f"--restart={s['restart']}")
    for key, flag in (("user", "--user"), ("working_dir", "--workdir"), ("hostname", "--hostname"),
                      ("stop_signal", "--stop-signal"), ("mem_limit", "--memory"), ("cpus", "--cpus")):
        if key in s:
            a.append(f"{flag}={s[key]}")
    if "stop_grace_period" in s:
        a.append(f"--stop-timeout={int(s['stop_grace_period'])}")
    if "pids_limit" in s:
        a.append(f"--pids-limit={s['pids_limit']}")
    if s.get("read_only"):
        a.append("--read-only")
    for c in s.get("cap_add", []):
        a.append(f"--cap-add={c}")
    for c in s.get("cap_drop", []):
        a.append(f"--cap-drop={c}")
    if "healthcheck" in s:
        a.extend(_health_args(s["healthcheck"]))
    for k, v in sorted(s.get("labels", {}).items()):
        a.append(f"--label={k}={v}")
    command = list(s.get("command", []))
    if "entrypoint" in s:
        ep = s["entrypoint"]
        a.append(f"--entrypoint={ep[0] if ep else ''}")
        command = ep[1:] + command
    a.append(s["image"])
    a.extend(command)
    return a


def config_hash(args: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(args)).encode()).hexdigest()


def run_args(project: Mapping[str, Any], name: str, config_file: str = "") -> List[str]:
    """The full `tcr run` arguments: the service's, plus the compose labels (hash included)."""
    a = service_args(project, name)
    labels = [f"--label={L_PROJECT}={project['name']}", f"--label={L_SERVICE}={name}",
              f"--label={L_NUMBER}=1", f"--label={L_HASH}={config_hash(a)}"]
    if config_file:
        labels.append(f"--label={L_FILES}={config_file}")
    i = a.index(project["services"][name]["image"], 2)  # the image ends the flags
    return a[:i] + labels + a[i:]


def _step(kind: str, name: str, action: str, target: str = "", reason: str = "") -> Dict[str, Any]:
    d = {"kind": kind, "name": name, "action": action, "target": target}
    if reason:
        d["reason"] = reason
    return d


def plan_up(project: Mapping[str, Any], containers: Sequence[Mapping[str, Any]],
            networks: Sequence[str], volumes: Sequence[str], image_ids: Optional[Mapping[str, str]] = None,
            remove_orphans: bool = False, services: Optional[Sequence[str]] = None,
            force_recreate: bool = False) -> List[Dict[str, Any]]:
    """The ordered steps of `compose up`.

    containers: the project's existing containers, each {"name", "service", "hash", "state",
    "image_id"} (from their labels); networks/volumes: names that exist; image_ids: image ref ->
    id now, to recreate a container whose tag was re-pointed to a new image. Steps are
    {"kind": network|volume|service, "name", "action", "target", "reason"?}; actions: create,
    recreate, start, keep, remove, orphan (left alone, without --remove-orphans), missing
    (an external network/volume that does not exist: up refuses).
    """
    steps: List[Dict[str, Any]] = []
    for key in sorted(project["networks"]):
        n = project["networks"][key]
        if n["name"] in networks:
            steps.append(_step("network", key, "keep", n["name"]))
        else:
            steps.append(_step("network", key, "missing" if n["external"] else "create", n["name"]))
    for key in sorted(project["volumes"]):
        v = project["volumes"][key]
        if v["name"] in volumes:
            steps.append(_step("volume", key, "keep", v["name"]))
        else:
            steps.append(_step("volume", key, "missing" if v["external"] else "create", v["name"]))
    by_service: Dict[str, List[Mapping[str, Any]]] = {}
    for c in containers:
        by_service.setdefault(str(c.get("service", "")), []).append(c)
    wanted = set(services) if services else set(project["services"])
    for name in sorted(by_service):
        if name in project["services"]:
            continue
        for c in by_service[name]:
            steps.append(_step("service", name, "remove" if remove_orphans else "orphan", c["name"],
                               "not in the compose file"))
    order = spec.order(project["services"])
    if services:  # `up SERVICE`: its dependencies come up too (docker compose)
        need = set()

        def add(n: str) -> None:
            if n not in need:
                need.add(n)
                for dep in project["services"][n].get("depends_on", {}):
                    add(dep)

        for n in services:
            if n not in project["services"]:
                raise spec.ComposeError(f"no such service: {n}")
            add(n)
        wanted = need
    for name in order:
        if name not in wanted:
            continue
        target = container_name(project["name"], name)
        want = config_hash(service_args(project, name))
        have = by_service.get(name, [])
        extra = [c for c in have if c["name"] != target]
        for c in extra:
            steps.append(_step("service", name, "remove", c["name"], "not the service's container"))
        cur = next((c for c in have if c["name"] == target), None)
        image = project["services"][name]["image"]
        if cur is None:
            steps.append(_step("service", name, "create", target))
        elif force_recreate:
            steps.append(_step("service", name, "recreate", target, "--force-recreate"))
        elif cur.get("hash") != want:
            steps.append(_step("service", name, "recreate", target, "configuration changed"))
        elif image_ids and image_ids.get(image) and cur.get("image_id") not in ("", None, image_ids[image]):
            steps.append(_step("service", name, "recreate", target, f"image {image} changed"))
        elif cur.get("state") in RUNNING:
            steps.append(_step("service", name, "keep", target))
        else:
            steps.append(_step("service", name, "start", target, f"was {cur.get('state')}"))
    return steps


def plan_down(project_name: str, containers: Sequence[Mapping[str, Any]],
              networks: Sequence[Mapping[str, Any]], volumes: Sequence[Mapping[str, Any]],
              remove_volumes: bool = False, project: Optional[Mapping[str, Any]] = None,
              remove_orphans: bool = False) -> List[Dict[str, Any]]:
    """The ordered steps of `compose down`: containers (dependents first), then networks and,
    with -v, volumes the project created (by their labels). Without --remove-orphans, containers
    of services no longer in the file stay (docker compose); without a file, all go."""
    known = set(project["services"]) if project else None
    order = spec.order(project["services"]) if project else []
    rank = {n: i for i, n in enumerate(order)}
    steps: List[Dict[str, Any]] = []
    for c in sorted(containers, key=lambda c: (-rank.get(str(c.get("service")), -1), c["name"])):
        svc = str(c.get("service", ""))
        if known is not None and svc not in known and not remove_orphans:
            steps.append(_step("service", svc, "orphan", c["name"], "not in the compose file"))
            continue
        steps.append(_step("service", svc, "remove", c["name"]))
    for n in sorted(networks, key=lambda n: n["name"]):
        if n.get("labels", {}).get(L_PROJECT) == project_name:
            steps.append(_step("network", str(n["labels"].get(L_NETWORK, n["name"])), "remove", n["name"]))
    if remove_volumes:
        for v in sorted(volumes, key=lambda v: v["name"]):
            if v.get("labels", {}).get(L_PROJECT) == project_name:
                steps.append(_step("volume", str(v["labels"].get(L_VOLUME, v["name"])), "remove", v["name"]))
    return steps


def changed(steps: Sequence[Mapping[str, Any]]) -> bool:
    return any(s["action"] in ("create", "recreate", "start", "remove") for s in steps)


def render(steps: Sequence[Mapping[str, Any]]) -> str:
    """The plan as `--dry-run` prints it: one line per step."""
    lines = []
    for s in steps:
        what = f"{s['kind']} {s['name']}"
        line = f"{s['action']:<9} {what:<30} {s['target']}"
        if s.get("reason"):
            line += f"  ({s['reason']})"
        lines.append(line.rstrip())
    return "".join(x + "\n" for x in lines)
