"""Network records round-trip (and through the state store)."""

import pytest

from tcr.daemon.state import StateStore
from tcr.network.records import KIND, Attachment, Lease, NetworkRecord, PortMapping


def _rec():
    le1 = Lease("bbb", "10.88.0.3", "02:42:0a:58:00:03", "b", (PortMapping(8080, 80, "tcp", "127.0.0.1"),))
    le2 = Lease("aaa", "10.88.0.2", "02:42:0a:58:00:02", "", ())
    return NetworkRecord("tcr_default", "10.88.0.0/24", "10.88.0.1", "tcr0", 1.5, (le1,)).with_lease(le2)


def test_round_trip(tmp_path):
    rec = _rec()
    assert [le.cid for le in rec.leases] == ["aaa", "bbb"]
    assert NetworkRecord.from_dict(rec.to_dict()) == rec
    store = StateStore(str(tmp_path))
    store.save(KIND, rec.name, rec.to_dict())
    loaded, errors = store.load_all(KIND)
    assert errors == [] and NetworkRecord.from_dict(loaded["tcr_default"]) == rec
    assert rec.without("aaa").lease("aaa") is None and rec.lease("bbb").ports[0].host_ip == "127.0.0.1"
    assert rec.prefixlen == 24


def test_auto_flag_round_trip():
    """Networks made on first use (the C tool's rule) remember it across a restart; older records
    without the key are ordinary networks."""
    auto = NetworkRecord("lab", "10.88.1.0/24", "10.88.1.1", "tcr-1", 2.0, auto=True)
    assert NetworkRecord.from_dict(auto.to_dict()) == auto and auto.to_dict()["auto"] is True
    old = auto.to_dict()
    del old["auto"]
    assert NetworkRecord.from_dict(old).auto is False
    assert _rec().with_lease(Lease("c", "10.88.0.4", "m")).auto is False


def test_attachment_round_trip():
    a = Attachment("n", "/run/tcr/netns/x", "10.88.0.2", 24, "10.88.0.1", ("10.88.0.1",), "02:42:0a:58:00:02",
                   (PortMapping(1, 2, "udp"),))
    assert Attachment.from_dict(a.to_dict()) == a
    assert str(a.ports[0]) == "1->2/udp"


def test_lease_aliases_round_trip_and_old_records():
    le = Lease("c1", "10.88.0.5", "02:42:0a:58:00:05", "proj-db-1", (), ("db",))
    assert Lease.from_dict(le.to_dict()) == le
    old = {"cid": "c1", "ip": "10.88.0.5", "mac": "m", "name": "x", "ports": []}  # before aliases
    assert Lease.from_dict(old).aliases == () and "aliases" not in Lease.from_dict(old).to_dict()


def test_aliases_resolve_but_never_shadow_a_container_name():
    from tcr.network.manager import NetworkManager

    rec = _rec().with_lease(Lease("c1", "10.88.0.5", "m1", "proj-db-1", (), ("db", "web"))) \
        .with_lease(Lease("c2", "10.88.0.6", "m2", "web", (), ()))
    names = NetworkManager._names(rec)
    assert names["db"] == "10.88.0.5" and names["proj-db-1"] == "10.88.0.5"
    assert names["web"] == "10.88.0.6"


def test_lease_interface_round_trip_and_old_records():
    """A connected network's lease says which ethN it is; leases written before connect are eth0."""
    le = Lease("c1", "10.89.0.5", "02:42:0a:59:00:05", "web", (), ("w",), "eth3")
    assert Lease.from_dict(le.to_dict()) == le and le.to_dict()["ifname"] == "eth3"
    old = {"cid": "c1", "ip": "10.88.0.5", "mac": "m", "name": "x", "ports": []}
    assert Lease.from_dict(old).ifname == "eth0" and "ifname" not in Lease.from_dict(old).to_dict()
    for bad in ("wlan0", "eth", "eth1x", 3, "eth123456"):
        with pytest.raises(ValueError):
            Lease.from_dict(dict(old, ifname=bad))
    a = Attachment("n", "/p", "10.89.0.5", 24, "10.89.0.1", aliases=("w",), ifname="eth1")
    assert Attachment.from_dict(a.to_dict()) == a
