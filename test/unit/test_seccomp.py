"""The default seccomp profile and its evaluation for an architecture and a capability set."""

import json

import pytest

from tcr.common.errors import InvalidArgument
from tcr.containers import caps, seccomp

PROFILE = seccomp.load_default()
NEW_KERNEL = (6, 1)
DEFAULT_CAPS = caps.resolve()


def ev(arch="amd64", cap_list=None, kernel=NEW_KERNEL):
    return seccomp.evaluate(PROFILE, arch, DEFAULT_CAPS if cap_list is None else cap_list, kernel)


def test_profile_shape():
    assert PROFILE["defaultAction"] == "SCMP_ACT_ERRNO"
    assert PROFILE["defaultErrnoRet"] == 1
    for e in PROFILE["syscalls"]:
        assert e["names"] and e["action"].startswith("SCMP_ACT_")
        assert set(e) <= {"names", "action", "errnoRet", "args", "comment", "includes", "excludes"}


def test_default_caps_amd64_allows_and_denies():
    f = ev()
    assert f["defaultAction"] == "SCMP_ACT_ERRNO" and f["defaultErrnoRet"] == 1
    for name in ("read", "write", "execve", "arch_prctl", "chroot", "modify_ldt", "setuid", "ptrace"):
        assert seccomp.allowed(f, name) == "allow", name
    for name in ("socket", "clone", "personality"):
        assert seccomp.allowed(f, name) == "conditional", name
    for name in (
        "bpf",
        "mount",
        "umount2",
        "unshare",
        "setns",
        "kexec_load",
        "init_module",
        "finit_module",
        "add_key",
        "keyctl",
        "request_key",
        "reboot",
        "sethostname",
        "setdomainname",
        "swapon",
        "perf_event_open",
        "open_by_handle_at",
        "iopl",
        "settimeofday",
        "syslog",
        "acct",
        "set_tls",
        "riscv_flush_icache",
        "userfaultfd",
        "clone3",
    ):
        assert seccomp.allowed(f, name) == "deny", name


def test_architectures_per_host():
    assert ev("amd64")["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert ev("arm64")["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert ev("arm")["architectures"] == ["SCMP_ARCH_ARM"]


def test_arch_specific_rules():
    arm = ev("arm")
    assert seccomp.allowed(arm, "set_tls") == "allow" and seccomp.allowed(arm, "cacheflush") == "allow"
    assert seccomp.allowed(arm, "arch_prctl") == "deny" and seccomp.allowed(arm, "modify_ldt") == "deny"
    arm64 = ev("arm64")
    assert seccomp.allowed(arm64, "arm_sync_file_range") == "allow"
    assert seccomp.allowed(arm64, "arch_prctl") == "deny"


def test_socket_filter_blocks_only_vsock():
    (entry,) = [e for e in ev()["syscalls"] if "socket" in e["names"]]
    assert entry["args"] == [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]


def test_clone_namespace_flags_filtered_without_sys_admin():
    f = ev()
    (entry,) = [e for e in f["syscalls"] if "clone" in e["names"]]
    assert entry["args"] == [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]
    (c3,) = [e for e in f["syscalls"] if "clone3" in e["names"]]
    assert c3["action"] == "SCMP_ACT_ERRNO" and c3["errnoRet"] == 38  # ENOSYS: libc falls back to clone
    s390 = seccomp.evaluate(PROFILE, "s390x", DEFAULT_CAPS, NEW_KERNEL)
    (entry,) = [e for e in s390["syscalls"] if "clone" in e["names"]]
    assert entry["args"][0]["index"] == 1


def test_sys_admin_unlocks_mount_and_namespaces():
    f = ev(cap_list=DEFAULT_CAPS + ["CAP_SYS_ADMIN"])
    for name in ("mount", "umount2", "unshare", "setns", "sethostname", "clone", "clone3", "bpf"):
        assert seccomp.allowed(f, name) == "allow", name
    assert not any(e["action"] == "SCMP_ACT_ERRNO" for e in f["syscalls"])  # the clone3 ENOSYS rule is gone


def test_capability_conditions():
    assert seccomp.allowed(ev(cap_list=["CAP_SYS_CHROOT"]), "chroot") == "allow"
    assert seccomp.allowed(ev(cap_list=[]), "chroot") == "deny"
    assert seccomp.allowed(ev(cap_list=["CAP_SYS_TIME"]), "settimeofday") == "allow"
    assert seccomp.allowed(ev(cap_list=["CAP_SYS_MODULE"]), "init_module") == "allow"
    assert seccomp.allowed(ev(cap_list=["CAP_SYS_MODULE"]), "kexec_load") == "deny"  # never allowed
    assert seccomp.allowed(ev(cap_list=["CAP_BPF"]), "bpf") == "allow"


def test_ptrace_needs_kernel_48():
    assert seccomp.allowed(ev(kernel=(4, 4, 0)), "ptrace") == "deny"
    assert seccomp.allowed(ev(kernel=(4, 8)), "ptrace") == "allow"
    assert seccomp.allowed(ev(kernel=None), "ptrace") == "deny"  # unknown kernel: fail closed
    assert seccomp.allowed(ev(kernel=(4, 4), cap_list=["CAP_SYS_PTRACE"]), "ptrace") == "allow"


def test_merged_and_small():
    f = ev()
    keys = [
        json.dumps([e["action"], e.get("errnoRet"), e.get("args")], sort_keys=True) for e in f["syscalls"]
    ]
    assert len(keys) == len(set(keys))  # one entry per action/args combination
    plain = [e for e in f["syscalls"] if e["action"] == "SCMP_ACT_ALLOW" and not e.get("args")]
    assert len(plain) == 1
    names = plain[0]["names"]
    assert len(names) == len(set(names))
    for e in f["syscalls"]:
        assert set(e) <= {"names", "action", "errnoRet", "args"}
    assert len(json.dumps(f)) < 12000


def test_unknown_arch_is_invalid():
    with pytest.raises(InvalidArgument):
        seccomp.evaluate(PROFILE, "sparc", DEFAULT_CAPS)


def test_excludes_min_kernel_and_single_name_entries():
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"name": "foo", "action": "SCMP_ACT_ALLOW"},
            {"names": ["bar"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.10"}},
        ],
    }
    old = seccomp.evaluate(profile, "arm", [], (5, 4))
    assert seccomp.allowed(old, "foo") == "allow" and seccomp.allowed(old, "bar") == "allow"
    new = seccomp.evaluate(profile, "arm", [], (5, 10))
    assert seccomp.allowed(new, "bar") == "deny"
    assert "defaultErrnoRet" not in new
