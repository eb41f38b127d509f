"""ContainerRecord: round trip, validation, names."""

import pytest

from tcr.common.record import FrozenInstanceError
from tcr.containers.names import random_name
from tcr.containers.record import ContainerRecord, Endpoint, NetSummary, new_id


def _rec(**kw):
    base = dict(id=new_id(), name="calm_otter", image_id="0123456789abcdef", image_ref="busybox:latest",
                options={"restart": "always", "detach": True}, command=["sh", "-c", "echo hi"],
                created=1700000000.5)
    base.update(kw)
    return ContainerRecord(**base)


def test_round_trip_full():
    r = _rec(state="running", pid=42, exit_code=None, started_at=1.5, finished_at=2.0, restart_count=3,
             stopped_by_user=True, interactive=True, error="boom", interrupted=True,
             net=NetSummary("nat", "tcr_default", "10.88.0.2", "10.88.0.1", "/run/netns/x", ["8080:80/tcp"],
                            attachments=[{"network": "tcr_default", "ip": "10.88.0.2", "ifname": "eth0"},
                                         {"network": "lab", "ip": "10.89.0.2", "ifname": "eth1"}]),
             networks=(Endpoint("tcr_default"), Endpoint("lab", ("db", "cache"), "10.89.0.9")),
             oom_killed=True)
    d = r.to_dict()
    assert d["version"] == 2
    assert ContainerRecord.from_dict(d) == r


def test_round_trip_minimal_and_exit_codes():
    for code in (None, 0, 137):
        r = _rec(state="exited", exit_code=code)
        assert ContainerRecord.from_dict(r.to_dict()) == r


def test_record_is_frozen():
    r = _rec()
    with pytest.raises(FrozenInstanceError):
        r.state = "running"  # type: ignore[misc]


@pytest.mark.parametrize("patch", [
    {"id": "xyz"}, {"name": "-bad"}, {"name": "a/b"}, {"state": "zombie"}, {"version": 99},
    {"version": "1"}, {"exitCode": "0"}, {"command": "sh"}, {"options": []}, {"pid": "1"},
    {"net": {"mode": "bridge"}},
])
def test_from_dict_rejects(patch):
    d = _rec().to_dict()
    d.update(patch)
    with pytest.raises(ValueError):
        ContainerRecord.from_dict(d)


def test_ids_are_16_hex_and_random():
    ids = {new_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)


def test_random_name_avoids_taken():
    taken = set()
    for _ in range(50):
        n = random_name(lambda x: x in taken, "0123456789abcdef")
        assert n not in taken
        taken.add(n)
    assert random_name(lambda x: True, "0123456789abcdef") == "tcr-01234567"


@pytest.mark.parametrize("options,want", [
    ({}, (Endpoint("tcr_default"),)),
    ({"network": "lab", "networkAliases": ["db"]}, (Endpoint("lab", ("db",)),)),
    ({"network": "host"}, ()),
    ({"network": "none"}, ()),
])
def test_version_1_records_migrate_to_a_list_of_networks(options, want):
    """A record of a tcr before `network connect` had one network in its run options."""
    d = _rec(options=options, state="exited", exit_code=0).to_dict()
    d["version"] = 1
    del d["networks"], d["oomKilled"]
    r = ContainerRecord.from_dict(d)
    assert r.networks == want and r.oom_killed is False
    assert ContainerRecord.from_dict(r.to_dict()) == r and r.to_dict()["version"] == 2


@pytest.mark.parametrize("networks", [
    "lab", [{"network": "host"}], [{"network": ""}], [{"network": "a"}, {"network": "a"}],
    [{"network": "a", "aliases": "x"}], [{"network": "a", "ip": 5}], [3],
])
def test_bad_network_lists_are_refused(networks):
    d = _rec().to_dict()
    d["networks"] = networks
    with pytest.raises(ValueError):
        ContainerRecord.from_dict(d)
