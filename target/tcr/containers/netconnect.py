"""`network connect` / `network disconnect` of a container (docker's): imported only for them.

The container record lists its networks in order (record.Endpoint; the first is the primary: eth0,
the default route, the published ports). A running container is plumbed at once through the
network manager (kernel first, then the network record, then this record); a stopped one only
changes its record and gets the network at its next start.
"""

from __future__ import annotations

from tcr.common.errors import InUse, InvalidArgument
from tcr.containers.record import Endpoint

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Optional, Sequence

HOST_CONFLICT = "container cannot be disconnected from host network or connected to host network"
NONE_CONFLICT = ("container cannot be connected to multiple networks with one of the networks in private "
                 "(none) mode")


def _check_mode(c: Any, network: str) -> None:
    mode = c.opts.network
    if mode == "host" or network == "host":
        raise InvalidArgument(HOST_CONFLICT)
    if mode == "none" or network == "none":
        raise InvalidArgument(NONE_CONFLICT)


def _live(c: Any) -> bool:
    """Plumbed now: a running (or paused) container has its namespace and leases."""
    return bool(c.rec.state == "running")


def connect(mgr: Any, c: Any, network: str, aliases: Sequence[str] = (), ip: Optional[str] = None) -> None:
    from tcr.containers.runopts import parse_network, valid_hostname
    from tcr.network import ipaddr, netplan

    network = parse_network(network) if network not in ("host", "none") else network
    _check_mode(c, network)
    nets = mgr.daemon.networks
    if nets is None:
        raise InvalidArgument("NAT networking is not available in this tcrd")
    if network != netplan.DEFAULT_NETWORK:
        nets.get(network)  # NetworkNotFound, before anything else is looked at
    for a in aliases:
        if not valid_hostname(a):
            raise InvalidArgument(f"invalid --alias: {a[:64]!r}", hint="letters, digits, '.', '-'")
    if any(e.network == network for e in c.rec.networks):
        raise InUse(f"endpoint with name {c.rec.name} already exists in network {network}")
    if ip:
        try:
            ipaddr.IPv4Address(ip)
        except ValueError:
            raise InvalidArgument(f"invalid IPv4 address: {ip[:64]!r}")
        rec = nets.find(network)
        if rec is not None and not _live(c):  # a stopped one: the subnet now, a free address at start
            netplan.plan_attachment(c.rec.id, "", rec.subnet, rec.gateway, (), (), ip)
    ep = Endpoint(network, tuple(dict.fromkeys(aliases)), ip or "")
    networks = tuple(c.rec.networks) + (ep,)
    if not _live(c):
        mgr._save(c, networks=networks)
        return
    # (on no network any more, every one disconnected: this one becomes eth0, the primary)
    nets.connect(c.rec.id, c.rec.name, network, ep.aliases, ep.ip or None)
    mgr._save(c, networks=networks, net=mgr.net_summary(c))


def disconnect(mgr: Any, c: Any, network: str, force: bool = False) -> None:
    from tcr.containers.runopts import parse_network

    network = parse_network(network) if network not in ("host", "none") else network
    mode = c.opts.network
    if mode == "host" or network == "host":
        raise InvalidArgument(HOST_CONFLICT)
    nets = mgr.daemon.networks
    listed = any(e.network == network for e in c.rec.networks)
    rec = nets.find(network) if nets is not None else None
    leased = rec is not None and rec.lease(c.rec.id) is not None
    if not listed and not leased:
        if nets is not None and rec is None and network != "none":
            nets.get(network)  # NetworkNotFound
        if force:
            return
        raise InvalidArgument(f"container {c.rec.id} is not connected to network {network}")
    if leased:
        nets.disconnect(c.rec.id, network)
    networks = tuple(e for e in c.rec.networks if e.network != network)
    if _live(c):
        mgr._save(c, networks=networks, net=mgr.net_summary(c))
    else:
        mgr._save(c, networks=networks)
