"""S95tcrd against a real tcrd, and tcr-purge against real kernel objects (loop device, squashfs
and overlay mounts, netns bind mount, bridge, veths, nft tables). Everything lives under a
private state root whose instance tag keeps its names apart from any other tcr on the machine."""

import os
import random
import shutil
import subprocess
import sys
import time
from typing import Dict

import pytest

from tcr.network import netplan
from test.fixtures.project import read

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INIT = os.path.join(ROOT, "target", "init")

pytestmark = pytest.mark.root


def sh(*argv, check=True, **kw):
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=60, **kw)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def links_with_prefix(prefix: str):
    out = sh("ip", "-o", "link", "show").stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]
    return [n for n in names if n.startswith(prefix)]


def nft_tables():
    lines = sh("nft", "list", "tables").stdout.splitlines()
    return [tuple(line.split()[1:3]) for line in lines if line.strip()]


def mounts_under(path: str):
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if (line.split()[4] + "/").startswith(path.rstrip("/") + "/")]


def purge(root: str, run_dir: str, *extra):
    argv = ["/bin/sh", os.path.join(INIT, "tcr-purge"), "--root", root, "--run-dir", run_dir, "--yes", *extra]
    return sh(*argv, check=False)


# ---- S95tcrd with a real daemon ------------------------------------------------------------

@pytest.fixture
def daemon_env(tmp_path):
    root = str(tmp_path / "state")
    run_dir = str(tmp_path / "run")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    # what `make install` generates: a console script whose path names tcrd
    tcrd = bindir / "tcrd"
    tcrd.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {os.path.join(ROOT, 'target')!r})\n"
                    "from tcr.daemon.main import main\nsys.exit(main())\n")
    tcrd.chmod(0o755)
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "TCRD_DEFAULTS": "/dev/null",
        "TCRD_BIN": str(tcrd),
        "TCRD_ARGS": f"--root {root} --run-dir {run_dir} --socket {run_dir}/tcrd.sock --no-compat-socket",
        "PIDFILE": str(tmp_path / "tcrd.pid"),
        "TCRD_LOG": str(tmp_path / "tcrd.log"),
        "TCRD_STOP_TIMEOUT": "60",
    }
    yield env, root, run_dir, tmp_path
    # whatever happened: no daemon, no bridge, no nft table, no mount left behind
    try:
        pid = int(read(env["PIDFILE"]))
        if alive(pid):
            os.kill(pid, 9)
    except (OSError, ValueError):
        pass
    purge(root, run_dir)


def script(env, action):
    return sh("/bin/sh", os.path.join(INIT, "S95tcrd"), action, env=env, check=False)


