"""tcr's own rtnetlink client (tcr.network.links) against pyroute2 as an oracle.

pyroute2 is not on the board (it is only in the test extras): tcr creates the bridge, the veth
pair with its peer born in another namespace, addresses, MACs and the default route itself, and
pyroute2 must read back exactly that state; tcr's own dump parsers must agree with pyroute2's.
Everything happens in two network namespaces the test creates and removes."""

import os
import socket
import uuid

import pytest

from tcr.kernel import netns
from tcr.network.links import Netlink

pytestmark = pytest.mark.root
pyroute2 = pytest.importorskip("pyroute2")

BR_MAC = "02:42:0a:fb:00:01"
PEER_MAC = "02:42:0a:fb:00:02"


@pytest.fixture
def two_netns(tmp_path):
    tag = uuid.uuid4().hex[:6]
    host, cont = str(tmp_path / f"tcrt-{tag}-host"), str(tmp_path / f"tcrt-{tag}-cont")
    made = []
    try:
        for p in (host, cont):
            netns.create(p)
            made.append(p)
        yield host, cont
    finally:
        for p in made:
            netns.remove(p)


def pyroute2_state():
    """Links, IPv4 addresses and IPv4 unicast routes of this thread's namespace, read by pyroute2."""
    with pyroute2.IPRoute() as ipr:
        links = {}
        for m in ipr.get_links():
            info = m.get_attr("IFLA_LINKINFO")
            links[m.get_attr("IFLA_IFNAME")] = {
                "index": m["index"],
                "kind": info.get_attr("IFLA_INFO_KIND") if info else "",
                "master": m.get_attr("IFLA_MASTER") or 0,
                "up": bool(m["flags"] & 1),
                "mac": m.get_attr("IFLA_ADDRESS"),
            }
        addrs = sorted((m["index"], m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS"), m["prefixlen"])
                       for m in ipr.get_addr(family=socket.AF_INET))
        routes = sorted((m.get_attr("RTA_DST") or "0.0.0.0", m["dst_len"], m.get_attr("RTA_OIF") or 0,
                         m.get_attr("RTA_GATEWAY"))
                        for m in ipr.get_routes(family=socket.AF_INET, table=254) if m["type"] == 1)
    return links, addrs, routes


def test_links_addresses_routes_and_netns_state_match_pyroute2(two_netns):
    host, cont = two_netns
    # tcr builds what a network and one attached container need
    with netns.inside(host):
        with Netlink() as nl:
            br = nl.add_bridge("tcrtb0")
            nl.set_mac(br, BR_MAC)
            nl.set_up(br)
            nl.add_addr(br, "10.251.0.1", 24)
            fd = os.open(cont, os.O_RDONLY | os.O_CLOEXEC)
            try:
                nl.add_veth("tcrtv0", br, "eth0", fd, peer_mac=PEER_MAC)
            finally:
                os.close(fd)
            tcr_host = (nl.links(), nl.addrs(), nl.routes())
        links, addrs, routes = pyroute2_state()
    with netns.inside(cont):
        with Netlink() as nl:
            eth0 = nl.index("eth0")
            assert eth0 is not None
            nl.set_up(eth0)
            lo = nl.index("lo")
            assert lo is not None
            nl.set_up(lo)
            nl.add_addr(eth0, "10.251.0.2", 24)
            nl.add_default_route("10.251.0.1", eth0)
            tcr_cont = (nl.links(), nl.addrs(), nl.routes())
        c_links, c_addrs, c_routes = pyroute2_state()

    # host namespace: the bridge and the host end of the veth, enslaved and up; no eth0 here
    assert links["tcrtb0"]["kind"] == "bridge" and links["tcrtb0"]["up"]
    assert links["tcrtb0"]["mac"] == BR_MAC
    assert links["tcrtv0"]["kind"] == "veth" and links["tcrtv0"]["up"]
    assert links["tcrtv0"]["master"] == links["tcrtb0"]["index"] == br
    assert "eth0" not in links
    assert (br, "10.251.0.1", 24) in addrs
    assert ("10.251.0.0", 24, br, None) in routes  # the kernel's connected route
    # container namespace: the peer, born there with its MAC, up, addressed, default route
    assert c_links["eth0"]["kind"] == "veth" and c_links["eth0"]["up"] and c_links["lo"]["up"]
    assert c_links["eth0"]["mac"] == PEER_MAC and c_links["eth0"]["index"] == eth0
    assert set(c_links) == {"lo", "eth0"}
    assert (eth0, "10.251.0.2", 24) in c_addrs
    assert ("0.0.0.0", 0, eth0, "10.251.0.1") in c_routes

    # tcr's own readers see what pyroute2 sees
    for (t_links, t_addrs, t_routes), (p_links, p_addrs, p_routes) in (
            (tcr_host, (links, addrs, routes)), (tcr_cont, (c_links, c_addrs, c_routes))):
        assert {lk.name: (lk.index, lk.kind, lk.master) for lk in t_links} == \
            {n: (v["index"], v["kind"], v["master"]) for n, v in p_links.items()}
        assert sorted(t_addrs) == p_addrs
        assert sorted((d, dl, oif) for d, dl, oif in t_routes) == \
            sorted({(d, dl, oif) for d, dl, oif, _gw in p_routes})

    # deleting through tcr is seen by pyroute2 (the peer goes with its pair)
    with netns.inside(host):
        with Netlink() as nl:
            assert nl.delete("tcrtv0") is True
            assert nl.delete("tcrtv0") is False
        links, _, _ = pyroute2_state()
    assert "tcrtv0" not in links and "tcrtb0" in links
    with netns.inside(cont):
        c_links, _, _ = pyroute2_state()
    assert set(c_links) == {"lo"}
