"""tcr.check parsers on canned /proc content, and the hybrid-cgroup quirk."""

from tcr import check
from tcr.kernel import mountinfo

V1 = "35 31 0:35 / /sys/fs/cgroup/{c} rw,relatime - cgroup cgroup rw,{c}\n"
V2 = "41 31 0:38 / {p} rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n"


def test_parse_filesystems():
    text = "nodev\tsysfs\nnodev\ttmpfs\n\tsquashfs\nnodev\toverlay\n\text4\n"
    assert {"squashfs", "overlay", "ext4", "tmpfs"} <= check.parse_filesystems(text)


def test_parse_kernel_config():
    cfg = check.parse_kernel_config("# c\nCONFIG_SQUASHFS=y\nCONFIG_SQUASHFS_ZSTD=y\n"
                                    "# CONFIG_VETH is not set\nCONFIG_BRIDGE=m\nCONFIG_X=\"s\"\n")
    assert cfg == {"CONFIG_SQUASHFS": "y", "CONFIG_SQUASHFS_ZSTD": "y", "CONFIG_BRIDGE": "m", "CONFIG_X": "s"}


def test_parse_modules_list():
    mods = check.parse_modules_list("kernel/fs/squashfs/squashfs.ko.xz: kernel/lib/zstd.ko\n"
                                    "kernel/net/bridge/bridge.ko:\nnf_tables 300000 0 - Live 0x0\n")
    assert {"squashfs", "bridge", "nf_tables"} <= mods


def test_parse_crun_version():
    assert check.parse_crun_version("crun version 1.8.1\ncommit: abc\n+SECCOMP") == (1, 8, 1)
    assert check.parse_crun_version("garbage") is None


def test_cgroup_v2():
    lay = check.cgroup_layout(mountinfo.parse(V2.format(p="/sys/fs/cgroup")))
    assert lay.mode == "v2" and lay.unified_mount == "/sys/fs/cgroup"
    c = check.cgroup_check(lay, ["cpu", "memory", "pids"])
    assert c.ok and "cpu memory pids" in c.detail


def test_cgroup_v1():
    lay = check.cgroup_layout(mountinfo.parse(V1.format(c="memory") + V1.format(c="cpu,cpuacct")))
    assert lay.mode == "v1" and lay.v1_controllers == ("cpu", "cpuacct", "memory")
    assert check.cgroup_check(lay, []).ok


def test_cgroup_hybrid_quirk_is_reported_with_the_fix():
    text = V1.format(c="memory") + V2.format(p="/sys/fs/cgroup/unified")
    lay = check.cgroup_layout(mountinfo.parse(text))
    assert lay.mode == "hybrid"
    bad = check.cgroup_check(lay, ["hugetlb"])
    assert not bad.ok and "hugetlb" in bad.detail and "crun" in bad.detail
    assert bad.fix == check.HUGETLB_FIX
    assert check.cgroup_check(lay, []).ok  # hybrid without v2 controllers is fine for crun


def test_no_cgroups():
    c = check.cgroup_check(check.cgroup_layout([]), [])
    assert not c.ok and c.fix


def test_render_lists_fixes_for_failures():
    out = check.render([check.Check("a", True, "fine"), check.Check("b", False, "broken", "do X")])
    assert "fix: do X" in out and "1 problem(s): b" in out


def test_run_checks_returns_every_check():
    names = [c.name for c in check.run_checks()]
    assert names == ["root", "squashfs", "overlay", "loop", "netns", "nftables", "veth", "bridge", "cgroups",
                     "crun"]


# `crun --version` of Buildroot's crun without libcap/libseccomp, and of Debian 12's crun
CRUN_BUILDROOT_BARE = "crun version 1.24\ncommit: 54693209039e5e04cbe3c8b1cd5fe2301219f0a1\n" \
                      "rundir: /run/crun\nspec: 1.0.0\n+YAJL\n"
CRUN_DEBIAN = "crun version 1.8.1\ncommit: f8a096be060b22ccd3d5f3ebe44108517fbf6c30\nrundir: /run/crun\n" \
              "spec: 1.0.0\n+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +YAJL\n"


def test_parse_crun_features():
    assert check.parse_crun_features(CRUN_DEBIAN) >= {"CAP", "SECCOMP", "YAJL"}
    assert check.parse_crun_features(CRUN_BUILDROOT_BARE) == {"YAJL"}
    assert check.parse_crun_features("") == set()


def test_crun_without_caps_and_seccomp_fails_the_check_with_the_fix():
    c = check.crun_check("/usr/bin/crun", CRUN_BUILDROOT_BARE)
    assert not c.ok and c.name == "crun"
    assert "+CAP +SECCOMP" in c.detail and "every capability" in c.detail
    assert "BR2_PACKAGE_LIBCAP" in c.fix and "BR2_PACKAGE_LIBSECCOMP" in c.fix
    only_caps = check.crun_check("/usr/bin/crun", CRUN_BUILDROOT_BARE.replace("+YAJL", "+CAP +YAJL"))
    assert not only_caps.ok and "+SECCOMP" in only_caps.detail and "+CAP " not in only_caps.detail


def test_crun_with_caps_and_seccomp_passes():
    c = check.crun_check("/usr/bin/crun", CRUN_DEBIAN)
    assert c.ok and "crun 1.8.1" in c.detail
    assert not check.crun_check("/x/crun", "crun version 0.9\n+CAP +SECCOMP").ok
    assert not check.crun_check("/x/crun", "garbage").ok
