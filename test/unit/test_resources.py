"""Size/cpu/pids parsing, linux.resources and rlimit clamping."""

import pytest

from tcr.common.errors import InvalidArgument
from tcr.containers import resources


@pytest.mark.parametrize(
    "text, expect",
    [
        ("1", 1),
        ("512", 512),
        ("512b", 512),
        ("4k", 4096),
        ("64m", 64 << 20),
        ("64M", 64 << 20),
        ("1g", 1 << 30),
        ("1.5g", 3 << 29),
        ("64mb", 64 << 20),
        ("64MiB", 64 << 20),
        ("2t", 2 << 40),
    ],
)
def test_parse_size(text, expect):
    assert resources.parse_size(text) == expect


@pytest.mark.parametrize("bad", ["", "m", "-1m", "1x", "0", "1 g g", "abc", "0.0001"])
def test_parse_size_bad(bad):
    with pytest.raises(InvalidArgument) as e:
        resources.parse_size(bad)
    assert "\n" not in str(e.value)


def test_parse_memory_minimum():
    assert resources.parse_memory("6m") == 6 << 20
    with pytest.raises(InvalidArgument, match="minimum"):
        resources.parse_memory("4m")


def test_parse_cpus():
    assert resources.parse_cpus("0.5") == 0.5
    assert resources.parse_cpus("2") == 2.0
    for bad in ("0", "-1", "x", "0.001", "5000"):
        with pytest.raises(InvalidArgument):
            resources.parse_cpus(bad)


def test_parse_pids():
    assert resources.parse_pids("100") == 100
    assert resources.parse_pids("0") is None and resources.parse_pids("-1") is None
    for bad in ("-2", "x", "1.5"):
        with pytest.raises(InvalidArgument):
            resources.parse_pids(bad)


def test_oci_resources():
    r = resources.oci_resources(64 << 20, 0.5, 50)
    assert r["memory"] == {"limit": 64 << 20, "swap": 64 << 20}
    assert r["cpu"] == {"quota": 50000, "period": 100000}
    assert r["pids"] == {"limit": 50}
    none = resources.oci_resources(None, None, None)
    assert set(none) == {"devices"}


def test_device_rules_deny_first_then_standard_set():
    rules = resources.oci_resources(None, None, None)["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    allowed = {(r.get("major"), r.get("minor")) for r in rules[1:] if r["access"] == "rwm"}
    assert {(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (136, None)} == allowed
    assert all(r["allow"] for r in rules[1:])


@pytest.mark.parametrize(
    "hard, expect",
    [
        (-1, (1024, 1 << 20)),
        (4096, (1024, 4096)),
        (512, (512, 512)),
        (1 << 30, (1024, 1 << 20)),
        (None, (1024, 1 << 20)),
    ],
)
def test_rlimits_clamped_to_host_hard_limit(hard, expect):
    limits = {} if hard is None else {"RLIMIT_NOFILE": hard}
    (nofile,) = resources.rlimits(limits)
    assert nofile["type"] == "RLIMIT_NOFILE"
    assert (nofile["soft"], nofile["hard"]) == expect
    assert nofile["soft"] <= nofile["hard"]
