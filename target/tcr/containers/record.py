"""The persistent container record (<root>/containers/<id>.json through the StateStore).

A frozen dataclass: every state change makes a new record with dataclasses.replace() and saves it.
`options` is the RunOptions as a dict (tcr.containers.runrecord owns its shape); the few option
values the manager needs on its own (restart policy, stop timeout, auto-remove, log caps) are
read through the helpers below so a record written by an older tcr still loads.
"""

from __future__ import annotations

import os

from tcr.common import syntax
from tcr.common.record import dataclass, field

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

# 2: `networks` (the NAT networks it is connected to, in order: docker's network connect). A
#    version-1 record had one network, in options.network (+ options.networkAliases).
VERSION = 2
NOT_NAT = ("host", "none")

# creating: dir/overlay/network being made (rolled back on recovery)
# created:  ready, never started (or `create`)
# running:  a process is up (detached: supervised; interactive: the client runs crun)
# restarting: exited, waiting for the restart policy's backoff timer
# exited:   stopped; exit_code says how (None = unknown, e.g. re-adopted then lost)
STATES = ("creating", "created", "running", "restarting", "exited")



def new_id() -> str:
    return os.urandom(8).hex()


@dataclass(frozen=True)
class Endpoint:
    """One network the container is connected to (run --network, or network connect): kept while
    it is stopped and plumbed again at every start, in this order (the first is the primary)."""

    network: str
    aliases: Tuple[str, ...] = ()
    ip: str = ""  # network connect --ip: the address it asks for ("" = the lowest free one)

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"network": self.network}
        if self.aliases:
            d["aliases"] = list(self.aliases)
        if self.ip:
            d["ip"] = self.ip
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> Endpoint:
        if not isinstance(d, dict):
            raise ValueError("a network endpoint must be an object")
        aliases = d.get("aliases") or []
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise ValueError("network aliases must be a list of strings")
        net = _s(d, "network")
        if not net or net in NOT_NAT:
            raise ValueError(f"bad network endpoint {net!r}")
        return cls(network=net, aliases=tuple(aliases), ip=_s(d, "ip"))


def endpoints_from_options(options: Dict[str, Any]) -> Tuple[Endpoint, ...]:
    """The networks a new container is created with (and the version-1 form, one network in the
    run options): none for host/none."""
    net = options.get("network") or "tcr_default"
    if not isinstance(net, str) or net in NOT_NAT:
        return ()
    aliases = tuple(str(a) for a in options.get("networkAliases") or [])
    # run --network A --network B: every network gets the --network-alias names
    extra = [str(n) for n in options.get("extraNetworks") or [] if n not in NOT_NAT and n != net]
    return tuple(Endpoint(n, aliases) for n in dict.fromkeys([net, *extra]))


@dataclass(frozen=True)
class NetSummary:
    """What `ps`/`inspect` show about a container's network attachment."""

    mode: str  # "nat" | "host" | "none"
    network: str = ""
    ip: str = ""
    gateway: str = ""
    netns_path: str = ""
    ports: List[str] = field(default_factory=list)
    # Every attachment while it runs, primary first: {network, ip, gateway, prefixlen, mac,
    # aliases, ifname} (network/records.py Attachment.to_dict without the netns path).
    attachments: List[Dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"mode": self.mode, "network": self.network, "ip": self.ip,
                             "gateway": self.gateway, "netnsPath": self.netns_path, "ports": list(self.ports)}
        if self.attachments:
            d["attachments"] = [dict(a) for a in self.attachments]
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> NetSummary:
        mode = d.get("mode")
        if mode not in ("nat", "host", "none"):
            raise ValueError(f"bad network mode {mode!r}")
        ports = d.get("ports", [])
        if not isinstance(ports, list) or not all(isinstance(p, str) for p in ports):
            raise ValueError("network ports must be a list of strings")
        atts = d.get("attachments") or []
        if not isinstance(atts, list) or not all(isinstance(a, dict) and isinstance(a.get("network"), str)
                                                 for a in atts):
            raise ValueError("network attachments must be a list of objects")
        return cls(mode=mode, network=_s(d, "network"), ip=_s(d, "ip"), gateway=_s(d, "gateway"),
                   netns_path=_s(d, "netnsPath"), ports=list(ports), attachments=[dict(a) for a in atts])


