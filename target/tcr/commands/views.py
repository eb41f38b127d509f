"""docker-shaped views of tcr's records, for `--format` templates, `inspect` and filters (pure).

Field names are docker's where the same concept exists (`ps --format '{{.Names}}'`,
`inspect -f '{{.State.Status}}'`), so scripts written for docker read tcr's output unchanged.
tcr's own record stays beside them in `inspect` (its lower-case keys), for tcr's tools.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

_STATUS = {"creating": "created", "created": "created", "running": "running", "restarting": "restarting",
           "exited": "exited", "paused": "paused"}


def rfc3339(ts: float) -> str:
    if not ts:
        return "0001-01-01T00:00:00Z"
    frac = f"{ts % 1:.9f}"[1:]
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + frac + "Z"


def labels(rec: Any) -> Dict[str, str]:
    v = rec.options.get("labels") if isinstance(rec.options, dict) else None
    return dict(v) if isinstance(v, dict) else {}


def docker_status(rec: Any) -> str:
    return _STATUS.get(rec.state, rec.state)


def _ports_map(ports: List[str]) -> Dict[str, Any]:
    """["0.0.0.0:8080->80/tcp", ...] -> docker's {"80/tcp": [{"HostIp": .., "HostPort": ..}]}."""
    out: Dict[str, Any] = {}
    for p in ports:
        host, _, ctr = p.partition("->")
        if not ctr:
            out.setdefault(p, None)
            continue
        hip, _, hport = host.rpartition(":")
        out.setdefault(ctr, []).append({"HostIp": hip, "HostPort": hport})
    return out


def container_ports(rec: Any) -> List[str]:
    """Published ports as ps shows them: only while the container is up (docker)."""
    if rec.net is None or rec.state not in ("running", "restarting", "paused"):
        return []
    return list(rec.net.ports)


def network_names(rec: Any) -> List[str]:
    """The container's networks, in connect order (host or none: that mode), running or not."""
    mode = rec.options.get("network") or "tcr_default"
    if mode in ("host", "none"):
        return [mode]
    return [e.network for e in rec.networks]


def networks_view(rec: Any) -> Dict[str, Any]:
    """inspect's NetworkSettings.Networks: one entry per network (docker's field names); the
    addresses only while it runs."""
    live: Dict[str, Any] = {}
    if rec.net is not None and rec.state in ("running", "restarting") and rec.net.mode == "nat":
        live = {a.get("network"): a for a in rec.net.attachments}
        if not live and rec.net.network:  # a summary written before `network connect` existed
            live = {rec.net.network: {"ip": rec.net.ip, "gateway": rec.net.gateway, "prefixlen": 24}}
    out: Dict[str, Any] = {}
    names = network_names(rec)
    aliases = {e.network: list(e.aliases) for e in rec.networks}
    for n in names:
        a = live.get(n) or {}
        ifname = a.get("ifname", "")
        dns = [rec.name, rec.id[:12], *aliases.get(n, [])] if a and n in aliases else None
        out[n] = {"IPAMConfig": None, "Links": None, "Aliases": aliases.get(n) or None, "DriverOpts": None,
                  "NetworkID": n, "EndpointID": f"{rec.id}-{ifname}" if a else "",
                  "Gateway": a.get("gateway", ""), "IPAddress": a.get("ip", ""),
                  "IPPrefixLen": a.get("prefixlen", 0) if a else 0, "IPv6Gateway": "",
                  "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": a.get("mac", ""),
                  "DNSNames": dns, "InterfaceName": ifname}
    for e in rec.networks:
        if e.ip:
            out[e.network]["IPAMConfig"] = {"IPv4Address": e.ip}
    return out


def ps_item(c: Any, now: float, status: str, image: str) -> Dict[str, Any]:
    """One `ps` row with docker's --format field names (plus tcr's earlier names, kept)."""
    r = c.rec
    ports = ", ".join(container_ports(r))
    network = ",".join(network_names(r))
    lab = labels(r)
    from tcr.commands.render import human_ago

    return {
        "ID": r.id[:12],
        "Id": r.id,
        "Names": r.name,
        "Image": image,
        "ImageId": r.image_id,
        "Command": '"' + " ".join(r.command) + '"',
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(r.created)),
        "Created": r.created,
        "RunningFor": human_ago(now - r.created),
        "State": "paused" if getattr(c, "paused", False) else docker_status(r),
        "Status": status,
        "ExitCode": r.exit_code,
        "Ports": ports,
        "Networks": network,
        "IPAddress": r.net.ip if r.net else "",
        "RestartCount": r.restart_count,
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(lab.items())),
        "Mounts": ",".join(_mount_names(r)),
        "Size": "",
    }


def _mount_names(rec: Any) -> List[str]:
    vols = rec.options.get("volumes") or []
    return [str(v.get("src") or v.get("name") or "") for v in vols if isinstance(v, dict)]


