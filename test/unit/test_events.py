"""tcr events: record transitions -> docker's actions (pure), the bounded ring, watchers; timespec."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcr.common.errors import InvalidArgument, UsageError
from tcr.common.timespec import parse_duration, parse_time
from tcr.daemon.events import EventLog
from tcr.images.refs import normalize_tag


def ctr(state, code=None, user=False):
    return {"name": "web", "imageRef": "busybox", "state": state, "exitCode": code, "stoppedByUser": user}


def actions(log):
    return [(e["Type"], e["Action"]) for e in log.events()]


def test_container_life_cycle():
    log = EventLog()
    seen = []
    log.watch(seen.append)
    log.observe("containers", "a" * 16, ctr("created"))
    log.observe("containers", "a" * 16, ctr("running"))
    log.observe("containers", "a" * 16, ctr("restarting", 1))
    log.observe("containers", "a" * 16, ctr("running"))
    log.observe("containers", "a" * 16, ctr("exited", 0, user=True))
    log.observe("containers", "a" * 16, None)
    assert [a for _, a in actions(log)] == ["create", "start", "die", "restart", "die", "stop", "destroy"]
    die = [e for e in log.events() if e["Action"] == "die"]
    assert die[0]["Actor"]["Attributes"] == {"name": "web", "image": "busybox", "exitCode": "1"}
    assert len(seen) == 7


def test_seeded_records_are_not_new_and_rm_exit_dies():
    log = EventLog()
    log.seed("containers", "b" * 16, ctr("running"))
    log.observe("containers", "b" * 16, ctr("exited", 137))  # --rm: the last state, then the delete
    log.observe("containers", "b" * 16, None)
    assert [a for _, a in actions(log)] == ["die", "destroy"]


def test_images_networks_volumes():
    log = EventLog()
    log.observe("images", "i1", {"tags": ["a:1"]})
    log.observe("images", "i1", {"tags": ["a:1", "b:2"]})
    log.observe("images", "i1", {"tags": ["b:2"]})
    log.observe("images", "i1", None)
    log.observe("networks", "n", {"name": "n"})
    log.observe("networks", "n", None)
    log.observe("volumes", "v", {"name": "v"})
    log.observe("other", "x", {"name": "x"})
    assert actions(log) == [("image", "load"), ("image", "tag"), ("image", "untag"), ("image", "delete"),
                            ("network", "create"), ("network", "destroy"), ("volume", "create")]


def test_ring_is_bounded_and_a_broken_watcher_is_dropped():
    log = EventLog(ring=5)

    def broken(_ev):
        raise RuntimeError("gone")

    log.watch(broken)
    for i in range(20):
        log.observe("networks", f"n{i}", {"name": f"n{i}"})
    assert len(log.ring) == 5 and log.watchers == []
    assert log.since(0) == log.events()


@pytest.mark.parametrize("text,want", [("10m", 600.0), ("1h30m", 5400.0), ("2.5s", 2.5), ("500ms", 0.5)])
def test_durations(text, want):
    assert parse_duration(text) == want


def test_times():
    now = 1_800_000_000.0
    assert parse_time("10m", "--since", now) == now - 600
    assert parse_time("1764583200", "--since", now) == 1764583200.0
    assert parse_time("2025-12-01T10:00:00Z", "--since", now) == 1764583200.0
    assert parse_time("2025-12-01T12:00:00+02:00", "--since", now) == 1764583200.0
    assert parse_time("2025-12-01T10:00:00.5Z", "--since", now) == 1764583200.5
    for bad in ("yesterday", "2025-13-01", "10x", "", "2025-12-01T25:00:00Z"):
        with pytest.raises(UsageError):
            parse_time(bad, "--since", now)


def test_normalize_tag():
    assert normalize_tag("app") == "docker.io/library/app:latest"
    assert normalize_tag("me/app:1.2") == "docker.io/me/app:1.2"
    assert normalize_tag("reg.local:5000/x/app:v1") == "reg.local:5000/x/app:v1"
    for bad in ("", "Bad", "a b", "app@sha256:00", "app:" + "x" * 200, "app:-x"):
        with pytest.raises(InvalidArgument):
            normalize_tag(bad)


@settings(max_examples=500, deadline=None)
@given(st.integers(1970, 2400), st.integers(1, 12), st.integers(1, 28), st.integers(0, 23),
       st.integers(0, 59), st.integers(0, 59))
def test_timegm_matches_calendar(y, mo, d, hh, mi, ss):
    import calendar

    from tcr.common.timespec import _timegm

    assert _timegm(y, mo, d, hh, mi, ss) == calendar.timegm((y, mo, d, hh, mi, ss, 0, 0, 0))


def test_oom_comes_before_die():
    """The kernel's OOM killer in the container's cgroup: `oom`, then `die` with 137 (docker)."""
    log = EventLog()
    log.observe("containers", "c" * 16, ctr("running"))
    log.observe("containers", "c" * 16, dict(ctr("exited", 137), oomKilled=True))
    log.observe("containers", "c" * 16, dict(ctr("running"), oomKilled=False))
    log.observe("containers", "c" * 16, ctr("exited", 0))
    assert [a for _, a in actions(log)] == ["create", "start", "oom", "die", "start", "die"]


def test_network_connect_and_disconnect_events():
    log = EventLog()
    log.observe("networks", "n", {"name": "n", "leases": []})
    log.observe("networks", "n", {"name": "n", "leases": [{"cid": "a" * 16}]})
    log.observe("networks", "n", {"name": "n", "leases": [{"cid": "a" * 16}, {"cid": "b" * 16}]})
    log.observe("networks", "n", {"name": "n", "leases": [{"cid": "b" * 16}]})
    evs = [(e["Action"], e["Actor"]["Attributes"].get("container")) for e in log.events()]
    assert evs == [("create", None), ("connect", "a" * 16), ("connect", "b" * 16), ("disconnect", "a" * 16)]
    assert log.events()[1]["Actor"]["Attributes"]["name"] == "n"
