"""Making a network: `network create`, an auto network (`--network NAME` of the C dialect), and
tcr_default at its first use on a board. Loaded then (a board whose networks exist already, as
after every reboot, does not hold it: docs/profile.md); NetworkManager._create and _make are the
entry points.
"""

from __future__ import annotations

import time

from tcr.common.errors import InUse
from tcr.common.faults import fault
from tcr.network import netplan
from tcr.network.manager import _oserr, log
from tcr.network.records import KIND, NetworkRecord

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, List, Tuple

    from tcr.network.manager import NetworkManager


def make(nm: NetworkManager, network: str) -> NetworkRecord:
    """A missing network on first use: tcr_default (preferring 10.88.0.0/24) or, with
    create=True, an auto network on the first free subnet."""
    if network != netplan.DEFAULT_NETWORK:
        return create_network(nm, network, None, auto=True)
    from tcr.network import ipaddr

    default = ipaddr.IPv4Network(netplan.DEFAULT_SUBNET)
    try:
        free = not netplan.host_conflicts(default, _host_nets(nm)) and not any(
            ipaddr.IPv4Network(r.subnet).overlaps(default) for r in nm._nets.values())
    except OSError as exc:
        raise _oserr("cannot read the host's routes", exc)
    return create_network(nm, network, default if free else None)


def _host_nets(nm: NetworkManager) -> List[Any]:
    """Host addresses and routes, minus those on our own bridges (they are records already)."""
    from tcr.network import ipaddr

    ours = {idx for name, idx in nm._bridge_idx.items()}
    out = []
    for idx, ip, plen in nm.nl.addrs():
        if idx not in ours and not ip.startswith("127."):
            out.append(ipaddr.IPv4Network(f"{ip}/{plen}", strict=False))
    for dst, dlen, oif in nm.nl.routes():
        if oif not in ours and dlen > 0 and not dst.startswith("127."):
            out.append(ipaddr.IPv4Network(f"{dst}/{dlen}", strict=False))
    return out


def create_network(nm: NetworkManager, name: str, net: Any, auto: bool = False,
                   labels: Tuple[Tuple[str, str], ...] = ()) -> NetworkRecord:
    """A new network (net: its subnet, None for the first free one): the bridge, then the record,
    then the ruleset and DNS; rolled back on failure."""
    from tcr.network import ipaddr

    taken = [ipaddr.IPv4Network(r.subnet) for r in nm._nets.values()]
    try:
        host = _host_nets(nm)
    except OSError as exc:
        raise _oserr("cannot read the host's routes", exc)
    if net is not None:
        netplan.check_subnet(net, taken, host)
    else:
        net = netplan.choose_subnet(taken, host)
    bridge = netplan.bridge_name(name, nm.tag)
    if any(r.bridge == bridge for r in nm._nets.values()):  # pragma: no cover - hash collision
        raise InUse(f"bridge name {bridge} is taken; choose another network name")
    rec = NetworkRecord(name=name, subnet=str(net), gateway=netplan.gateway_of(net), bridge=bridge,
                        created=round(time.time(), 3), auto=auto, labels=tuple(labels))
    try:
        nm._enable_forwarding()
        nm._ensure_bridge(rec)
        fault("network.create.after_bridge")
        nm._nets[name] = rec
        nm._save(rec)
        fault("network.create.after_state_write")
        nm._apply_nft()
    except BaseException as exc:
        nm._nets.pop(name, None)
        nm._bridge_idx.pop(bridge, None)
        try:
            nm.store.delete(KIND, name)
            nm.nl.delete(bridge)
        except Exception:
            pass
        if isinstance(exc, OSError):
            raise _oserr(f"cannot create network {name}", exc)
        raise
    log.info("network %s created: %s on %s", name, rec.subnet, bridge)
    nm._dns_sync(rec)
    return rec
