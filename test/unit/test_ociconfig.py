"""The pure OCI config builder: defaults for a typical run and every flag's effect."""

import json
import os

import pytest

from tcr.common.errors import InvalidArgument
from tcr.containers import caps, ociconfig, seccomp
from tcr.containers.ociconfig import BundlePaths, HostInfo, build_config, path_in_root, resolve_user
from tcr.containers.runopts import parse_run_args
from tcr.containers.runrecord import RunOptions

CID = "0123456789abcdef"
HOST = HostInfo(
    arch="amd64",
    cgroup_version="hybrid",
    rlimits={"RLIMIT_NOFILE": 4096},
    kernel=(6, 1, 0),
    cap_last_cap=40,
    hostname="board",
    ncpu=4,
)
IMAGE = {
    "ociVersion": "1.0.0",
    "process": {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["/entry.sh", "serve"],
        "env": ["PATH=/opt/bin:/bin", "IMG=1", "SHARED=image"],
        "cwd": "/app",
        "capabilities": {"bounding": ["CAP_SYS_ADMIN"], "effective": ["CAP_SYS_ADMIN"]},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 99999999, "soft": 99999999}],
    },
    "root": {"path": "rootfs"},
    "mounts": [{"destination": "/host", "type": "bind", "source": "/", "options": ["rbind"]}],
    "linux": {"namespaces": [{"type": "pid"}]},
    "annotations": {
        "org.opencontainers.image.stopSignal": "SIGQUIT",
        "run.oci.keep_original_groups": "1",
        ociconfig.ANN_ENTRYPOINT: '["/entry.sh"]',
        ociconfig.ANN_CMD: '["serve"]',
    },
}


@pytest.fixture
def rootfs(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "www:x:33:33:www-data:/var/www:/bin/false\n"
        "nohome:x:1001:1001::/:/bin/sh\n"
        "# comment\n"
    )
    (root / "etc" / "group").write_text(
        "root:x:0:\nwww:x:33:\nvideo:x:44:www,other\naudio:x:29:www\nstaff:x:50:\n"
    )
    return str(root)


def paths(rootfs="/rootfs", **kw):
    base = dict(
        rootfs=rootfs,
        etc_hosts="/run/tcr/c/hosts",
        etc_hostname="/run/tcr/c/hostname",
        etc_resolv="/run/tcr/c/resolv.conf",
        netns_path="/run/netns/tcr-c",
    )
    base.update(kw)
    return BundlePaths(**base)


def build_opts(opts, image=IMAGE, host=HOST, bp=None):
    return build_config(image, opts, host, bp or paths(), CID)


def build(*flags, image=IMAGE, host=HOST, bp=None):
    opts = parse_run_args(list(flags) or ["busybox"], "/home/u", lambda p: "")
    return build_config(image, opts, host, bp or paths(), CID)


def mount_at(cfg, dst):
    found = [m for m in cfg["mounts"] if m["destination"] == dst]
    assert len(found) == 1, dst
    return found[0]


