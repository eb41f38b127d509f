"""Capabilities: names, docker's default set, the --cap-add/--cap-drop matrix, OCI sets."""

import pytest

from tcr.common.errors import InvalidArgument
from tcr.containers import caps

DEFAULT = set(caps.DEFAULT_CAPS)


def test_default_set_is_dockers_14():
    assert len(caps.DEFAULT_CAPS) == 14
    assert "CAP_SYS_ADMIN" not in DEFAULT and "CAP_NET_ADMIN" not in DEFAULT
    assert set(caps.resolve()) == DEFAULT


def test_all_caps_numbering():
    assert caps.CAP_NUMBER["CAP_CHOWN"] == 0
    assert caps.CAP_NUMBER["CAP_SYS_ADMIN"] == 21
    assert caps.CAP_NUMBER["CAP_CHECKPOINT_RESTORE"] == 40


@pytest.mark.parametrize(
    "name", ["net_admin", "NET_ADMIN", "CAP_NET_ADMIN", "cap_net_admin", "Net_Admin", " net_admin "]
)
def test_normalize_forms(name):
    assert caps.normalize(name) == "CAP_NET_ADMIN"


def test_normalize_all_keyword():
    assert caps.normalize("all") == "ALL"
    assert caps.normalize("ALL") == "ALL"


@pytest.mark.parametrize("bad", ["", "CAP_", "NET_ADMINN", "CAP_ALL", "sys-admin", "42"])
def test_unknown_capability_is_invalid_argument(bad):
    with pytest.raises(InvalidArgument) as e:
        caps.normalize(bad)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "add, drop, expect",
    [
        ([], [], DEFAULT),
        (["NET_ADMIN"], [], DEFAULT | {"CAP_NET_ADMIN"}),
        ([], ["chown", "KILL"], DEFAULT - {"CAP_CHOWN", "CAP_KILL"}),
        (["SYS_ADMIN"], ["SYS_ADMIN"], DEFAULT | {"CAP_SYS_ADMIN"}),  # an explicit add wins over a drop
        ([], ["ALL"], set()),
        (["NET_BIND_SERVICE"], ["ALL"], {"CAP_NET_BIND_SERVICE"}),
        (["ALL"], [], set(caps.ALL_CAPS)),
        (["ALL"], ["SYS_ADMIN", "NET_ADMIN"], set(caps.ALL_CAPS) - {"CAP_SYS_ADMIN", "CAP_NET_ADMIN"}),
        (["ALL"], ["ALL"], set(caps.ALL_CAPS)),  # docker: add ALL takes precedence
        (["CAP_SYS_PTRACE", "sys_ptrace"], [], DEFAULT | {"CAP_SYS_PTRACE"}),
    ],
)
def test_add_drop_matrix(add, drop, expect):
    got = caps.resolve(add, drop)
    assert set(got) == expect
    assert got == sorted(got, key=caps.CAP_NUMBER.__getitem__)
    assert len(got) == len(set(got))


def test_old_kernel_filters_unknown_caps():
    got = caps.resolve(["ALL"], [], last_cap=37)  # e.g. a 4.x kernel: no PERFMON/BPF/CHECKPOINT_RESTORE
    assert "CAP_AUDIT_READ" in got and "CAP_BPF" not in got and "CAP_PERFMON" not in got


def test_restricted_host_bounding_set():
    mask = sum(1 << n for n in range(41)) & ~(1 << caps.CAP_NUMBER["CAP_SYS_RESOURCE"])
    got = caps.resolve(["ALL"], [], available=mask)
    assert "CAP_SYS_RESOURCE" not in got and "CAP_SYS_ADMIN" in got
    with pytest.raises(InvalidArgument, match="not available"):
        caps.resolve(["SYS_RESOURCE"], [], available=mask)
    with pytest.raises(InvalidArgument, match="not available"):
        caps.resolve(["BPF"], [], last_cap=37)


def test_oci_sets_root_and_non_root():
    granted = caps.resolve()
    root = caps.oci_capabilities(granted, is_root=True)
    assert root["bounding"] == root["effective"] == root["permitted"] == granted
    assert root["inheritable"] == [] and root["ambient"] == []
    user = caps.oci_capabilities(granted, is_root=False)
    assert user["bounding"] == granted
    assert user["effective"] == user["permitted"] == user["inheritable"] == user["ambient"] == []
