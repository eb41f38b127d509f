"""Network records: what the daemon persists (StateStore kind "networks") and hands to containers.

A NetworkRecord holds everything needed to rebuild the kernel side after a restart: subnet,
bridge name and the leases (one per attached container, with its published ports). The nft
ruleset and the DNS names are derived from these records alone.
"""

from __future__ import annotations

from tcr.common.record import dataclass, field

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Tuple

KIND = "networks"
RECORD_VERSION = 1


@dataclass(frozen=True)
class PortMapping:
    """One published port: host_ip "" means every host address."""

    host_port: int
    container_port: int
    proto: str = "tcp"
    host_ip: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return {"hostIp": self.host_ip, "hostPort": self.host_port,
                "containerPort": self.container_port, "proto": self.proto}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> PortMapping:
        return cls(host_port=int(d["hostPort"]), container_port=int(d["containerPort"]),
                   proto=str(d.get("proto", "tcp")), host_ip=str(d.get("hostIp", "")))

    def __str__(self) -> str:
        host = f"{self.host_ip}:" if self.host_ip else ""
        return f"{host}{self.host_port}->{self.container_port}/{self.proto}"


@dataclass(frozen=True)
class Lease:
    """One container's place on a network."""

    cid: str
    ip: str
    mac: str
    name: str = ""
    ports: Tuple[PortMapping, ...] = ()
    aliases: Tuple[str, ...] = ()  # --network-alias: more names on this network (compose: the service)
    # The interface inside the container: eth0 for its first network, ethN for `network connect`.
    ifname: str = "eth0"

    def to_dict(self) -> Dict[str, Any]:
        d = {"cid": self.cid, "name": self.name, "ip": self.ip, "mac": self.mac,
             "ports": [p.to_dict() for p in self.ports]}
        if self.aliases:
            d["aliases"] = list(self.aliases)
        if self.ifname != "eth0":  # absent in records of a tcr before `network connect`: eth0
            d["ifname"] = self.ifname
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> Lease:
        return cls(cid=str(d["cid"]), ip=str(d["ip"]), mac=str(d["mac"]), name=str(d.get("name", "")),
                   ports=tuple(PortMapping.from_dict(p) for p in d.get("ports", ())),
                   aliases=tuple(str(a) for a in d.get("aliases") or ()),
                   ifname=_ifname(d.get("ifname", "eth0")))


def _ifname(v: Any) -> str:
    if not isinstance(v, str) or not v.startswith("eth") or not v[3:].isdigit() or len(v) > 8:
        raise ValueError(f"bad interface name {v!r}")
    return v


@dataclass(frozen=True)
class NetworkRecord:
    name: str
    subnet: str  # "10.88.0.0/24"
    gateway: str  # "10.88.0.1"
    bridge: str  # "tcr0"
    created: float = 0.0
    leases: Tuple[Lease, ...] = ()  # sorted by cid
    # Created on first use by a container that asked for it (the C tool's rule): removed again
    # with the last container that uses it. Networks made by `network create` stay.
    auto: bool = False
    labels: Tuple[Tuple[str, str], ...] = ()  # network create --label K=V, in order

    @property
    def prefixlen(self) -> int:
        return int(self.subnet.split("/")[1])

    def lease(self, cid: str) -> Optional[Lease]:
        for le in self.leases:
            if le.cid == cid:
                return le
        return None

    def with_lease(self, lease: Lease) -> NetworkRecord:
        rest = [le for le in self.leases if le.cid != lease.cid] + [lease]
        return _replace(self, leases=tuple(sorted(rest, key=lambda le: le.cid)))

    def without(self, cid: str) -> NetworkRecord:
        return _replace(self, leases=tuple(le for le in self.leases if le.cid != cid))

    def to_dict(self) -> Dict[str, Any]:
        return {"version": RECORD_VERSION, "name": self.name, "subnet": self.subnet,
                "gateway": self.gateway, "bridge": self.bridge, "created": self.created,
                "leases": [le.to_dict() for le in self.leases], "auto": self.auto,
                "labels": dict(self.labels)}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> NetworkRecord:
        return cls(name=str(d["name"]), subnet=str(d["subnet"]), gateway=str(d["gateway"]),
                   bridge=str(d["bridge"]), created=float(d.get("created", 0.0)),
                   leases=tuple(sorted((Lease.from_dict(x) for x in d.get("leases", ())),
                                       key=lambda le: le.cid)),
                   auto=d.get("auto") is True,
                   labels=tuple((str(k), str(v)) for k, v in dict(d.get("labels") or {}).items()))


def _replace(rec: NetworkRecord, **kw: Any) -> NetworkRecord:
    from tcr.common import record as dataclasses

    return dataclasses.replace(rec, **kw)


@dataclass(frozen=True)
class Attachment:
    """What attach() returns to the container manager: where crun must join and what to write
    into the container's /etc files."""

    network: str
    netns_path: str
    ip: str
    prefixlen: int
    gateway: str
    dns: Tuple[str, ...] = field(default_factory=tuple)
    mac: str = ""
    ports: Tuple[PortMapping, ...] = ()
    aliases: Tuple[str, ...] = ()
    ifname: str = "eth0"

    def to_dict(self) -> Dict[str, Any]:
        return {"network": self.network, "netnsPath": self.netns_path, "ip": self.ip,
                "prefixlen": self.prefixlen, "gateway": self.gateway, "dns": list(self.dns),
                "mac": self.mac, "ports": [p.to_dict() for p in self.ports],
                "aliases": list(self.aliases), "ifname": self.ifname}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> Attachment:
        return cls(network=str(d["network"]), netns_path=str(d["netnsPath"]), ip=str(d["ip"]),
                   prefixlen=int(d["prefixlen"]), gateway=str(d["gateway"]),
                   dns=tuple(str(x) for x in d.get("dns", ())), mac=str(d.get("mac", "")),
                   ports=tuple(PortMapping.from_dict(p) for p in d.get("ports", ())),
                   aliases=tuple(str(a) for a in d.get("aliases") or ()),
                   ifname=_ifname(d.get("ifname", "eth0")))