@dataclass(frozen=True)
class ContainerRecord:
    id: str
    name: str
    image_id: str
    image_ref: str
    options: Dict[str, Any]
    command: List[str]
    created: float
    state: str = "creating"
    pid: int = 0
    exit_code: Optional[int] = None
    started_at: float = 0.0
    finished_at: float = 0.0
    restart_count: int = 0
    stopped_by_user: bool = False
    interactive: bool = False
    net: Optional[NetSummary] = None
    error: str = ""  # last start failure, shown by inspect
    interrupted: bool = False  # stopped by a tcrd shutdown (not by the user): comes back at start-up
    networks: Tuple[Endpoint, ...] = ()  # NAT networks, in connect order (none for host/none)
    oom_killed: bool = False  # its last run ended with the kernel's OOM killer in its cgroup

    def __post_init__(self) -> None:
        if not syntax.hex_id(self.id):
            raise ValueError(f"bad container id {self.id!r}")
        if not syntax.name(self.name):
            raise ValueError(f"bad container name {self.name!r}")
        if self.state not in STATES:
            raise ValueError(f"bad container state {self.state!r}")

    # Option helpers (RunOptions as stored); defaults match docker.
    def opt(self, key: str, default: Any = None) -> Any:
        v = self.options.get(key, default)
        return default if v is None else v

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def to_dict(self) -> Dict[str, Any]:
        return {
            "version": VERSION,
            "id": self.id,
            "name": self.name,
            "imageId": self.image_id,
            "imageRef": self.image_ref,
            "options": dict(self.options),
            "command": list(self.command),
            "created": self.created,
            "state": self.state,
            "pid": self.pid,
            "exitCode": self.exit_code,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "restartCount": self.restart_count,
            "stoppedByUser": self.stopped_by_user,
            "interactive": self.interactive,
            "net": self.net.to_dict() if self.net else None,
            "error": self.error,
            "interrupted": self.interrupted,
            "networks": [e.to_dict() for e in self.networks],
            "oomKilled": self.oom_killed,
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> ContainerRecord:
        if not isinstance(d, dict):
            raise ValueError("container record is not an object")
        v = d.get("version")
        if type(v) is not int or v < 1:
            raise ValueError("container record has no valid version")
        if v > VERSION:
            raise ValueError(f"container record version {v} is newer than this tcr ({VERSION})")
        options = d.get("options", {})
        if not isinstance(options, dict):
            raise ValueError("options must be an object")
        command = d.get("command", [])
        if not isinstance(command, list) or not all(isinstance(a, str) for a in command):
            raise ValueError("command must be a list of strings")
        exit_code = d.get("exitCode")
        if exit_code is not None and type(exit_code) is not int:
            raise ValueError("exitCode must be an integer or null")
        net = d.get("net")
        if v == 1:
            endpoints = endpoints_from_options(options)
        else:
            eps = d.get("networks", [])
            if not isinstance(eps, list):
                raise ValueError("networks must be a list")
            endpoints = tuple(Endpoint.from_dict(e) for e in eps)
            if len({e.network for e in endpoints}) != len(endpoints):
                raise ValueError("a network is listed twice")
        return cls(
            id=_s(d, "id"),
            name=_s(d, "name"),
            image_id=_s(d, "imageId"),
            image_ref=_s(d, "imageRef"),
            options=options,
            command=list(command),
            created=_f(d, "created"),
            state=_s(d, "state") or "creating",
            pid=_i(d, "pid"),
            exit_code=exit_code,
            started_at=_f(d, "startedAt"),
            finished_at=_f(d, "finishedAt"),
            restart_count=_i(d, "restartCount"),
            stopped_by_user=bool(d.get("stoppedByUser", False)),
            interactive=bool(d.get("interactive", False)),
            net=NetSummary.from_dict(net) if isinstance(net, dict) else None,
            error=_s(d, "error"),
            interrupted=bool(d.get("interrupted", False)),
            networks=endpoints,
            oom_killed=d.get("oomKilled") is True,
        )


def _s(d: Dict[str, Any], k: str) -> str:
    v = d.get(k, "")
    if v is None:
        return ""
    if not isinstance(v, str):
        raise ValueError(f"{k} must be a string")
    return v


def _i(d: Dict[str, Any], k: str) -> int:
    v = d.get(k, 0)
    if type(v) is not int:
        raise ValueError(f"{k} must be an integer")
    return v


def _f(d: Dict[str, Any], k: str) -> float:
    v = d.get(k, 0)
    if type(v) not in (int, float):
        raise ValueError(f"{k} must be a number")
    return float(v)
