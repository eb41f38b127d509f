"""The nftables ruleset of all tcr networks, as text (pure).

One table (`ip tcr`, or `ip tcr_<tag>` for a non-default state root) holds every network. It is
regenerated from the records on each change and applied with ONE `nft -f -` transaction:

    table ip tcr {}         # make sure it exists, so that the delete cannot fail
    delete table ip tcr
    table ip tcr { ... }    # the new content (absent when there are no networks)

The kernel applies the whole batch atomically: a packet sees the old rules or the new ones.
"""

from __future__ import annotations

from tcr.network.records import NetworkRecord, PortMapping

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import List, Sequence

# Numeric priorities (dstnat=-100, srcnat=100, filter=0) keep old nft versions happy.
PRIO_DSTNAT = -100
PRIO_SRCNAT = 100
PRIO_FILTER = 0


def _q(name: str) -> str:
    return '"' + name + '"'


def _set(names: Sequence[str]) -> str:
    return _q(names[0]) if len(names) == 1 else "{ " + ", ".join(_q(n) for n in names) + " }"


def dnat_rule(m: PortMapping, ip: str) -> str:
    match = f"ip daddr {m.host_ip} " if m.host_ip else ""
    return f"{match}{m.proto} dport {m.host_port} dnat to {ip}:{m.container_port}"


def ruleset(table: str, networks: Sequence[NetworkRecord]) -> str:
    """The whole transaction text for `nft -f -`."""
    head = f"table ip {table} {{}}\ndelete table ip {table}\n"
    nets = sorted(networks, key=lambda n: n.bridge)
    if not nets:
        return head
    bridges = [n.bridge for n in nets]
    L: List[str] = [f"table ip {table} {{"]

    def chain(name: str, hook: str, body: List[str]) -> None:
        L.append(f"\tchain {name} {{")
        if hook:
            L.append(f"\t\t{hook}")
        L.extend(f"\t\t{r}" for r in body)
        L.append("\t}")

    # Published ports: DNAT anything addressed to a local address (fib daddr type local covers
    # 127.0.0.1, the host's own addresses and the gateways), from outside (prerouting) and from
    # the host itself (output).
    published: List[str] = []
    for n in nets:
        for le in n.leases:
            for m in le.ports:
                published.append(dnat_rule(m, le.ip) + f' comment "{le.cid[:12]}"')
    chain("prerouting", f"type nat hook prerouting priority {PRIO_DSTNAT}; policy accept;",
          ["fib daddr type local jump published"])
    chain("output", f"type nat hook output priority {PRIO_DSTNAT}; policy accept;",
          ["fib daddr type local jump published"])
    chain("published", "", published)

    post: List[str] = []
    for n in nets:
        br = _q(n.bridge)
        # Host -> 127.0.0.1:port: after DNAT the source is still 127.x; give it the gateway address
        # (route_localnet=1 on the bridge lets such a packet be routed at all).
        post.append(f"oifname {br} ip saddr 127.0.0.0/8 masquerade")
        # Hairpin: a container reaching a published port through a host address must see the
        # reply come back from that address, not directly from its neighbour on the bridge.
        post.append(f"oifname {br} ip saddr {n.subnet} ct status dnat masquerade")
        # Outbound NAT to everything that is not the network's own bridge.
        post.append(f"ip saddr {n.subnet} oifname != {br} masquerade")
    chain("postrouting", f"type nat hook postrouting priority {PRIO_SRCNAT}; policy accept;", post)

    fwd: List[str] = [
        f"oifname {_set(bridges)} ct state established,related accept",
        # Published ports are reachable from anywhere, including other tcr networks.
        f"oifname {_set(bridges)} ct status dnat accept",
    ]
    if len(bridges) > 1:
        for b in bridges:
            others = [o for o in bridges if o != b]
            fwd.append(f"iifname {_q(b)} oifname {_set(others)} drop")  # isolation between networks
    fwd.append(f"iifname {_set(bridges)} accept")
    fwd.append(f"oifname {_set(bridges)} drop")  # nothing unsolicited into a network
    chain("forward", f"type filter hook forward priority {PRIO_FILTER}; policy accept;", fwd)
    L.append("}")
    return head + "\n".join(L) + "\n"
