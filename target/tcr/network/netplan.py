"""Pure network planning: names, interface names, subnet choice, IP leases, MACs.

Nothing here touches the kernel: the manager feeds in the host's addresses/routes and the
existing records, so every decision is unit-tested with fake inputs.
"""

from __future__ import annotations

from tcr.common import syntax
from tcr.common.digest import sha256
from tcr.common.errors import InUse, InvalidArgument
from tcr.network import ipaddr

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Iterable, List, Optional, Set

DEFAULT_NETWORK = "tcr_default"
DEFAULT_SUBNET = "10.88.0.0/24"
RESERVED = ("host", "none", "bridge", "default")
IFNAMSIZ = 15  # usable characters of a Linux interface name

IPv4Net = ipaddr.IPv4Network


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not syntax.name(name, 64):
        raise InvalidArgument(f"invalid network name {name!r}",
                              hint="use 1-64 letters, digits, '_', '.', '-', starting with a letter or digit")
    if name in RESERVED:
        raise InvalidArgument(f"network name {name!r} is reserved")
    return name


def instance_tag(root: str, default_root: str = "/var/lib/tcr") -> str:
    """'' for the default state root; else 4 hex digits, so test daemons never clash with each
    other or with a real tcr on the machine (names, bridges, nft table)."""
    if root.rstrip("/") == default_root:
        return ""
    return sha256(root.rstrip("/").encode()).hexdigest()[:4]


def if_prefix(tag: str) -> str:
    """'tcr' for the default instance, 'tc<tag>' otherwise ('r' is never a hex digit)."""
    return "tcr" if not tag else f"tc{tag}"


def bridge_name(network: str, tag: str = "") -> str:
    p = if_prefix(tag)
    if network == DEFAULT_NETWORK:
        return p + "0"
    h = sha256(network.encode()).hexdigest()
    return (p + "-" + h)[:IFNAMSIZ]


def veth_name(cid: str, tag: str = "", ifname: str = "eth0") -> str:
    """Host end of a container's veth. eth0 keeps the historic name; ethN (a `network connect`)
    ends in ".N": a container id is hex, so these never collide with another container's eth0."""
    base = if_prefix(tag) + "v" + cid
    if ifname == "eth0":
        return base[:IFNAMSIZ]
    suffix = "." + ifname[3:]
    return base[:IFNAMSIZ - len(suffix)] + suffix


def if_index(ifname: str) -> int:
    """N of ethN (-1 when it is not one)."""
    n = ifname[3:]
    return int(n) if ifname.startswith("eth") and n.isdigit() else -1


def next_ifname(used: Iterable[str]) -> str:
    """eth0 first; then one past the highest in use (docker counts up too), so the connect order
    is the interface order and the lowest ethN is always the primary attachment."""
    idx = [if_index(n) for n in used]
    return f"eth{max(idx) + 1}" if idx else "eth0"


class AttachPlan:
    """What attaching one container to one network means for the kernel (see plan_attachment)."""

    __slots__ = ("ifname", "veth", "ip", "mac", "prefixlen", "gateway", "default_route")

    def __init__(self, ifname: str, veth: str, ip: str, mac: str, prefixlen: int, gateway: str,
                 default_route: bool):
        self.ifname, self.veth, self.ip, self.mac = ifname, veth, ip, mac
        self.prefixlen, self.gateway, self.default_route = prefixlen, gateway, default_route

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AttachPlan) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return "AttachPlan(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


