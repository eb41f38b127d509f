"""tcr.containers.seccomp_bpf: the precompiled filter for crun's run.oci.seccomp_bpf_data annotation.

Byte equality with crun's own compilation is in test/root/test_seccomp_bpf.py (needs crun).
"""

import base64
import struct

import pytest

from tcr.containers import seccomp, seccomp_bpf

have_lib = pytest.mark.skipif(not seccomp_bpf._libseccomp(), reason="libseccomp not installed")
DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETUID", "CAP_SETGID"]


def _prog(bpf: bytes):
    return [struct.unpack("=HBBI", bpf[i:i + 8]) for i in range(0, len(bpf), 8)]


@have_lib
def test_default_profile_compiles_to_a_bpf_program():
    oci = seccomp.default_for("amd64", DEFAULT_CAPS, (6, 1))
    bpf = seccomp_bpf.compile(oci)
    assert bpf and len(bpf) % 8 == 0
    prog = _prog(bpf)
    # first insn loads seccomp_data.arch (offset 4); some insn returns ERRNO(EPERM), some ALLOW
    assert prog[0][0] == 0x20 and prog[0][3] == 4
    rets = {k for code, _, _, k in prog if code == 0x06}
    assert 0x00050001 in rets and 0x7FFF0000 in rets


@have_lib
def test_annotate_adds_base64_and_keeps_linux_seccomp():
    oci = seccomp.default_for("amd64", DEFAULT_CAPS, (6, 1))
    config = {"linux": {"seccomp": oci}, "annotations": {"org.opencontainers.image.title": "x"}}
    assert seccomp_bpf.annotate(config)
    assert config["linux"]["seccomp"] is oci
    assert config["annotations"]["org.opencontainers.image.title"] == "x"
    assert base64.b64decode(config["annotations"][seccomp_bpf.ANNOTATION]) == seccomp_bpf.compile(oci)


@have_lib
def test_different_profiles_give_different_programs():
    a = seccomp_bpf.compile(seccomp.default_for("amd64", DEFAULT_CAPS, (6, 1)))
    b = seccomp_bpf.compile(seccomp.default_for("amd64", DEFAULT_CAPS + ["CAP_SYS_ADMIN"], (6, 1)))
    c = seccomp_bpf.compile(seccomp.default_for("arm64", DEFAULT_CAPS, (6, 1)))
    assert a and b and c and len({a, b, c}) == 3


@have_lib
def test_equal_content_gives_equal_program_and_copies_are_not_confused():
    oci = seccomp.default_for("amd64", DEFAULT_CAPS, (6, 1))
    import copy

    twin = copy.deepcopy(oci)
    assert seccomp_bpf.compile(twin) == seccomp_bpf.compile(oci)
    twin["defaultAction"] = "SCMP_ACT_KILL_PROCESS"
    assert seccomp_bpf.compile(twin) != seccomp_bpf.compile(oci)


@pytest.mark.parametrize("oci", [
    {"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_LOG"], "syscalls": []},
    {"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": "/x", "syscalls": []},
    {"defaultAction": "SCMP_ACT_NOTIFY", "syscalls": []},
    {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_WHAT"}]},
    {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "op": "SCMP_CMP_XX"}]}]},
    {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 7, "op": "SCMP_CMP_EQ"}]}]},
    {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_NOPE"], "syscalls": []},
    {"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1, "syscalls": []},
])
def test_anything_unknown_is_left_to_crun(oci):
    config = {"linux": {"seccomp": oci}}
    assert seccomp_bpf.compile(oci) is None
    assert not seccomp_bpf.annotate(config)
    assert "annotations" not in config


def test_no_seccomp_no_annotation():
    config = {"linux": {}}
    assert not seccomp_bpf.annotate(config) and config == {"linux": {}}


def test_default_for_is_memoised_as_text_and_equals_evaluate():
    a = seccomp.default_for("amd64", DEFAULT_CAPS, (6, 1))
    entries = len(seccomp._evaluated)
    b = seccomp.default_for("amd64", list(reversed(DEFAULT_CAPS)), (6, 1))
    assert b == a and b is not a and len(seccomp._evaluated) == entries  # one entry for both orders
    # kept as JSON text (~5 kB), not as the ~30 kB of objects it decodes to (docs/profile.md)
    assert all(isinstance(v, str) for v in seccomp._evaluated.values())
    assert a == seccomp.evaluate(seccomp.load_default(), "amd64", DEFAULT_CAPS, (6, 1))
    assert seccomp.default_for("amd64", DEFAULT_CAPS + ["CAP_SYS_ADMIN"], (6, 1)) != a
    b["syscalls"].clear()  # a caller's change stays its own
    assert seccomp.default_for("amd64", DEFAULT_CAPS, (6, 1)) == a
