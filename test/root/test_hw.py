"""Issue 14 end to end on a real tcrd + crun: host devices, --privileged, reserved published ports,
volumes and bind mounts, and the run flags docker users type.

Devices are real ones the tests make: a pty pair (a serial port stand-in), /dev/net/tun, a loop
device over a test file, and a gpio-sim/gpio-mockup chip where the kernel has the module. Traffic
goes only to loopback. Everything made here is removed here (loop devices by name, sockets,
files); the tcrd fixture checks mounts, loop devices, links and nft tables.
"""

import json
import os
import pty
import socket
import subprocess
import time
import tty

import pytest

from test.root.hw_image import build_hw

pytestmark = pytest.mark.root

IMG = "hwbox"


@pytest.fixture
def d(tcrd, tmp_path):
    r = tcrd.cli("image", "load", build_hw(str(tmp_path)))
    assert r.returncode == 0, r.stderr
    yield tcrd
    ids = tcrd.cli("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        tcrd.cli("rm", "-f", "-v", *ids)
    for v in tcrd.cli("volume", "ls", "-q").stdout.split():
        tcrd.cli("volume", "rm", v)


def cli(d, *args, ok=True, **kw):
    r = d.cli(*args, **kw)
    if ok:
        assert r.returncode == 0, (
            f"tcr {' '.join(args)}: rc={r.returncode}\n{r.stdout}\n{r.stderr}\n{d.log()}"
        )
    return r


def sh(d, script, *flags, ok=True, **kw):
    """`tcr run --rm --network none FLAGS hwbox sh -c SCRIPT`."""
    return cli(d, "run", "--rm", "--network", "none", *flags, IMG, "sh", "-c", script, ok=ok, **kw)


@pytest.fixture
def loopdev(tmp_path):
    img = tmp_path / "disk.img"
    img.write_bytes(b"HELLODISK" + b"\0" * (64 * 1024 - 9))
    dev = subprocess.run(
        ["losetup", "-f", "--show", str(img)], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        yield dev, img
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def _devices_list(cid):
    """The v1 device cgroup whitelist of a running container (this machine: devices is on v1)."""
    p = f"/sys/fs/cgroup/devices/tcr/{cid}/devices.list"
    if not os.path.exists(p):
        pytest.skip("the devices controller is not on cgroup v1 here (v2: crun's eBPF program)")
    with open(p) as f:
        return f.read().split("\n")


# ---- 1. devices ---------------------------------------------------------------------------------


def test_pty_serial_port_read_write(d):
    """A pty slave as a serial port: written and read through --device, absent without it."""
    master, slave = pty.openpty()
    try:
        tty.setraw(slave)
        os.write(master, b"from-host\n")
        name = os.ttyname(slave)
        r = sh(d, "echo from-container > /dev/ttyS9 && head -n1 /dev/ttyS9", "--device", f"{name}:/dev/ttyS9")
        assert r.stdout.strip() == "from-host"
        assert os.read(master, 100) == b"from-container\n"
        r = sh(d, "head -c1 /dev/ttyS9", ok=False)
        assert r.returncode != 0 and "ttyS9" in r.stderr
    finally:
        os.close(master)
        os.close(slave)


def test_tun_opens_with_device_and_is_refused_without(d):
    assert sh(d, "exec 3<>/dev/net/tun && echo opened", "--device", "/dev/net/tun").stdout.strip() == "opened"
    # Without --device the node is missing; one made with mknod (CAP_MKNOD is a default) is refused
    # by the device cgroup.
    r = sh(d, "mknod /dev/tun c 10 200 && exec 3<>/dev/tun && echo opened", ok=False)
    assert r.returncode != 0 and "Operation not permitted" in r.stderr and "opened" not in r.stdout


def test_loop_device_read_write_and_exact_permissions(d, loopdev):
    dev, img = loopdev
    r = sh(
        d,
        "head -c 9 /dev/xdisk; echo; printf WRITTEN | dd of=/dev/xdisk conv=notrunc 2>/dev/null && echo ok",
        "--device",
        f"{dev}:/dev/xdisk",
    )
    assert r.stdout.split() == ["HELLODISK", "ok"]
    with open(img, "rb") as f:
        assert f.read(9) == b"WRITTENSK"
    # :r gives read only: the write is refused by the device cgroup
    r = sh(
        d,
        "head -c 7 /dev/xdisk; echo; printf NO | dd of=/dev/xdisk conv=notrunc",
        "--device",
        f"{dev}:/dev/xdisk:r",
        ok=False,
    )
    assert r.stdout.strip() == "WRITTEN" and r.returncode != 0 and "Operation not permitted" in r.stderr
    # without --device: mknod works, opening does not
    major, minor = os.major(os.stat(dev).st_rdev), os.minor(os.stat(dev).st_rdev)
    r = sh(d, f"mknod /dev/xdisk b {major} {minor} && head -c 1 /dev/xdisk", ok=False)
    assert r.returncode != 0 and "Operation not permitted" in r.stderr
    # the cgroup holds exactly what was asked: this device with r, and the hot-plug rule
    cid = cli(
        d,
        "run",
        "-d",
        "--network",
        "none",
        "--device",
        f"{dev}:/dev/xdisk:r",
        "--device-cgroup-rule",
        "c 189:* rwm",
        IMG,
        "sleep",
        "60",
    ).stdout.strip()
    try:
        rules = _devices_list(cid)
        assert f"b {major}:{minor} r" in rules and "c 189:* rwm" in rules
        assert "a *:* rwm" not in rules and not [
            x for x in rules if x.startswith(f"b {major}:{minor} ") and x != f"b {major}:{minor} r"
        ]
    finally:
        cli(d, "rm", "-f", cid)


def test_device_cgroup_rule_allows_a_hot_plugged_node(d, loopdev):
    dev, _img = loopdev
    major, minor = os.major(os.stat(dev).st_rdev), os.minor(os.stat(dev).st_rdev)
    r = sh(
        d,
        f"mknod /dev/late b {major} {minor} && head -c 9 /dev/late",
        "--device-cgroup-rule",
        f"b {major}:* rw",
    )
    assert r.stdout == "HELLODISK"


def test_missing_device_is_a_clear_error(d):
    r = sh(d, "true", "--device", "/dev/tcr-no-such-device", ok=False)
    assert r.returncode == 125 and "/dev/tcr-no-such-device" in r.stderr


def _gpio_module():
    for mod in ("gpio-mockup", "gpio-sim"):
        args = ["modprobe", mod] + (["gpio_mockup_ranges=-1,4"] if mod == "gpio-mockup" else [])
        try:
            if subprocess.run(args, capture_output=True).returncode == 0:
                return mod
        except FileNotFoundError:
            return None
    return None


def test_gpio_chip(d):
    """A GPIO character device from gpio-mockup (or gpio-sim), where the kernel has the module."""
    before = {f for f in os.listdir("/dev") if f.startswith("gpiochip")}
    mod = _gpio_module()
    if mod is None:
        pytest.skip("no gpio-mockup/gpio-sim module on this kernel (modprobe failed or is missing)")
    try:
        chips = sorted({f for f in os.listdir("/dev") if f.startswith("gpiochip")} - before)
        if not chips:
            pytest.skip(f"{mod} loaded but made no chip (gpio-sim needs configfs set-up)")
        chip = "/dev/" + chips[0]
        r = sh(d, "exec 3<>/dev/gpiochip0 && echo opened", "--device", f"{chip}:/dev/gpiochip0")
        assert r.stdout.strip() == "opened"
        st = os.stat(chip)
        r = sh(d, f"mknod /dev/g c {os.major(st.st_rdev)} {os.minor(st.st_rdev)} && exec 3<>/dev/g", ok=False)
        assert "Operation not permitted" in r.stderr
    finally:
        subprocess.run(["modprobe", "-r", mod], capture_output=True)


def test_group_add_by_name_and_number(d):
    r = sh(d, "id -G", "--user", "app", "--group-add", "dialout", "--group-add", "4242")
    assert r.stdout.split() == ["1000", "20", "4242"]
    r = sh(d, "true", "--group-add", "no-such-group", ok=False)
    assert r.returncode == 125 and "no-such-group" in r.stderr


def test_privileged(d, loopdev):
    dev, _img = loopdev
    r = sh(
        d,
        f"grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; grep ' /sys ' /proc/mounts; "
        f"head -c 9 {dev}",
        "--privileged",
    )
    lines = r.stdout.splitlines()
    with open("/proc/self/status") as f:
        host_caps = [ln.split()[1] for ln in f if ln.startswith("CapBnd:")][0]
    assert f"CapEff:\t{host_caps}" in lines and "NoNewPrivs:\t0" in lines and "Seccomp:\t0" in lines
    assert any(" rw," in ln for ln in lines if " /sys " in ln)
    assert r.stdout.endswith("HELLODISK")
    plain = sh(d, "grep -E '^(Seccomp):' /proc/self/status; grep ' /sys ' /proc/mounts")
    assert "Seccomp:\t2" in plain.stdout and " ro," in plain.stdout


# ---- 2. published ports are reserved ------------------------------------------------------------


def _free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bind_refused(ip, port, kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((ip, port))
    except OSError as exc:
        return exc.errno == 98
    finally:
        s.close()
    return False


def test_port_in_use_is_refused(d):
    port = _free_port()
    host = socket.socket()
    host.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    host.bind(("127.0.0.1", port))
    host.listen()
    try:
        for spec in (f"127.0.0.1:{port}:80", f"{port}:80"):
            r = cli(d, "run", "-d", "-p", spec, IMG, "sleep", "30", ok=False)
            assert r.returncode == 125 and "address already in use" in r.stderr, r.stderr
        assert cli(d, "ps", "-aq").stdout.strip() == ""
    finally:
        host.close()


def test_published_ports_are_held_until_the_container_stops(d):
    tport, uport = _free_port(), _free_port(socket.SOCK_DGRAM)
    cli(
        d,
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        f"127.0.0.1:{tport}:80",
        "-p",
        f"{uport}:53/udp",
        IMG,
        "sleep",
        "60",
    )
    assert _bind_refused("127.0.0.1", tport) and _bind_refused("0.0.0.0", tport)
    assert _bind_refused("0.0.0.0", uport, socket.SOCK_DGRAM) and _bind_refused(
        "127.0.0.1", uport, socket.SOCK_DGRAM
    )
    assert cli(d, "port", "web").stdout.splitlines() == [
        f"80/tcp -> 127.0.0.1:{tport}",
        f"53/udp -> 0.0.0.0:{uport}",
    ]
    assert cli(d, "port", "web", "53/udp").stdout.strip() == f"0.0.0.0:{uport}"
    # after a crash of tcrd (containers keep running) the recovery binds them again
    d.kill9()
    d.start()
    assert _bind_refused("127.0.0.1", tport) and _bind_refused("0.0.0.0", uport, socket.SOCK_DGRAM)
    assert cli(d, "port", "web").stdout.count("->") == 2
    cli(d, "rm", "-f", "web")
    assert not _bind_refused("127.0.0.1", tport) and not _bind_refused("0.0.0.0", uport, socket.SOCK_DGRAM)


def test_host_ip_not_on_this_host_is_refused(d):
    r = cli(d, "run", "-d", "-p", f"192.0.2.7:{_free_port()}:80", IMG, "sleep", "30", ok=False)
    assert r.returncode == 125 and "not an address of this host" in r.stderr
    assert cli(d, "ps", "-aq").stdout.strip() == ""


def test_publish_all_exposed_ports(d):
    cli(d, "run", "-d", "--name", "pa", "-P", IMG, "sleep", "60")
    lines = cli(d, "port", "pa").stdout.splitlines()
    got = {ln.split(" -> ")[0]: int(ln.rsplit(":", 1)[1]) for ln in lines}
    assert set(got) == {"80/tcp", "5353/udp"} and all(49152 <= p <= 65535 for p in got.values())
    assert _bind_refused("0.0.0.0", got["80/tcp"])


# ---- 3. volumes and bind mounts -----------------------------------------------------------------


def test_named_volume_seeded_persistent_and_survives_image_update(d, tmp_path):
    cli(d, "volume", "create", "--label", "app=db", "data1")
    r = sh(
        d,
        "cat /seed/hello.txt /seed/sub/deep.txt; stat -c %u /seed; echo kept > /seed/mine",
        "-v",
        "data1:/seed",
    )
    assert r.stdout.split() == ["from", "the", "image", "deep", "1000"]
    assert sh(d, "cat /seed/mine", "-v", "data1:/seed:ro").stdout == "kept\n"
    r = sh(d, "echo x > /seed/other", "-v", "data1:/seed:ro", ok=False)
    assert r.returncode != 0 and "Read-only" in r.stderr
    # a new image with the same tag: the volume keeps its data (seeded once, never re-seeded)
    cli(d, "image", "load", build_hw(str(tmp_path), seed="b", seed_text="new image"))
    assert sh(d, "cat /seed/hello.txt /seed/mine", "-v", "data1:/seed").stdout == "from the image\nkept\n"
    info = json.loads(cli(d, "volume", "inspect", "data1").stdout)[0]
    assert info["Labels"] == {"app": "db"} and info["Mountpoint"].startswith(d.root + "/volumes/")
    assert cli(d, "volume", "ls", "-q", "--filter", "label=app=db").stdout.split() == ["data1"]
    # in use -> refused; free -> removed with its data
    cli(d, "create", "--name", "user", "-v", "data1:/x", IMG, "true")
    r = cli(d, "volume", "rm", "data1", ok=False)
    assert r.returncode != 0 and "in use" in r.stderr
    cli(d, "rm", "user")
    assert os.path.isdir(info["Mountpoint"])
    cli(d, "volume", "rm", "data1")
    assert not os.path.exists(os.path.dirname(info["Mountpoint"]))


def test_volume_created_on_first_use_and_kept_after_rm(d):
    cli(
        d, "run", "--name", "w", "--network", "none", "-v", "auto1:/seed", IMG, "sh", "-c", "echo v > /seed/v"
    )
    cli(d, "rm", "w")
    assert "auto1" in cli(d, "volume", "ls", "-q").stdout.split()
    assert sh(d, "cat /seed/v", "--mount", "type=volume,source=auto1,target=/seed").stdout == "v\n"


def test_anonymous_volumes_removed_by_rm_v_and_rm_flag(d):
    cli(
        d,
        "run",
        "-d",
        "--name",
        "a1",
        "--network",
        "none",
        "-v",
        "/anon",
        "--mount",
        "type=volume,target=/m",
        IMG,
        "sleep",
        "60",
    )
    info = json.loads(cli(d, "inspect", "a1").stdout)[0]
    names = [v["src"] for v in info["options"]["volumes"]]
    assert len(names) == 2 and all(len(n) == 64 for n in names)
    assert [(m["Type"], m["Name"], m["Destination"], m["Anonymous"]) for m in info["Mounts"]] == [
        ("volume", names[0], "/anon", True),
        ("volume", names[1], "/m", True),
    ]
    assert all(m["Source"] == f"{d.root}/volumes/{m['Name']}/_data" for m in info["Mounts"])
    assert set(names) <= set(cli(d, "volume", "ls", "-q").stdout.split())
    cli(d, "rm", "-f", "-v", "a1")
    assert not set(names) & set(cli(d, "volume", "ls", "-q").stdout.split())
    # without -v they stay until prune; --rm takes them along
    cli(d, "run", "--name", "a2", "--network", "none", "-v", "/anon", IMG, "true")
    cli(d, "rm", "a2")
    assert len(cli(d, "volume", "ls", "-q").stdout.split()) == 1
    assert "Deleted Volumes" in cli(d, "volume", "prune").stdout
    sh(d, "true", "-v", "/anon")
    assert cli(d, "volume", "ls", "-q").stdout.strip() == ""


def test_bind_source_created_by_v_refused_by_mount(d, tmp_path):
    missing = tmp_path / "not" / "yet"
    sh(d, "touch /x/made", "-v", f"{missing}:/x")
    assert (missing / "made").exists()
    r = cli(
        d,
        "run",
        "--network",
        "none",
        "--mount",
        f"type=bind,source={tmp_path}/nope,target=/x",
        IMG,
        "true",
        ok=False,
    )
    assert r.returncode == 125 and "does not exist" in r.stderr and not (tmp_path / "nope").exists()
    assert cli(d, "ps", "-aq").stdout == ""  # refused at create, as docker: no container left


def test_command_inside_a_bind_mount_or_volume_runs(d, tmp_path):
    work = tmp_path / "proj"
    work.mkdir()
    (work / "build.sh").write_text("#!/bin/sh\necho built in $(pwd)\n")
    (work / "build.sh").chmod(0o755)
    (work / "data.txt").write_text("x")
    r = cli(d, "run", "--rm", "--network", "none", "-v", f"{work}:/w", "-w", "/w", IMG, "./build.sh")
    assert r.stdout == "built in /w\n"
    r = cli(
        d, "run", "--rm", "--network", "none", "-v", f"{work}:/w", "-w", "/w", IMG, "./data.txt", ok=False
    )
    assert r.returncode == 126
    r = cli(d, "run", "--rm", "--network", "none", "-v", f"{work}:/w", "-w", "/w", IMG, "./nope.sh", ok=False)
    assert r.returncode == 127
    sh(d, "printf '#!/bin/sh\\necho from volume\\n' > /tools/hi && chmod +x /tools/hi", "-v", "tools:/tools")
    assert (
        cli(d, "run", "--rm", "--network", "none", "-v", "tools:/tools", IMG, "/tools/hi").stdout
        == "from volume\n"
    )


# ---- 4. run flags -------------------------------------------------------------------------------


def test_hosts_and_dns_flags(d):
    r = cli(
        d,
        "run",
        "--rm",
        "--add-host",
        "db:10.1.2.3",
        "--dns",
        "10.0.0.53",
        "--dns-search",
        "lan",
        "--dns-option",
        "ndots:2",
        IMG,
        "cat",
        "/etc/hosts",
        "/etc/resolv.conf",
    )
    assert "10.1.2.3\tdb\n" in r.stdout
    assert r.stdout.endswith("nameserver 10.0.0.53\nsearch lan\noptions ndots:2\n")


def test_init_reaps_and_forwards_signals(d):
    r = sh(
        d,
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; (sleep 0.2 &); sleep 0.6; "
        "ps -o stat,comm | grep -c '^Z' || true",
        "--init",
    )
    first, zombies = r.stdout.splitlines()
    assert first.startswith("/dev/init -- sh -c") and zombies == "0"
    # PID 1 sleep ignores SIGTERM without --init; under tini it dies of it (143), no SIGKILL (137)
    cli(d, "run", "-d", "--name", "ini", "--network", "none", "--init", IMG, "sleep", "60")
    t0 = time.monotonic()
    cli(d, "stop", "-t", "20", "ini")
    assert json.loads(cli(d, "inspect", "ini").stdout)[0]["exitCode"] == 143 and time.monotonic() - t0 < 15


def test_ulimit_sysctl_shm_size(d):
    with open("/proc/sys/net/ipv4/tcp_keepalive_time") as f:
        host_value = f.read()
    r = cli(
        d,
        "run",
        "--rm",
        "--ulimit",
        "nofile=100:200",
        "--sysctl",
        "net.ipv4.tcp_keepalive_time=601",
        "--shm-size",
        "8m",
        IMG,
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn; cat /proc/sys/net/ipv4/tcp_keepalive_time; grep ' /dev/shm ' /proc/mounts",
    )
    lines = r.stdout.splitlines()
    assert lines[:3] == ["100", "200", "601"] and "size=8192k" in lines[3]
    with open("/proc/sys/net/ipv4/tcp_keepalive_time") as f:
        assert f.read() == host_value
    r = sh(d, "true", "--sysctl", "kernel.hostname=x", ok=False)
    assert r.returncode == 125 and "not namespaced" in r.stderr


def test_labels_in_inspect_and_filters(d):
    cli(
        d,
        "run",
        "-d",
        "--name",
        "l1",
        "--network",
        "none",
        "-l",
        "tier=edge",
        "--label",
        "x=1",
        IMG,
        "sleep",
        "60",
    )
    cli(d, "run", "-d", "--name", "l2", "--network", "none", "-l", "tier=core", IMG, "sleep", "60")
    assert json.loads(cli(d, "inspect", "l1").stdout)[0]["Config"]["Labels"] == {"tier": "edge", "x": "1"}
    assert cli(d, "ps", "--filter", "label=tier=edge", "--format", "json").stdout.count('"l1"') == 1
    names = [
        c["Names"] for c in json.loads(cli(d, "ps", "--filter", "label=tier", "--format", "json").stdout)
    ]
    assert sorted(names) == ["l1", "l2"]


def test_env_var_without_value_and_env_file_read_by_the_client(d, tmp_path, monkeypatch):
    monkeypatch.setenv("TCR_HW_TOKEN", "s3cret")
    monkeypatch.delenv("TCR_HW_UNSET", raising=False)
    (tmp_path / "vars.env").write_text("FROM_FILE=1\nTCR_HW_TOKEN\nTCR_HW_UNSET\n")
    r = cli(
        d,
        "run",
        "--rm",
        "--network",
        "none",
        "-e",
        "TCR_HW_TOKEN",
        "-e",
        "TCR_HW_UNSET",
        "--env-file",
        "vars.env",
        IMG,
        "env",
        cwd=str(tmp_path),
    )
    env = r.stdout.splitlines()
    assert env.count("TCR_HW_TOKEN=s3cret") == 1 and "FROM_FILE=1" in env
    assert not [e for e in env if e.startswith("TCR_HW_UNSET")]


# ---- tcr-purge knows volumes --------------------------------------------------------------------


def test_purge_lists_volumes_and_keeps_them_on_request(tmp_path):
    purge = os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "target", "init", "tcr-purge"
    )
    root, run_dir = str(tmp_path / "state"), str(tmp_path / "run")

    def make():
        os.makedirs(f"{root}/volumes/data1/_data", exist_ok=True)
        with open(f"{root}/volumes/data1/_data/db", "w") as f:
            f.write("precious")
        with open(f"{root}/volumes/data1.json", "w") as f:
            f.write("{}")
        os.makedirs(f"{root}/containers/c1", exist_ok=True)
        os.makedirs(f"{run_dir}/crun", exist_ok=True)

    def run(*extra):
        return subprocess.run(
            ["/bin/sh", purge, "--root", root, "--run-dir", run_dir, "--yes", *extra],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )

    make()
    r = run("--keep-volumes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "keeping volume data1" in r.stdout
    assert sorted(os.listdir(root)) == ["volumes"] and not os.path.exists(run_dir)
    with open(f"{root}/volumes/data1/_data/db") as f:
        assert f.read() == "precious"
    make()
    r = run()
    assert r.returncode == 0 and "volume data1 will be removed" in r.stdout
    assert not os.path.exists(root)


def test_labels_on_images_and_networks(d):
    img = json.loads(cli(d, "image", "inspect", IMG).stdout)[0]
    assert img["labels"] == {"com.example.vendor": "acme"}
    assert cli(d, "image", "ls", "-q", "--filter", "label=com.example.vendor=acme").stdout.split() == [
        img["id"]
    ]
    assert cli(d, "image", "ls", "-q", "--filter", "label=com.example.vendor=other").stdout == ""
    cli(d, "network", "create", "--label", "site=lab", "hwnet1")
    try:
        assert json.loads(cli(d, "network", "inspect", "hwnet1").stdout)[0]["labels"] == {"site": "lab"}
        assert cli(d, "network", "ls", "-q", "--filter", "label=site").stdout.split() == ["hwnet1"]
        assert cli(d, "network", "ls", "-q", "--filter", "label=site=x").stdout == ""
    finally:
        cli(d, "network", "rm", "hwnet1")