def test_typical_run_defaults():
    cfg = build("busybox")
    p = cfg["process"]
    assert p["args"] == ["/entry.sh", "serve"]
    assert p["terminal"] is False  # the image's terminal: true is ignored
    assert p["cwd"] == "/app" and p["user"] == {"uid": 0, "gid": 0}
    assert p["noNewPrivileges"] is True and p["oomScoreAdj"] == 0
    assert set(p["capabilities"]["bounding"]) == set(caps.DEFAULT_CAPS)
    assert p["capabilities"]["effective"] == p["capabilities"]["bounding"] == p["capabilities"]["permitted"]
    assert p["capabilities"]["inheritable"] == [] and p["capabilities"]["ambient"] == []
    assert p["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 1024}]
    assert cfg["root"] == {"path": "/rootfs", "readonly": False}
    assert cfg["hostname"] == CID[:12]
    lx = cfg["linux"]
    assert [n["type"] for n in lx["namespaces"]] == ["pid", "ipc", "uts", "mount", "network"]
    assert lx["namespaces"][-1]["path"] == "/run/netns/tcr-c"
    assert lx["cgroupsPath"] == f"/tcr/{CID}"
    assert "/proc/kcore" in lx["maskedPaths"] and "/sys/firmware" in lx["maskedPaths"]
    assert "/proc/keys" in lx["maskedPaths"] and "/proc/timer_list" in lx["maskedPaths"]
    assert set(lx["readonlyPaths"]) == {
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    }
    assert lx["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    assert "memory" not in lx["resources"]
    sc = lx["seccomp"]
    assert sc["defaultAction"] == "SCMP_ACT_ERRNO"
    assert sc["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    for ok in ("socket", "arch_prctl", "chroot"):
        assert seccomp.allowed(sc, ok) != "deny", ok
    for denied in ("bpf", "mount", "umount2", "unshare", "kexec_load"):
        assert seccomp.allowed(sc, denied) == "deny", denied
    # the image's own mounts, namespaces, rlimits and runtime annotations are not taken over
    assert all(m["destination"] != "/host" for m in cfg["mounts"])
    assert cfg["annotations"] == {"org.opencontainers.image.stopSignal": "SIGQUIT"}
    json.dumps(cfg)  # serializable


def test_default_mounts():
    cfg = build()
    dsts = [m["destination"] for m in cfg["mounts"]]
    assert dsts[:7] == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"]
    assert "ro" in mount_at(cfg, "/sys")["options"] and "ro" in mount_at(cfg, "/sys/fs/cgroup")["options"]
    assert "size=65536k" in mount_at(cfg, "/dev/shm")["options"]
    for dst, src in (
        ("/etc/hosts", "/run/tcr/c/hosts"),
        ("/etc/hostname", "/run/tcr/c/hostname"),
        ("/etc/resolv.conf", "/run/tcr/c/resolv.conf"),
    ):
        m = mount_at(cfg, dst)
        assert (
            m["source"] == src
            and m["type"] == "bind"
            and "rbind" in m["options"]
            and "ro" not in m["options"]
        )


def test_env_precedence():
    cfg = build("-e", "SHARED=cli", "-e", "NEW=x", "busybox")
    env = cfg["process"]["env"]
    assert env[0] == "PATH=/opt/bin:/bin"  # the image's PATH wins over the default
    assert f"HOSTNAME={CID[:12]}" in env and "IMG=1" in env
    assert "SHARED=cli" in env and "SHARED=image" not in env and "NEW=x" in env
    assert "HOME=/root" in env and not any(e.startswith("TERM=") for e in env)
    keys = [e.split("=", 1)[0] for e in env]
    assert len(keys) == len(set(keys))


def test_path_default_and_tty_term():
    img = dict(IMAGE, process=dict(IMAGE["process"], env=["X=1"]))
    cfg = build("-t", "-e", "HOME=/h", "busybox", image=img)
    env = cfg["process"]["env"]
    assert env[0] == "PATH=" + ociconfig.DEFAULT_PATH
    assert "TERM=xterm" in env and "HOME=/h" in env and cfg["process"]["terminal"] is True
    cfg = build("-t", "-e", "TERM=vt100", "busybox", image=img)
    assert "TERM=vt100" in cfg["process"]["env"] and "TERM=xterm" not in cfg["process"]["env"]


@pytest.mark.parametrize(
    "flags, expect",
    [
        (["busybox"], ["/entry.sh", "serve"]),
        (["busybox", "other", "arg"], ["/entry.sh", "other", "arg"]),
        (["--entrypoint", "/bin/sh", "busybox"], ["/bin/sh"]),
        (["--entrypoint", "/bin/sh", "busybox", "-c", "echo"], ["/bin/sh", "-c", "echo"]),
        (["--entrypoint", "", "busybox", "ls", "/"], ["ls", "/"]),
    ],
)
def test_entrypoint_command_like_docker(flags, expect):
    assert build(*flags)["process"]["args"] == expect


def test_image_without_entrypoint_split():
    img = {"process": {"args": ["sh", "-c", "x"], "env": [], "cwd": "/"}}
    assert build("busybox", image=img)["process"]["args"] == ["sh", "-c", "x"]
    assert build("busybox", "echo", "hi", image=img)["process"]["args"] == ["echo", "hi"]
    with pytest.raises(InvalidArgument, match="no command"):
        build("--entrypoint", "", "busybox", image=img)
    with pytest.raises(InvalidArgument, match="no command"):
        build("busybox", image={"process": {}})


def test_workdir_and_hostname():
    cfg = build("-w", "/srv", "-h", "myhost", "busybox")
    assert cfg["process"]["cwd"] == "/srv" and cfg["hostname"] == "myhost"
    assert "HOSTNAME=myhost" in cfg["process"]["env"]
    assert build(image={"process": {"args": ["x"]}})["process"]["cwd"] == "/"


def test_read_only():
    cfg = build("--read-only", "busybox")
    assert cfg["root"]["readonly"] is True
    assert (
        "ro" in mount_at(cfg, "/etc/hosts")["options"]
        and "ro" in mount_at(cfg, "/etc/resolv.conf")["options"]
    )


def test_volumes_and_tmpfs_mounts():
    cfg = build(
        "-v",
        "./data/logs:/data/logs",
        "-v",
        "/srv/data:/data:ro",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/run:size=1m,exec,mode=755",
        "busybox",
    )
    user = [m for m in cfg["mounts"] if m["destination"] in ("/data", "/data/logs", "/tmp", "/run")]
    order = [m["destination"] for m in user]
    assert order.index("/data") < order.index("/data/logs")  # parents first
    data = mount_at(cfg, "/data")
    assert data["source"] == "/srv/data" and data["type"] == "bind"
    assert set(data["options"]) == {"rbind", "rprivate", "nosuid", "nodev", "ro"}
    logs = mount_at(cfg, "/data/logs")
    assert logs["source"] == "/home/u/data/logs" and "ro" not in logs["options"]
    tmp = mount_at(cfg, "/tmp")
    assert tmp["type"] == "tmpfs" and {"nosuid", "nodev", "noexec", "mode=1777", f"size={64 << 20}"} <= set(
        tmp["options"]
    )
    run = mount_at(cfg, "/run")
    assert (
        "noexec" not in run["options"] and "mode=755" in run["options"] and "size=1048576" in run["options"]
    )


def test_volume_sources_from_paths():
    opts = parse_run_args(["-v", "/a:/x", "busybox"], "/", lambda p: "")
    cfg = build_opts(opts, bp=paths(volume_sources=("/resolved/a",)))
    assert mount_at(cfg, "/x")["source"] == "/resolved/a"
    with pytest.raises(InvalidArgument):
        build_opts(opts, bp=paths(volume_sources=("/a", "/b")))


def test_network_modes():
    host = build("--network", "host", "busybox", bp=paths(netns_path="host"))
    assert "network" not in [n["type"] for n in host["linux"]["namespaces"]]
    assert host["hostname"] == "board"
    none = build("--network", "none", "busybox", bp=paths(netns_path=None))
    (net,) = [n for n in none["linux"]["namespaces"] if n["type"] == "network"]
    assert "path" not in net  # a new, empty network namespace


def test_cgroup_namespace_only_on_v2():
    v2 = build(host=HostInfo(arch="amd64", cgroup_version=2, kernel=(6, 1)))
    assert "cgroup" in [n["type"] for n in v2["linux"]["namespaces"]]
    v1 = build(host=HostInfo(arch="amd64", cgroup_version=1, kernel=(6, 1)))
    assert "cgroup" not in [n["type"] for n in v1["linux"]["namespaces"]]


def test_resources_from_flags():
    cfg = build("--memory", "128m", "--cpus", "1.5", "--pids-limit", "64", "busybox")
    r = cfg["linux"]["resources"]
    assert r["memory"] == {"limit": 128 << 20, "swap": 128 << 20}
    assert r["cpu"] == {"quota": 150000, "period": 100000}
    assert r["pids"] == {"limit": 64}
    with pytest.raises(InvalidArgument, match="CPUs"):
        build("--cpus", "8", "busybox")  # HOST has 4


def test_cgroup_path_override():
    assert build(bp=paths(cgroup_path="/custom/x"))["linux"]["cgroupsPath"] == "/custom/x"


def test_rlimit_clamped_to_host():
    low = HostInfo(arch="amd64", cgroup_version=1, rlimits={"RLIMIT_NOFILE": 256}, kernel=(6, 1))
    (r,) = build(host=low)["process"]["rlimits"]
    assert r["hard"] == 256 and r["soft"] == 256


def test_cap_add_drop_reach_config_and_seccomp():
    cfg = build("--cap-add", "SYS_ADMIN", "--cap-drop", "SYS_CHROOT", "busybox")
    bnd = cfg["process"]["capabilities"]["bounding"]
    assert "CAP_SYS_ADMIN" in bnd and "CAP_SYS_CHROOT" not in bnd
    sc = cfg["linux"]["seccomp"]
    assert seccomp.allowed(sc, "mount") == "allow" and seccomp.allowed(sc, "chroot") == "deny"
    none = build("--cap-drop", "ALL", "busybox")
    assert none["process"]["capabilities"]["bounding"] == []


def test_host_limits_caps():
    old = HostInfo(arch="arm", cgroup_version=1, kernel=(4, 4), cap_last_cap=35)
    cfg = build("--cap-add", "ALL", "busybox", host=old)
    assert "CAP_BPF" not in cfg["process"]["capabilities"]["bounding"]
    assert cfg["linux"]["seccomp"]["architectures"] == ["SCMP_ARCH_ARM"]
    assert seccomp.allowed(cfg["linux"]["seccomp"], "set_tls") == "allow"


# --- users -------------------------------------------------------------------------------------


def test_user_by_name_with_groups(rootfs):
    cfg = build("-u", "www", "busybox", bp=paths(rootfs))
    p = cfg["process"]
    assert p["user"] == {"uid": 33, "gid": 33, "additionalGids": [44, 29]}
    assert "HOME=/var/www" in p["env"]
    assert p["capabilities"]["effective"] == [] and p["capabilities"]["permitted"] == []
    assert set(p["capabilities"]["bounding"]) == set(caps.DEFAULT_CAPS)


@pytest.mark.parametrize(
    "spec, uid, gid, extra, home",
    [
        ("www", 33, 33, (44, 29), "/var/www"),
        ("33", 33, 33, (44, 29), "/var/www"),
        ("www:staff", 33, 50, (44, 29), "/var/www"),
        ("www:44", 33, 44, (29,), "/var/www"),
        ("1234", 1234, 0, (), "/"),
        ("1234:5678", 1234, 5678, (), "/"),
        ("nohome", 1001, 1001, (), "/"),
        ("root", 0, 0, (), "/root"),
    ],
)
def test_resolve_user(rootfs, spec, uid, gid, extra, home):
    assert resolve_user(spec, rootfs) == ociconfig.ExecUser(uid, gid, extra, home)


def test_resolve_user_errors(rootfs):
    with pytest.raises(InvalidArgument, match="unable to find user bob"):
        resolve_user("bob", rootfs)
    with pytest.raises(InvalidArgument, match="unable to find group nogroup"):
        resolve_user("www:nogroup", rootfs)
    with pytest.raises(InvalidArgument, match="unable to find user"):
        resolve_user("www", None)
    assert resolve_user("7:7", None) == ociconfig.ExecUser(7, 7)


def test_user_db_symlink_stays_inside_rootfs(tmp_path, rootfs):
    outside = tmp_path / "host-passwd"
    outside.write_text("evil:x:0:0::/:/bin/sh\n")
    os.remove(os.path.join(rootfs, "etc", "passwd"))
    os.symlink(str(outside), os.path.join(rootfs, "etc", "passwd"))  # absolute: must resolve inside rootfs
    with pytest.raises(InvalidArgument, match="unable to find user evil"):
        resolve_user("evil", rootfs)
    os.makedirs(os.path.join(rootfs, "real"))
    with open(os.path.join(rootfs, "real", "passwd"), "w") as f:
        f.write("alice:x:500:500::/home/alice:/bin/sh\n")
    os.remove(os.path.join(rootfs, "etc", "passwd"))
    os.symlink("../../../../real/passwd", os.path.join(rootfs, "etc", "passwd"))
    assert resolve_user("alice", rootfs).uid == 500


def test_path_in_root_loops(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    os.symlink("b", str(root / "a"))
    os.symlink("a", str(root / "b"))
    with pytest.raises(InvalidArgument, match="symlinks"):
        path_in_root(str(root), "/a")
    assert path_in_root(str(root), "/x/../y") == os.path.join(str(root), "y")


def test_image_user_kept_without_flag():
    img = dict(IMAGE, process=dict(IMAGE["process"], user={"uid": 1000, "gid": 100, "additionalGids": [5]}))
    p = build(image=img)["process"]
    assert p["user"] == {"uid": 1000, "gid": 100, "additionalGids": [5]}
    assert p["capabilities"]["effective"] == []
    assert not any(e.startswith("HOME=") for e in p["env"])


def test_image_user_db_path(rootfs):
    cfg = build("-u", "www", "busybox", bp=paths("/merged", image_user_db=rootfs))
    assert cfg["process"]["user"]["uid"] == 33 and cfg["root"]["path"] == "/merged"


# --- records and host facts -----------------------------------------------------------------------


def test_hostinfo_and_paths_round_trip():
    assert HostInfo.from_dict(json.loads(json.dumps(HOST.to_dict()))) == HOST
    bp = paths(volume_sources=("/a",), cgroup_path="/x", image_user_db="/db")
    assert BundlePaths.from_dict(json.loads(json.dumps(bp.to_dict()))) == bp


def test_hostinfo_detect_reads_this_host():
    h = HostInfo.detect()
    assert h.arch in seccomp.ARCHES
    assert h.cgroup_version in (1, 2, "hybrid")
    assert h.kernel[0] >= 3 and h.ncpu >= 1
    assert "RLIMIT_NOFILE" in h.rlimits
    # the detected host can build a config
    build_opts(RunOptions(image="busybox", command=("true",)), host=h)