def container_inspect(c: Any, status: str, paths: Dict[str, str]) -> Dict[str, Any]:
    """docker's `inspect` shape for a container, with tcr's own record merged in (lower-case keys)."""
    r = c.rec
    o = r.options
    restart = o.get("restart") or {}
    net = r.net
    networks = networks_view(r)
    cpus = o.get("cpus")
    paused = bool(getattr(c, "paused", False))
    view: Dict[str, Any] = {
        "Id": r.id,
        "Created": rfc3339(r.created),
        "Path": r.command[0] if r.command else "",
        "Args": list(r.command[1:]),
        "State": {
            "Status": "paused" if paused else docker_status(r),
            "Running": r.state == "running",
            "Paused": paused,
            "Restarting": r.state == "restarting",
            "OOMKilled": r.oom_killed,
            "Dead": False,
            "Pid": r.pid if r.state == "running" else 0,
            "ExitCode": r.exit_code if r.exit_code is not None else 0,
            "Error": r.error,
            "StartedAt": rfc3339(r.started_at),
            "FinishedAt": rfc3339(r.finished_at),
        },
        "Image": r.image_id,
        "Name": "/" + r.name,
        "RestartCount": r.restart_count,
        "LogPath": paths.get("log", ""),
        "Config": {
            "Hostname": o.get("hostname") or r.id[:12],
            "User": o.get("user") or "",
            "Tty": bool(o.get("tty")),
            "OpenStdin": bool(o.get("interactive")),
            "Env": list(o.get("env") or []),
            "Cmd": list(o.get("command") or []) or None,
            "Entrypoint": o.get("entrypoint"),
            "Image": r.image_ref,
            "WorkingDir": o.get("workdir") or "",
            "Labels": labels(r),
            "StopSignal": o.get("stopSignal") or "SIGTERM",
            "StopTimeout": o.get("stopTimeout"),
        },
        "HostConfig": {
            "AutoRemove": bool(o.get("rm")),
            "NetworkMode": "default" if o.get("network") == "tcr_default" else o.get("network"),
            "RestartPolicy": {"Name": restart.get("name", "no"),
                              "MaximumRetryCount": restart.get("maxRetries", 0)},
            "ReadonlyRootfs": bool(o.get("readOnly")),
            "Memory": o.get("memory") or 0,
            "NanoCpus": int(cpus * 1e9) if cpus else 0,
            "PidsLimit": o.get("pidsLimit"),
            "CapAdd": list(o.get("capAdd") or []) or None,
            "CapDrop": list(o.get("capDrop") or []) or None,
            "LogConfig": {"Type": o.get("logDriver") or "json-file",
                          "Config": {"max-size": str(o.get("logMaxSize")),
                                     "max-file": str(o.get("logMaxFiles"))}},
        },
        "NetworkSettings": {
            "IPAddress": net.ip if net else "",
            "Gateway": net.gateway if net else "",
            "Ports": _ports_map(container_ports(r)),
            "Networks": networks,
            "SandboxKey": net.netns_path if net else "",
        },
        "Mounts": _mounts(o, paths.get("volumes", "")),
    }
    health = getattr(c, "health", None)
    if health is not None:
        view["State"]["Health"] = health.view()
    hc = o.get("health")
    if isinstance(hc, dict):
        view["Config"]["Healthcheck"] = _health_config(hc)
    own = r.to_dict()
    own["status"] = status
    own["dir"] = paths.get("dir", "")
    own["bundle"] = paths.get("bundle", "")
    own["logPath"] = paths.get("log", "")
    own.update(view)
    return own


def _mounts(o: Dict[str, Any], volumes_dir: str) -> List[Dict[str, Any]]:
    """docker's Mounts: binds with their host path, volumes with their name and data directory,
    tmpfs mounts."""
    out: List[Dict[str, Any]] = []
    for v in o.get("volumes") or []:
        if not isinstance(v, dict):
            continue
        rw = not v.get("ro", False)
        if v.get("kind") == "volume":
            name = str(v.get("src", ""))
            out.append({"Type": "volume", "Name": name, "Source": f"{volumes_dir}/{name}/_data" if volumes_dir
                        else "", "Destination": v.get("dst", ""), "Driver": "local", "RW": rw,
                        "Anonymous": bool(v.get("anonymous"))})
        else:
            out.append({"Type": "bind", "Source": v.get("src", ""), "Destination": v.get("dst", ""),
                        "RW": rw})
    for t in o.get("tmpfs") or []:
        if isinstance(t, dict):
            out.append({"Type": "tmpfs", "Source": "", "Destination": t.get("dst", ""),
                        "RW": not t.get("ro")})
    return out


def _health_config(hc: Dict[str, Any]) -> Dict[str, Any]:
    """docker's Config.Healthcheck (durations in nanoseconds) from RunOptions.health."""
    out: Dict[str, Any] = {"Test": list(hc.get("test") or [])}
    for key, name in (("interval", "Interval"), ("timeout", "Timeout"), ("startPeriod", "StartPeriod")):
        if key in hc:
            out[name] = int(float(hc[key]) * 1e9)
    if "retries" in hc:
        out["Retries"] = hc["retries"]
    return out


def match_filters(item: Dict[str, Any], filters: Dict[str, List[str]],
                  getters: Dict[str, Any]) -> bool:
    """docker's --filter semantics: different keys AND, repeated values of one key OR."""
    for key, wanted in filters.items():
        get = getters[key]
        if not any(get(item, w) for w in wanted):
            return False
    return True


def parse_filters(specs: List[str], allowed: List[str]) -> Dict[str, List[str]]:
    """`--filter key=value` flags -> {key: [values]}; an unknown key is a one-line usage error."""
    from tcr.common.errors import UsageError

    out: Dict[str, List[str]] = {}
    for s in specs:
        key, eq, val = s.partition("=")
        key = key.strip()
        if not eq:
            raise UsageError(f"bad format of filter (expected name=value): {s[:64]!r}")
        if key not in allowed:
            raise UsageError(f"invalid filter {key[:64]!r}", hint="valid filters: " + ", ".join(allowed))
        out.setdefault(key, []).append(val)
    return out


def label_matches(labs: Dict[str, str], want: str) -> bool:
    k, eq, v = want.partition("=")
    if k not in labs:
        return False
    return not eq or labs[k] == v


def optional_int(s: str) -> Optional[int]:
    try:
        return int(s)
    except ValueError:
        return None