def plan_attachment(cid: str, tag: str, subnet: str, gateway: str, used_ips: Iterable[str],
                    own_ifnames: Iterable[str], requested_ip: Optional[str] = None) -> AttachPlan:
    """The interface, host veth, address, MAC and route of container cid on one more network.

    own_ifnames: the container's interfaces on its other networks. The first attachment (eth0)
    carries the default route; later ones (`network connect`) only their subnet's route. A
    requested address (--ip) must lie in the subnet and be free (docker's errors)."""
    net = ipaddr.IPv4Network(subnet)
    used = set(used_ips)
    ifname = next_ifname(own_ifnames)
    if requested_ip:
        try:
            want = ipaddr.IPv4Address(requested_ip)
        except ValueError:
            raise InvalidArgument(f"invalid IPv4 address: {requested_ip[:64]!r}")
        first = int(net.network_address) + 2
        last = int(net.broadcast_address) - 1
        if not first <= int(want) <= last:
            raise InvalidArgument(f"no configured subnet contains IP address {requested_ip}",
                                  hint=f"the network's subnet is {subnet}")
        if str(want) in used:
            raise InUse(f"Address already in use: {requested_ip}")
        ip = str(want)
    else:
        ip = allocate_ip(net, used)
    return AttachPlan(ifname=ifname, veth=veth_name(cid, tag, ifname), ip=ip, mac=mac_for(ip),
                      prefixlen=net.prefixlen, gateway=gateway, default_route=ifname == "eth0")


def nft_table(tag: str = "") -> str:
    return "tcr" if not tag else f"tcr_{tag}"


def parse_subnet(cidr: str) -> IPv4Net:
    try:
        net = ipaddr.IPv4Network(cidr, strict=True)
    except ValueError as exc:
        raise InvalidArgument(f"invalid subnet {cidr!r}: {exc}", hint="use an IPv4 CIDR such as 10.89.0.0/24")
    if not 8 <= net.prefixlen <= 29:
        raise InvalidArgument(f"subnet {cidr} must have a prefix length between /8 and /29")
    if net.is_loopback or net.is_multicast or net.is_link_local or net.is_reserved or net.is_unspecified:
        raise InvalidArgument(f"subnet {cidr} is not usable for a container network")
    return net


def host_conflicts(net: IPv4Net, host_nets: Iterable[IPv4Net]) -> List[IPv4Net]:
    """Host routes/addresses overlapping net. Default routes (/0) never count."""
    return [h for h in host_nets if h.prefixlen > 0 and h.overlaps(net)]


def check_subnet(net: IPv4Net, taken: Iterable[IPv4Net], host_nets: Iterable[IPv4Net]) -> None:
    for t in taken:
        if t.overlaps(net):
            raise InUse(f"subnet {net} overlaps the tcr network subnet {t}")
    bad = host_conflicts(net, host_nets)
    if bad:
        raise InUse(f"subnet {net} overlaps the host route or address {bad[0]}",
                    hint="choose another --subnet")


def candidates():
    """10.88.0.0/24, 10.88.1.0/24, ... 10.88.255.0/24, then 172.16-31.x.0/24."""
    for i in range(256):
        yield ipaddr.IPv4Network(f"10.88.{i}.0/24")
    for b in range(16, 32):
        for c in range(256):
            yield ipaddr.IPv4Network(f"172.{b}.{c}.0/24")


def choose_subnet(taken: Iterable[IPv4Net], host_nets: Iterable[IPv4Net]) -> IPv4Net:
    taken = list(taken)
    host_nets = [h for h in host_nets if h.prefixlen > 0]
    for net in candidates():
        if not any(t.overlaps(net) for t in taken) and not any(h.overlaps(net) for h in host_nets):
            return net
    raise InUse("no free subnet left for a new network", hint="pass --subnet")


def gateway_of(net: IPv4Net) -> str:
    return str(net.network_address + 1)


def allocate_ip(net: IPv4Net, used: Set[str], preferred: Optional[str] = None) -> str:
    """Lowest free address from .2 (deterministic); .0, gateway .1 and broadcast are never leased."""
    first = int(net.network_address) + 2
    last = int(net.broadcast_address) - 1
    if preferred and preferred not in used:
        p = int(ipaddr.IPv4Address(preferred))
        if first <= p <= last:
            return preferred
    for n in range(first, last + 1):
        ip = str(ipaddr.IPv4Address(n))
        if ip not in used:
            return ip
    raise InUse(f"no free address left in {net}")


def mac_for(ip: str) -> str:
    """Locally administered MAC derived from the IP (02:42:a:b:c:d), so a reused IP keeps its MAC
    and neighbours' ARP caches stay right."""
    octets = [int(x) for x in ip.split(".")]
    return "02:42:" + ":".join(f"{o:02x}" for o in octets)