def test_start_status_restart_stop_with_real_tcrd(daemon_env):
    env, root, run_dir, tmp = daemon_env
    r = script(env, "start")
    log = read(env["TCRD_LOG"]) if os.path.exists(env["TCRD_LOG"]) else ""
    assert r.returncode == 0, r.stdout + r.stderr + log
    assert "OK (pid" in r.stdout
    pid = int(read(env["PIDFILE"]))
    assert alive(pid)
    assert os.path.exists(os.path.join(run_dir, "tcrd.sock"))

    r = script(env, "status")
    assert r.returncode == 0 and f"tcrd is running (pid {pid})" in r.stdout
    r = script(env, "start")
    assert r.returncode == 0 and f"already running (pid {pid})" in r.stdout

    r = script(env, "restart")
    assert r.returncode == 0, r.stdout + r.stderr
    new_pid = int(read(env["PIDFILE"]))
    assert new_pid != pid and alive(new_pid) and not alive(pid)

    r = script(env, "stop")
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr
    assert not os.path.exists(env["PIDFILE"])
    assert not alive(new_pid)
    r = script(env, "status")
    assert r.returncode == 3

    # the daemon's own network objects go with tcr-purge, and only those
    tag = netplan.instance_tag(root)
    r = purge(root, run_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert links_with_prefix(netplan.if_prefix(tag)) == []
    assert ("inet", netplan.nft_table(tag)) not in nft_tables()
    assert not os.path.exists(root) and not os.path.exists(run_dir)


def test_check_action_runs_tcrd_check(daemon_env):
    env, *_ = daemon_env
    r = script(env, "check")
    # prerequisites may or may not be met here; the report is printed either way
    assert r.returncode in (0, 1)
    assert "crun" in r.stdout


# ---- tcr-purge with real kernel objects ------------------------------------------------------

@pytest.fixture
def state(tmp_path):
    for tool in ("mksquashfs", "losetup", "nft", "ip", "unshare"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} not installed")
    root = str(tmp_path / "state")
    run_dir = str(tmp_path / "run")
    made: Dict[str, list] = {"loops": [], "links": [], "tables": []}
    yield root, run_dir, made
    for m in sorted(mounts_under(root) + mounts_under(run_dir), key=len, reverse=True):
        sh("umount", "-l", m, check=False)
    for loop in made["loops"]:
        sh("losetup", "-d", loop, check=False)
    for link in made["links"]:
        sh("ip", "link", "delete", link, check=False)
    for fam, table in made["tables"]:
        sh("nft", "delete", "table", fam, table, check=False)


def test_purge_removes_only_this_instance(state, tmp_path):
    root, run_dir, made = state
    tag = netplan.instance_tag(root)
    p = netplan.if_prefix(tag)
    other_tag = netplan.instance_tag(root + "-other")
    rnd = f"{random.randrange(0x10000):04x}"

    # an image: squashfs on a loop device without autoclear, and a container overlay on it
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello").write_text("hi")
    os.makedirs(f"{root}/images/img")
    os.makedirs(f"{root}/containers/c1/upper")
    os.makedirs(f"{root}/containers/c1/work")
    os.makedirs(f"{root}/containers/c1/rootfs")
    sh("mksquashfs", str(src), f"{root}/images/img.sqfs", "-quiet", "-noappend")
    loop = sh("losetup", "-f", "--show", "-r", f"{root}/images/img.sqfs").stdout.strip()
    made["loops"].append(loop)
    sh("mount", "-t", "squashfs", "-o", "ro", loop, f"{root}/images/img")
    sh("mount", "-t", "overlay", "overlay", "-o",
       f"lowerdir={root}/images/img,upperdir={root}/containers/c1/upper,workdir={root}/containers/c1/work",
       f"{root}/containers/c1/rootfs")
    # a container netns file
    os.makedirs(f"{run_dir}/netns")
    open(f"{run_dir}/netns/c1", "w").close()
    sh("unshare", "--net", "mount", "--bind", "/proc/self/ns/net", f"{run_dir}/netns/c1")
    # this instance's bridge and veth, plus objects that are not its own
    ours = [p + "0", p + "v" + rnd]
    theirs = ["pgk" + rnd + "a", netplan.if_prefix(other_tag) + "v" + rnd]
    made["links"] += ours + theirs
    sh("ip", "link", "add", ours[0], "type", "bridge")
    sh("ip", "link", "add", ours[1], "type", "veth", "peer", "name", p + "w" + rnd)
    sh("ip", "link", "add", theirs[0], "type", "veth", "peer", "name", "pgk" + rnd + "b")
    sh("ip", "link", "add", theirs[1], "type", "bridge")
    made["tables"] += [("inet", netplan.nft_table(tag)), ("inet", netplan.nft_table(other_tag)),
                       ("inet", "pgk" + rnd)]
    for fam, table in made["tables"]:
        sh("nft", "add", "table", fam, table)
    assert len(mounts_under(root)) == 2 and len(mounts_under(run_dir)) == 1

    dry = purge(root, run_dir, "--dry-run")
    assert dry.returncode == 0 and f"+ ip link delete {ours[0]}" in dry.stdout
    assert len(mounts_under(root)) == 2 and links_with_prefix(p + "0") == [ours[0]]

    r = purge(root, run_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert mounts_under(root) == [] and mounts_under(run_dir) == []
    backing = f"/sys/block/{os.path.basename(loop)}/loop/backing_file"
    assert not os.path.exists(backing) or root not in read(backing)
    for link in ours + [p + "w" + rnd]:
        assert links_with_prefix(link) == [], f"{link} left behind"
    for link in theirs:
        assert links_with_prefix(link) == [link], f"{link} is not ours but was removed"
    tables = nft_tables()
    assert ("inet", netplan.nft_table(tag)) not in tables
    assert ("inet", netplan.nft_table(other_tag)) in tables and ("inet", "pgk" + rnd) in tables
    assert not os.path.exists(root) and not os.path.exists(run_dir)


def test_purge_stops_the_daemon_named_by_pidfile(state, tmp_path):
    root, run_dir, _ = state
    os.makedirs(run_dir)
    # a stand-in whose command line names tcrd; tcr-purge sends it SIGTERM and waits for it
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "tcrd"])
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        with open(f"{run_dir}/tcrd.pid", "w") as f:
            f.write(f"{proc.pid}\n")
        r = purge(root, run_dir)
        assert r.returncode == 0, r.stderr
        assert f"+ kill -TERM {proc.pid}" in r.stdout
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.returncode == -15
        # a pid file naming something else (a recycled pid) is left alone
        os.makedirs(run_dir, exist_ok=True)
        with open(f"{run_dir}/tcrd.pid", "w") as f:
            f.write(f"{bystander.pid}\n")
        r = purge(root, run_dir)
        assert r.returncode == 0 and "kill" not in r.stdout
        assert bystander.poll() is None
    finally:
        for p in (proc, bystander):
            if p.poll() is None:
                p.kill()
            p.wait()
