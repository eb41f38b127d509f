"""Issue 14 in the pure layers: device, privileged, init, ulimit, sysctl, shm, group-add flags ->
RunOptions -> OCI config; volumes and --mount parsing; /etc files; the mount-aware command check;
the client's -e VAR / --env-file expansion."""

import os

import pytest

from tcr.cli import runargs
from tcr.common.errors import InvalidArgument
from tcr.containers import etcfiles, resources
from tcr.containers.bundle import check_command
from tcr.containers.ociconfig import BundlePaths, HostDevice, HostInfo, build_config
from tcr.containers.runopts import parse_run_args
from tcr.containers.runrecord import Device, RunOptions, Tmpfs, Ulimit, Volume

CID = "0123456789abcdef"
HOST = HostInfo(
    arch="amd64",
    cgroup_version="hybrid",
    rlimits={"RLIMIT_NOFILE": 4096, "RLIMIT_CORE": -1},
    kernel=(6, 1, 0),
    cap_last_cap=40,
    hostname="board",
    ncpu=4,
)
IMAGE = {"process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "env": [], "cwd": "/"}}
TTY = HostDevice("/dev/ttyUSB0", "c", 188, 0, "rw", 0o660, 0, 20, "/dev/ttyUSB0", False)
PTS = HostDevice("/dev/ttyS9", "c", 136, 4, "rwm", 0o620, 0, 5, "/dev/pts/4", True)


def parse(*args, pwd="/home/u"):
    return parse_run_args(list(args), pwd, lambda p: (_ for _ in ()).throw(FileNotFoundError(2, "x", p)))


def cfg(opts, rootfs="/r", **bp):
    return build_config(IMAGE, opts, HOST, BundlePaths(rootfs=rootfs, **bp), CID)


# ---- flags -> RunOptions ---------------------------------------------------------------------------


def test_device_forms():
    o = parse(
        "--device",
        "/dev/ttyUSB0",
        "--device",
        "/dev/ttyACM0:/dev/modem:rw",
        "--device",
        "/dev/i2c-1:r",
        "busybox",
    )
    assert o.devices == (
        Device("/dev/ttyUSB0", "/dev/ttyUSB0", "rwm"),
        Device("/dev/ttyACM0", "/dev/modem", "rw"),
        Device("/dev/i2c-1", "/dev/i2c-1", "r"),
    )


@pytest.mark.parametrize("spec", ["dev/ttyS0", "/dev/a:/b:rx", "/dev/a:/b:rr", "/a:/b:/c:rw", "/a:rel"])
def test_bad_devices(spec):
    with pytest.raises(InvalidArgument):
        parse("--device", spec, "busybox")


def test_cgroup_rules_groups_privileged():
    o = parse(
        "--device-cgroup-rule",
        "c 189:*  rwm",
        "--group-add",
        "dialout",
        "--group-add",
        "44",
        "--privileged",
        "busybox",
    )
    assert o.device_cgroup_rules == ("c 189:* rwm",) and o.group_add == ("dialout", "44") and o.privileged
    for bad in ("c 189 rwm", "x 1:2 r", "c 1:2 rwx", "c a:2 r", "c 4096:1 r", "b 1:1048576 r"):
        with pytest.raises(InvalidArgument):
            parse("--device-cgroup-rule", bad, "busybox")


def test_run_flags_round_trip():
    o = parse(
        "--add-host",
        "db:10.0.0.5",
        "--add-host",
        "v6=fd00::1",
        "--dns",
        "10.0.0.53",
        "--dns-search",
        "lan",
        "--dns-option",
        "ndots:2",
        "--init",
        "--ulimit",
        "nofile=100:200",
        "--ulimit",
        "core=0",
        "-l",
        "a=1",
        "--label",
        "b",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--shm-size",
        "128m",
        "-P",
        "-v",
        "data:/data:ro",
        "-v",
        "/anon",
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=1m",
        "--mount",
        "type=bind,source=./src,target=/w,readonly",
        "busybox",
    )
    assert o.add_hosts == ("db:10.0.0.5", "v6:fd00::1") and o.dns == ("10.0.0.53",)
    assert o.dns_search == ("lan",) and o.dns_options == ("ndots:2",) and o.init and o.publish_all
    assert o.ulimits == (Ulimit("nofile", 100, 200), Ulimit("core", 0, 0))
    assert o.labels == ("a=1", "b=") and o.label_dict() == {"a": "1", "b": ""}
    assert o.sysctls == ("net.ipv4.ip_forward=1",) and o.shm_size == 128 << 20
    assert o.volumes == (
        Volume("data", "/data", True, "volume"),
        Volume("", "/anon", False, "volume", anonymous=True),
        Volume("/home/u/src", "/w", True, "bind", create=False),
    )
    assert o.tmpfs == (Tmpfs("/t", 1 << 20),)
    assert RunOptions.from_dict(o.to_dict()) == o


@pytest.mark.parametrize(
    "args",
    [
        ["--sysctl", "kernel.hostname=x"],
        ["--sysctl", "vm.swappiness=1"],
        ["--sysctl", "net.ipv4.ip_forward"],
        ["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"],
        ["--ulimit", "nofile=2:1"],
        ["--ulimit", "bogus=1"],
        ["--ulimit", "nofile=99999999999999999999"],
        ["--add-host", "db:notanip"],
        ["--dns", "x.y"],
        ["--mount", "type=bind,target=/x"],
        ["--mount", "type=nfs,target=/x"],
        ["--mount", "type=volume,source=v,target=/x,bogus=1"],
        ["--group-add", "a b"],
        ["--network", "none", "-P"],
        ["--device", "/dev/a:/x", "--device", "/dev/b:/x"],
    ],
)
def test_bad_run_flags(args):
    with pytest.raises(InvalidArgument):
        parse(*args, "busybox")


# ---- RunOptions -> OCI config ---------------------------------------------------------------------


def test_device_nodes_and_exact_cgroup_rules():
    o = parse("--device-cgroup-rule", "c 189:* rwm", "busybox")
    c = cfg(o, devices=(TTY, PTS))
    assert c["linux"]["devices"] == [
        {
            "path": "/dev/ttyUSB0",
            "type": "c",
            "major": 188,
            "minor": 0,
            "fileMode": 0o660,
            "uid": 0,
            "gid": 20,
        }
    ]
    rules = c["linux"]["resources"]["devices"]
    assert rules[: len(resources.DEVICE_RULES)] == resources.DEVICE_RULES  # deny all first, then defaults
    assert rules[len(resources.DEVICE_RULES) :] == [
        {"allow": True, "type": "c", "major": 188, "minor": 0, "access": "rw"},
        {"allow": True, "type": "c", "major": 136, "minor": 4, "access": "rwm"},
        {"allow": True, "type": "c", "major": 189, "access": "rwm"},
    ]
    # a pty is bind-mounted (a mknod copy of a devpts node cannot be opened)
    assert {
        "destination": "/dev/ttyS9",
        "type": "bind",
        "source": "/dev/pts/4",
        "options": ["rbind", "rprivate", "nosuid", "noexec"],
    } in c["mounts"]
    # without --device: no node and no rule beyond the defaults
    plain = cfg(parse("busybox"))
    assert (
        "devices" not in plain["linux"] and plain["linux"]["resources"]["devices"] == resources.DEVICE_RULES
    )


def test_privileged_gives_everything():
    c = cfg(parse("--privileged", "busybox"), devices=(TTY,))
    assert c["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert (
        "seccomp" not in c["linux"] and "maskedPaths" not in c["linux"] and "readonlyPaths" not in c["linux"]
    )
    assert "CAP_SYS_ADMIN" in c["process"]["capabilities"]["bounding"]
    assert c["process"]["noNewPrivileges"] is False
    sysfs = [m for m in c["mounts"] if m["destination"] == "/sys"][0]
    assert "ro" not in sysfs["options"]
    normal = cfg(parse("busybox"))
    assert "ro" in [m for m in normal["mounts"] if m["destination"] == "/sys"][0]["options"]
    assert "seccomp" in normal["linux"] and normal["process"]["noNewPrivileges"] is True


def test_group_add_from_the_image(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "group").write_text("root:x:0:\ndialout:x:20:\ngpio:x:997:\n")
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    c = cfg(
        parse("--group-add", "dialout", "--group-add", "997", "--group-add", "1234", "busybox"), str(tmp_path)
    )
    assert c["process"]["user"]["additionalGids"] == [20, 997, 1234]
    with pytest.raises(InvalidArgument, match="unable to find group nope"):
        cfg(parse("--group-add", "nope", "busybox"), str(tmp_path))


def test_init_ulimit_sysctl_shm():
    o = parse(
        "--init",
        "--ulimit",
        "core=-1",
        "--ulimit",
        "nofile=64:128",
        "--sysctl",
        "net.ipv4.ping_group_range=0 0",
        "--shm-size",
        "1m",
        "busybox",
        "top",
    )
    c = cfg(o, init_binary="/usr/bin/tini-static")
    assert c["process"]["args"] == ["/dev/init", "--", "top"]
    assert {
        "destination": "/dev/init",
        "type": "bind",
        "source": "/usr/bin/tini-static",
        "options": ["rbind", "rprivate", "ro", "nosuid"],
    } in c["mounts"]
    rl = {r["type"]: (r["soft"], r["hard"]) for r in c["process"]["rlimits"]}
    assert rl["RLIMIT_NOFILE"] == (64, 128) and rl["RLIMIT_CORE"] == (resources.RLIM_INFINITY,) * 2
    assert c["linux"]["sysctl"] == {"net.ipv4.ping_group_range": "0 0"}
    shm = [m for m in c["mounts"] if m["destination"] == "/dev/shm"][0]
    assert f"size={1 << 20}" in shm["options"]
    with pytest.raises(InvalidArgument, match="--init needs tini"):
        cfg(o)
    with pytest.raises(InvalidArgument, match="above this host"):
        cfg(parse("--ulimit", "nofile=10:5000", "busybox"))


def test_volume_sources_are_used():
    o = parse("-v", "data:/data", "-v", "/h:/x", "busybox")
    c = cfg(o, volume_sources=("/state/volumes/data/_data", "/h"))
    binds = {m["destination"]: m["source"] for m in c["mounts"] if m["type"] == "bind"}
    assert binds["/data"] == "/state/volumes/data/_data" and binds["/x"] == "/h"


# ---- /etc files -----------------------------------------------------------------------------------


def test_add_host_and_dns_files():
    hosts = etcfiles.hosts_text("h", "n", "10.88.0.2", etcfiles.extra_hosts(["db:10.0.0.5"]))
    assert "10.0.0.5\tdb\n" in hosts
    r = etcfiles.with_dns("nameserver 10.88.0.1\noptions ndots:0\n", ["1.1.1.1"], ["lan"], ["ndots:2"])
    assert r == "nameserver 1.1.1.1\nsearch lan\noptions ndots:2\n"
    assert (
        etcfiles.with_dns("nameserver 10.88.0.1\n", (), ["a.b"], ()) == "nameserver 10.88.0.1\nsearch a.b\n"
    )
    assert etcfiles.with_dns("x\n") == "x\n"


# ---- the command check sees bind mounts and volumes -----------------------------------------------


def test_command_in_a_bind_mount(tmp_path):
    rootfs, work = tmp_path / "rootfs", tmp_path / "work"
    (rootfs / "w").mkdir(parents=True)
    (work / "bin").mkdir(parents=True)
    script = work / "build.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    (work / "notexec").write_text("x")
    os.symlink("bin/../build.sh", work / "link.sh")
    binds = [("/w", str(work))]
    assert check_command(str(rootfs), ["./build.sh"], [], "/w") == 127  # the old, image-only check
    assert check_command(str(rootfs), ["./build.sh"], [], "/w", binds) is None
    assert check_command(str(rootfs), ["/w/link.sh"], [], "/", binds) is None
    assert check_command(str(rootfs), ["build.sh"], ["PATH=/w"], "/", binds) is None
    assert check_command(str(rootfs), ["./notexec"], [], "/w", binds) == 126
    assert check_command(str(rootfs), ["./missing"], [], "/w", binds) == 127


# ---- the client expands -e VAR and --env-file -----------------------------------------------------


def test_client_expands_env(monkeypatch):
    env = {"TOKEN": "s3cret", "EMPTY": ""}
    files = {"/home/u/vars.env": "# c\nA=1\nTOKEN\nUNSET\n"}
    got = runargs.expand(
        [
            "-d",
            "-e",
            "TOKEN",
            "-eEMPTY",
            "--env=UNSET",
            "-de",
            "TOKEN",
            "--env-file",
            "vars.env",
            "-p8080:80",
            "--name",
            "-e",
            "busybox",
            "env",
            "-e",
            "TOKEN",
        ],
        env,
        "/home/u",
        files.__getitem__,
    )
    assert got == [
        "-d",
        "--env=TOKEN=s3cret",
        "--env=EMPTY=",
        "-d",
        "--env=TOKEN=s3cret",
        "--env=A=1",
        "--env=TOKEN=s3cret",
        "-p",
        "8080:80",
        "--name",
        "-e",
        "busybox",
        "env",
        "-e",
        "TOKEN",
    ]
    monkeypatch.setenv("TCR_T_VAR", "v")
    monkeypatch.delenv("TCR_T_UNSET", raising=False)
    assert runargs.expand_command("container", ["run", "-e", "TCR_T_VAR", "-e", "TCR_T_UNSET", "x"]) == [
        "run",
        "--env=TCR_T_VAR=v",
        "x",
    ]
    assert runargs.expand(["-e", "TOKEN", "c", "sh"], env, "/", exec_flags=True) == [
        "--env=TOKEN=s3cret",
        "c",
        "sh",
    ]


def test_client_reads_label_files():
    files = {"/p/labels": "# c\na=1\n\nb=two words\n"}
    got = runargs.expand(["--label-file=labels", "-l", "c=3", "img"], {}, "/p", files.__getitem__)
    assert got == ["--label=a=1", "--label=b=two words", "-l", "c=3", "img"]
    assert parse(*got).labels == ("a=1", "b=two words", "c=3")


def test_client_value_flags_match_the_daemon_parser():
    from tcr.containers.runopts import _parser

    p = _parser("run")
    takes = {s for a in p._actions for s in a.option_strings if a.nargs != 0}
    assert {s[1:] for s in takes if not s.startswith("--")} == set(runargs.RUN_VALUE_SHORT)
    assert {s[2:] for s in takes if s.startswith("--")} == set(runargs.RUN_VALUE_LONG)


def test_run_expansion_keeps_the_client_light(tmp_path):
    """`tcr run -e VAR` goes through runargs: still no argparse/typing/json/re in the client."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (
        "import sys\n"
        "from tcr.cli import main\n"
        "main.main(['--socket', '/nonexistent/x.sock', 'run', '-e', 'HOME', '-d', 'img'])\n"
        "heavy = {'argparse', 'logging', 'dataclasses', 'typing', 'json', 're', 'subprocess'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.path.join(root, "target"))
    r = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, timeout=30
    )
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_inspect_mounts_view():
    from tcr.commands.views import _mounts

    o = parse("-v", "data:/d:ro", "-v", "/anon", "-v", "/h:/x", "--tmpfs", "/t", "busybox").to_dict()
    o["volumes"][1]["src"] = "f" * 64  # named by the daemon at create
    got = _mounts(o, "/var/lib/tcr/volumes")
    assert got == [
        {
            "Type": "volume",
            "Name": "data",
            "Source": "/var/lib/tcr/volumes/data/_data",
            "Destination": "/d",
            "Driver": "local",
            "RW": False,
            "Anonymous": False,
        },
        {
            "Type": "volume",
            "Name": "f" * 64,
            "Source": f"/var/lib/tcr/volumes/{'f' * 64}/_data",
            "Destination": "/anon",
            "Driver": "local",
            "RW": True,
            "Anonymous": True,
        },
        {"Type": "bind", "Source": "/h", "Destination": "/x", "RW": True},
        {"Type": "tmpfs", "Source": "", "Destination": "/t", "RW": True},
    ]
