"""The network manager's occasional operations, loaded on first use (an idle tcrd does not hold
their code, docs/profile.md): `network create`, `rm` and `inspect`, a container's further networks
(`network connect`/`disconnect`, a run with several --network), the DNS names of a renamed
container. The NetworkManager keeps a thin entry point for each; the order of every change is
the manager's (validate, kernel objects, record, ruleset).
"""

from __future__ import annotations

from tcr.common.errors import InUse, InvalidArgument
from tcr.common.faults import fault
from tcr.kernel import netns
from tcr.network import netplan
from tcr.network.manager import _close_all, _oserr, log
from tcr.network.records import KIND, Lease, NetworkRecord

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Sequence, Tuple

    from tcr.network.manager import NetworkManager
    from tcr.network.records import Attachment


def create(nm: NetworkManager, name: str, subnet: Optional[str] = None,
           labels: Tuple[Tuple[str, str], ...] = ()) -> Dict[str, Any]:
    netplan.validate_name(name)
    if name in nm._nets:
        raise InUse(f"network {name!r} already exists")
    net = netplan.parse_subnet(subnet) if subnet else None
    nm._create(name, net, labels=labels)
    return inspect(nm, name)


def inspect(nm: NetworkManager, name: str) -> Dict[str, Any]:
    rec = nm.get(name)
    d = rec.to_dict()
    d.pop("version", None)
    d["nftTable"] = f"ip {nm.table}"
    d["dns"] = rec.gateway in nm._dns_up
    d["containers"] = d.pop("leases")
    for c in d["containers"]:
        c["netns"] = nm.netns_path(c["cid"])
        c.setdefault("ifname", "eth0")
    # docker's shape beside tcr's own keys: one entry per attached (running) container
    d["Name"] = rec.name
    d["Driver"] = "bridge"
    d["Scope"] = "local"
    d["IPAM"] = {"Driver": "default", "Config": [{"Subnet": rec.subnet, "Gateway": rec.gateway}]}
    d["Labels"] = dict(rec.labels)
    d["Containers"] = {le.cid: {"Name": le.name, "EndpointID": f"{le.cid}-{le.ifname}",
                                "MacAddress": le.mac, "IPv4Address": f"{le.ip}/{rec.prefixlen}",
                                "IPv6Address": ""} for le in rec.leases}
    return d


def connect(nm: NetworkManager, cid: str, name: str, network: str, aliases: Sequence[str] = (),
            ip: Optional[str] = None) -> Attachment:
    """Plug a running container (its namespace exists) into one more network: ethN with an
    address of that network, its NAT rules and its DNS names. All or nothing."""
    rec = nm._check_target(cid, network, False)
    if rec is None:
        rec = nm._make(network)  # tcr_default, made on first use as at run
    if rec.lease(cid) is not None:
        raise InUse(f"endpoint with name {name or cid[:12]} already exists in network {network}")
    if not netns.is_netns(nm.netns_path(cid)):
        raise InvalidArgument(f"container {name or cid[:12]} has no network namespace of tcr's",
                              hint="restart it, then connect it")
    own = [le.ifname for _r, le in nm.leases_of(cid)]
    plan = netplan.plan_attachment(cid, nm.tag, rec.subnet, rec.gateway, [le.ip for le in rec.leases],
                                   own, ip)
    lease = Lease(cid=cid, ip=plan.ip, mac=plan.mac, name=name or "", aliases=tuple(aliases),
                  ifname=plan.ifname)
    try:
        nm._link(rec, lease, plan)
    except OSError as exc:
        nm._drop_link(plan.veth)
        raise _oserr(f"cannot connect container {cid[:12]} to network {rec.name}", exc)
    except BaseException:
        nm._drop_link(plan.veth)
        raise
    try:
        nm._commit(rec, lease)
    except BaseException as exc:
        nm._drop_link(plan.veth)
        if isinstance(exc, OSError):  # e.g. a full disk: the record could not be written
            raise _oserr(f"cannot connect container {cid[:12]} to network {rec.name}", exc)
        raise
    return next(a for a in nm.attachments(cid) if a.network == rec.name)


def disconnect(nm: NetworkManager, cid: str, network: str) -> bool:
    """Take one network away from a container: its lease, NAT rules and DNS names at once, its
    interface (and with it the address) before returning. If that was the primary network, the
    default route moves to the next one. False if it was not attached there."""
    rec = nm._nets.get(network)
    le = rec.lease(cid) if rec is not None else None
    if rec is None or le is None:
        return False
    rest = [x for _r, x in nm.leases_of(cid) if x.cid == cid and _r.name != network]
    if le.ports:  # only the primary lease publishes ports
        _close_all(nm._held.pop(cid, []))
    nm._release(rec, cid)
    nm._apply_nft_logged(cid)
    nm._drop_link(netplan.veth_name(cid, nm.tag, le.ifname))
    if rest and netplan.if_index(le.ifname) < netplan.if_index(rest[0].ifname):
        nxt = next(r for r, x in nm.leases_of(cid) if x is rest[0])
        _default_route(nm, cid, nxt, rest[0])
    return True


def _default_route(nm: NetworkManager, cid: str, rec: NetworkRecord, le: Lease) -> None:
    from tcr.network.links import Netlink

    try:
        with netns.inside(nm.netns_path(cid)):
            inner = Netlink()
        try:
            idx = inner.index(le.ifname)
            if idx is not None:
                inner.add_default_route(rec.gateway, idx)
        finally:
            inner.close()
    except OSError as exc:
        log.warning("container %s: no default route via %s: %s", cid[:12], rec.name, exc.strerror)


def rename(nm: NetworkManager, cid: str, name: str) -> None:
    """A renamed container answers to its new DNS name at once (docker), on every network."""
    from tcr.common import record as dataclasses

    for rec, le in nm.leases_of(cid):
        new = rec.with_lease(dataclasses.replace(le, name=name))
        nm._nets[rec.name] = new
        nm._save(new)
        nm._dns_sync(new)


def remove(nm: NetworkManager, name: str) -> None:
    rec = nm.get(name)
    if rec.leases:
        who = ", ".join(le.name or le.cid[:12] for le in rec.leases[:5])
        raise InUse(f"error while removing network: network {name} has active endpoints ({who})",
                    hint="disconnect or remove those containers first")
    del nm._nets[name]
    nm.store.delete(KIND, name)
    fault("network.rm.after_state_delete")
    nm._apply_nft()
    nm._dns_sync(None, gone_gateway=rec.gateway)
    nm._bridge_idx.pop(rec.bridge, None)
    try:
        nm.nl.delete(rec.bridge)
    except OSError as exc:
        log.warning("cannot delete bridge %s: %s", rec.bridge, exc.strerror)
    log.info("network %s removed", name)
