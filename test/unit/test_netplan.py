"""Subnet choice, names and leases (pure)."""


import pytest

from tcr.common.errors import InUse, InvalidArgument
from tcr.network import ipaddr, netplan

Net = ipaddr.IPv4Network


def test_default_subnet_first():
    assert netplan.choose_subnet([], []) == Net("10.88.0.0/24")


def test_skips_host_routes_addresses_and_tcr_networks():
    host = [Net("0.0.0.0/0"), Net("10.88.0.0/16")]  # another runtime owns 10.88/16; default ignored
    assert netplan.choose_subnet([], host) == Net("172.16.0.0/24")
    host = [Net("10.88.0.0/24"), Net("10.88.2.0/23")]
    assert netplan.choose_subnet([Net("10.88.1.0/24")], host) == Net("10.88.4.0/24")
    assert netplan.choose_subnet([], [Net("10.88.0.5/32")]) == Net("10.88.1.0/24")


def test_exhausted():
    with pytest.raises(InUse):
        netplan.choose_subnet([Net("10.0.0.0/8"), Net("172.16.0.0/12")], [])


def test_user_subnet_validation():
    assert netplan.parse_subnet("10.89.0.0/24") == Net("10.89.0.0/24")
    for bad in ("10.89.0.1/24", "10.89.0.0/30", "10.0.0.0/7", "127.0.0.0/8", "nonsense", "fd00::/64"):
        with pytest.raises(InvalidArgument):
            netplan.parse_subnet(bad)
    with pytest.raises(InUse):
        netplan.check_subnet(Net("192.168.1.0/24"), [], [Net("192.168.0.0/16")])
    with pytest.raises(InUse):
        netplan.check_subnet(Net("10.88.0.0/25"), [Net("10.88.0.0/24")], [])
    netplan.check_subnet(Net("10.89.0.0/24"), [Net("10.88.0.0/24")], [Net("0.0.0.0/0")])


def test_names():
    assert netplan.validate_name("lab-1.x") == "lab-1.x"
    for bad in ("", "-x", "a b", "x" * 65, "host", "none", "a/b"):
        with pytest.raises(InvalidArgument):
            netplan.validate_name(bad)
    assert netplan.bridge_name("tcr_default") == "tcr0"
    assert netplan.instance_tag("/var/lib/tcr/") == ""
    tag = netplan.instance_tag("/tmp/test-root")
    assert len(tag) == 4 and tag != netplan.instance_tag("/tmp/other-root")
    for name in ("tcr_default", "a-very-long-network-name-indeed"):
        for t in ("", tag):
            assert len(netplan.bridge_name(name, t)) <= 15
    assert netplan.bridge_name("x", tag).startswith("tc" + tag + "-")
    assert len(netplan.veth_name("f" * 64, tag)) == 15
    assert netplan.veth_name("0123456789abcdef") == "tcrv0123456789a"
    assert netplan.nft_table(tag) == "tcr_" + tag and netplan.nft_table("") == "tcr"


def test_leases_deterministic():
    net = Net("10.88.0.0/29")  # .1 gateway, .2-.6 usable, .7 broadcast
    assert netplan.allocate_ip(net, set()) == "10.88.0.2"
    assert netplan.allocate_ip(net, {"10.88.0.2", "10.88.0.4"}) == "10.88.0.3"
    assert netplan.allocate_ip(net, {"10.88.0.2"}, preferred="10.88.0.5") == "10.88.0.5"
    assert netplan.allocate_ip(net, set(), preferred="10.88.0.7") == "10.88.0.2"
    with pytest.raises(InUse):
        netplan.allocate_ip(net, {f"10.88.0.{i}" for i in range(2, 7)})
    assert netplan.gateway_of(net) == "10.88.0.1"
    assert netplan.mac_for("10.88.0.2") == "02:42:0a:58:00:02"


# ---- one attachment of a container (network connect) -----------------------------------------

from tcr.network.netplan import AttachPlan, next_ifname, plan_attachment, veth_name  # noqa: E402

CID = "0123456789abcdef"


def test_first_attachment_is_eth0_with_the_default_route():
    p = plan_attachment(CID, "", "10.88.0.0/24", "10.88.0.1", ["10.88.0.2"], ())
    assert p == AttachPlan("eth0", "tcrv0123456789a", "10.88.0.3", "02:42:0a:58:00:03", 24, "10.88.0.1", True)


def test_later_attachments_count_up_without_a_default_route():
    p = plan_attachment(CID, "", "10.89.0.0/16", "10.89.0.1", [], ["eth0", "eth1"])
    assert (p.ifname, p.veth, p.ip, p.prefixlen, p.default_route) == ("eth2", "tcrv012345678.2", "10.89.0.2",
                                                                      16, False)
    # eth0 disconnected earlier: the next one still counts up, so eth1 stays the primary
    assert next_ifname(["eth1"]) == "eth2" and next_ifname([]) == "eth0"


def test_veth_names_fit_and_never_collide_with_a_primary():
    for tag in ("", "ab12"):
        names = {veth_name(CID, tag, f"eth{i}") for i in range(100)}
        assert len(names) == 100 and all(len(n) <= 15 for n in names)
        assert veth_name(CID, tag) == veth_name(CID, tag, "eth0")
        # a primary name has no dot (ids are hex), a connected one always has
        assert all("." in n for n in names - {veth_name(CID, tag)})


def test_requested_address():
    p = plan_attachment(CID, "", "10.88.1.0/24", "10.88.1.1", ["10.88.1.2"], ["eth0"], "10.88.1.77")
    assert p.ip == "10.88.1.77" and p.mac == "02:42:0a:58:01:4d"
    with pytest.raises(InUse, match="Address already in use"):
        plan_attachment(CID, "", "10.88.1.0/24", "10.88.1.1", ["10.88.1.2"], (), "10.88.1.2")
    for bad in ("10.88.2.5", "10.88.1.1", "10.88.1.255", "10.88.1.0"):
        with pytest.raises(InvalidArgument, match="no configured subnet contains IP address"):
            plan_attachment(CID, "", "10.88.1.0/24", "10.88.1.1", [], (), bad)
    with pytest.raises(InvalidArgument, match="invalid IPv4 address"):
        plan_attachment(CID, "", "10.88.1.0/24", "10.88.1.1", [], (), "10.88.1")
