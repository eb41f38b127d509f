"""Crash-point fault injection: tcrd is SIGKILLed inside each multi-step operation, restarted, and
must be consistent (the operation fully happened or fully rolled back) with nothing leaked.

Each named point (tcr.common.faults.POINTS) is armed with TCR_TEST_FAULTS=1 and
TCR_FAULT_POINTS=<point> in the daemon's environment. The test runs the operation (tcrd dies at
the point, the client gets a connection error), restarts tcrd WITHOUT the fault, and checks:
- the state: the object exists and works, or does not exist at all (never half);
- zero leaks (kernel_leaks): loop devices, mounts, netns files, veths/bridges with the daemon's
  prefix, the nft table, IP leases, crun containers, staging directories and temp files.
"""

import json
import os
import subprocess
from typing import Iterable, List, Optional

import pytest

from test.fixtures.daemon import loops_under, mounts_under

# ---- leak inspection (also used by test_power_loss.py and test_security.py) -----------------


def _tag(tcrd) -> str:
    from tcr.network import netplan

    return netplan.instance_tag(tcrd.root)


def _links() -> List[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@", 1)[0])
    return names


def _nft_tables() -> List[str]:
    r = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    return [ln.split()[-1] for ln in r.stdout.splitlines() if ln.startswith("table ")]


def _network_records(tcrd) -> dict:
    d = os.path.join(tcrd.root, "networks")
    out = {}
    for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if n.endswith(".json") and not n.startswith("."):
            try:
                with open(os.path.join(d, n)) as f:
                    out[n[:-5]] = json.load(f)["data"]
            except (ValueError, KeyError, OSError):
                pass
    return out


def crun_ids(tcrd) -> List[str]:
    croot = os.path.join(tcrd.run_dir, "crun")
    if not os.path.isdir(croot):
        return []
    r = subprocess.run(["crun", "--root", croot, "list", "-q"], capture_output=True, text=True)
    return [x for x in r.stdout.split() if x]


def temp_files(root: str) -> List[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        # Never descend into mounted images or container root filesystems.
        dirnames[:] = [d for d in dirnames if not os.path.ismount(os.path.join(dirpath, d))
                       and d not in ("mnt", "rootfs", "upper", "work", "merged")]
        for n in filenames + dirnames:
            if (n.startswith(".") and ".tmp" in n) or n.startswith(".load-"):
                found.append(os.path.join(dirpath, n))
    return found


def kernel_leaks(tcrd, networks: Iterable[str] = (), containers: Iterable[str] = (),
                 images: Optional[Iterable[str]] = None) -> List[str]:
    """Everything of this daemon's that the kernel or the state root holds beyond what is expected.

    networks: names that should exist; containers: ids that should be RUNNING (own netns, veth,
    crun state, rootfs mount); images: ids that should be mounted (None: don't check image mounts).
    """
    from tcr.network import netplan

    tag = _tag(tcrd)
    prefix = netplan.if_prefix(tag)
    networks, containers = set(networks), set(containers)
    leaks = []
    want_links = {netplan.bridge_name(n, tag) for n in networks}
    want_links |= {netplan.veth_name(c, tag) for c in containers}
    for name in _links():
        if name.startswith(prefix) and name not in want_links:
            leaks.append(f"link {name}")
    for name in want_links:
        if name.startswith(prefix + "-") and name not in _links():
            leaks.append(f"MISSING bridge {name}")
    table = netplan.nft_table(tag)
    has_table = table in _nft_tables()
    if has_table and not networks:
        leaks.append(f"nft table {table} without networks")
    if networks and not has_table:
        leaks.append(f"MISSING nft table {table}")
    recs = _network_records(tcrd)
    for n, d in recs.items():
        for le in d.get("leases", []):
            if le.get("cid") not in containers:
                leaks.append(f"lease {le.get('ip')} of {le.get('cid')} on {n}")
    for n in networks - set(recs):
        leaks.append(f"MISSING network record {n}")
    nsdir = os.path.join(tcrd.run_dir, "netns")
    for e in sorted(os.listdir(nsdir)) if os.path.isdir(nsdir) else []:
        if e not in containers:
            leaks.append(f"netns {e}")
    for cid in crun_ids(tcrd):
        if cid not in containers:
            leaks.append(f"crun container {cid}")
    img_mnts = None if images is None else {os.path.join(tcrd.root, "images", i, "mnt") for i in images}
    for m in mounts_under(tcrd.base):
        if m.startswith(os.path.join(tcrd.root, "images") + "/"):
            if img_mnts is not None and m not in img_mnts:
                leaks.append(f"image mount {m}")
        elif not any(f"/{c}/" in m + "/" for c in containers):
            leaks.append(f"mount {m}")
    if img_mnts is not None:
        live = set(mounts_under(tcrd.base))
        leaks += [f"MISSING image mount {m}" for m in img_mnts - live]
    images_dir = os.path.join(tcrd.root, "images")
    mounted_loops = len([m for m in mounts_under(tcrd.base) if m.startswith(images_dir)])
    loops = loops_under(tcrd.base)
    if len(loops) > mounted_loops:
        leaks.append(f"loop devices {loops} for {mounted_loops} image mounts")
    leaks += [f"temp file {t}" for t in temp_files(tcrd.root)]
    return leaks


def force_clean_network(tcrd) -> None:
    """Best-effort removal of this daemon's links, netns files and nft table (test teardown)."""
    from tcr.network import netplan

    tag = _tag(tcrd)
    prefix = netplan.if_prefix(tag)
    for name in _links():
        if name.startswith(prefix):
            subprocess.run(["ip", "link", "del", name], capture_output=True)
    nsdir = os.path.join(tcrd.run_dir, "netns")
    if os.path.isdir(nsdir):
        for e in os.listdir(nsdir):
            p = os.path.join(nsdir, e)
            subprocess.run(["umount", "-l", p], capture_output=True)
            try:
                os.unlink(p)
            except OSError:
                pass
    table = netplan.nft_table(tag)
    if table in _nft_tables():
        subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True)


# ---- driving a crash ---------------------------------------------------------------------------


def start_armed(tcrd, point: str) -> None:
    """(Re)start tcrd with the fault point armed (the env is set only for the daemon's start).

    The running daemon is SIGKILLed, not stopped: SIGTERM would stop the containers the test set
    up, while after a SIGKILL they keep running and the armed daemon re-adopts them.
    """
    tcrd.kill9()
    saved = {k: os.environ.get(k) for k in ("TCR_TEST_FAULTS", "TCR_FAULT_POINTS")}
    os.environ["TCR_TEST_FAULTS"] = "1"
    os.environ["TCR_FAULT_POINTS"] = point
    try:
        tcrd.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def crash_at(tcrd, point: str, *cli_args: str) -> subprocess.CompletedProcess:
    """Run the operation on an armed daemon; assert that it died by SIGKILL at the point; restart."""
    start_armed(tcrd, point)
    r = tcrd.cli(*cli_args)
    assert tcrd.proc is not None
    try:
        rc = tcrd.proc.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{point}: tcrd did not die during {cli_args} (point never reached?)\n"
                             f"cli: {r.returncode} {r.stderr}\n{tcrd.log()}")
    assert rc == -9, f"{point}: tcrd exited with {rc}, expected SIGKILL\n{tcrd.log()}"
    assert r.returncode != 0, f"{point}: the client reported success for an operation that died"
    tcrd.start()  # recovery, without the fault
    return r


def image_ids(tcrd) -> List[str]:
    r = tcrd.cli("image", "ls", "-q")
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def assert_image_works(tcrd, iid: str) -> None:
    r = tcrd.cli("image", "inspect", iid)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)[0]
    assert info["mounted"] is True, info
    assert os.path.isfile(os.path.join(info["rootfs"], "etc", "hostname"))


# ---- images --------------------------------------------------------------------------------------

IMAGE_LOAD = [
    # point, does the image exist after recovery?
    ("image.after_loop_attach", False),
    ("image.after_mount", False),
    ("image.after_state_write", True),
]
IMAGE_RM = [
    ("image.rm.after_umount", True),  # the record survived: the image is remounted and stays
    ("image.rm.after_state_delete", False),
]


def _image(tmp_path, label: str) -> str:
    from test.fixtures.images import tiny_sqfs
    from test.root.test_bad_images import good_info

    digest = "sha256:" + __import__("hashlib").sha256(label.encode()).hexdigest()
    return tiny_sqfs(tmp_path, good_info(image={"digest": digest, "repository": f"library/{label}"}),
                     name=f"{label}.sqfs")


@pytest.mark.root
@pytest.mark.parametrize("point,exists", IMAGE_LOAD)
def test_crash_in_image_load(tcrd, tmp_path, point, exists):
    keep = _image(tmp_path, "bystander")
    r = tcrd.cli("image", "load", "-q", keep)
    assert r.returncode == 0, r.stderr
    bystander = r.stdout.strip()
    path = _image(tmp_path, "victim")
    crash_at(tcrd, point, "image", "load", path)
    ids = image_ids(tcrd)
    assert bystander in ids
    assert_image_works(tcrd, bystander)
    victims = [i for i in ids if i != bystander]
    if exists:
        assert len(victims) == 1, ids
        assert_image_works(tcrd, victims[0])
    else:
        assert victims == [], ids
    assert kernel_leaks(tcrd, images=ids) == []
    # Whatever the outcome, the operation can be done (again) and undone cleanly.
    r = tcrd.cli("image", "load", "-q", path)
    assert r.returncode == 0, r.stderr
    assert tcrd.cli("image", "rm", r.stdout.strip()).returncode == 0
    assert kernel_leaks(tcrd, images=[bystander]) == []


@pytest.mark.root
@pytest.mark.parametrize("point,exists", IMAGE_RM)
def test_crash_in_image_rm(tcrd, tmp_path, point, exists):
    r = tcrd.cli("image", "load", "-q", _image(tmp_path, "victim"))
    assert r.returncode == 0, r.stderr
    iid = r.stdout.strip()
    crash_at(tcrd, point, "image", "rm", iid)
    ids = image_ids(tcrd)
    if exists:
        assert ids == [iid]
        assert_image_works(tcrd, iid)
        assert tcrd.cli("image", "rm", iid).returncode == 0
    else:
        assert ids == []
    assert kernel_leaks(tcrd, images=[]) == []


# ---- networks ------------------------------------------------------------------------------------

NETWORK_CREATE = [
    ("network.create.after_bridge", False),
    ("network.create.after_state_write", True),
]


def _net_names(tcrd) -> List[str]:
    r = tcrd.cli("network", "ls", "-q")
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


@pytest.mark.root
@pytest.mark.parametrize("point,exists", NETWORK_CREATE)
def test_crash_in_network_create(tcrd, point, exists):
    name = f"cp{os.getpid() % 100000}"
    try:
        crash_at(tcrd, point, "network", "create", "--subnet", "10.196.3.0/24", name)
        if exists:
            assert name in _net_names(tcrd)
            assert tcrd.cli("network", "inspect", name).returncode == 0
            assert kernel_leaks(tcrd, networks=[name]) == []
            assert tcrd.cli("network", "rm", name).returncode == 0
        else:
            assert name not in _net_names(tcrd)
            assert kernel_leaks(tcrd) == []
            # Rolled back completely: the same name and subnet can be created again.
            r = tcrd.cli("network", "create", "--subnet", "10.196.3.0/24", name)
            assert r.returncode == 0, r.stderr
            assert tcrd.cli("network", "rm", name).returncode == 0
        assert kernel_leaks(tcrd) == []
    finally:
        tcrd.cli("network", "rm", name)
        force_clean_network(tcrd)


@pytest.mark.root
def test_crash_in_network_rm(tcrd):
    name = f"cp{os.getpid() % 100000}"
    try:
        r = tcrd.cli("network", "create", "--subnet", "10.196.4.0/24", name)
        assert r.returncode == 0, r.stderr
        crash_at(tcrd, "network.rm.after_state_delete", "network", "rm", name)
        assert name not in _net_names(tcrd)
        assert kernel_leaks(tcrd) == []
    finally:
        tcrd.cli("network", "rm", name)
        force_clean_network(tcrd)


# ---- containers, network attach/detach, port publishing -----------------------------------------

GONE, EXISTS, EITHER = "gone", "exists", "either"
PORT = 18000 + os.getpid() % 1000

# point, operation, expected victim after recovery
CONTAINER_POINTS = [
    ("container.create.after_dir", "create", GONE),
    ("container.create.after_state_write", "create", EXISTS),
    ("container.start.after_prepare", "run", GONE),
    ("container.start.after_prepare", "start", EXISTS),
    ("container.start.after_crun_start", "run", GONE),
    ("container.start.after_crun_start", "start", EXISTS),
    ("network.attach.after_netns", "run", GONE),
    ("network.attach.after_veth", "run", GONE),
    ("network.attach.after_lease", "run", GONE),
    ("network.ports.after_nft", "run", GONE),
    ("network.detach.after_state_write", "rm", EITHER),
    ("container.rm.after_teardown", "rm", EITHER),
    ("container.rm.after_state_delete", "rm", GONE),
]


def _ps(tcrd) -> dict:
    r = tcrd.cli("ps", "-a", "--format", "json")
    assert r.returncode == 0, r.stderr
    return {c["Names"]: c for c in json.loads(r.stdout)}


def _nft_text(tcrd) -> str:
    from tcr.network import netplan

    r = subprocess.run(["nft", "list", "table", "ip", netplan.nft_table(_tag(tcrd))], capture_output=True,
                       text=True)
    return r.stdout


@pytest.mark.root
@pytest.mark.parametrize("point,op,expect", CONTAINER_POINTS,
                         ids=[f"{p}-{o}" for p, o, _e in (x.values if hasattr(x, "values") else x
                                                          for x in CONTAINER_POINTS)])
def test_crash_in_container_and_network_operations(tcrd, tmp_path, point, op, expect):
    from test.fixtures.images import c_tool_sqfs

    r = tcrd.cli("image", "load", "-q", c_tool_sqfs(tmp_path))
    assert r.returncode == 0, r.stderr
    iid = r.stdout.strip()
    victim = "victim"
    run_victim = ("run", "-d", "--name", victim, "-p", f"{PORT}:80", "busybox", "sleep", "600")
    try:
        # A bystander on the same network must come through every crash untouched.
        r = tcrd.cli("run", "-d", "--name", "bystander", "busybox", "sleep", "600")
        assert r.returncode == 0, r.stderr
        bystander = _ps(tcrd)["bystander"]["Id"]
        if op == "create":
            crash_at(tcrd, point, "create", "--name", victim, "busybox", "sleep", "600")
        elif op == "run":
            crash_at(tcrd, point, *run_victim)
        elif op == "start":
            r = tcrd.cli("create", "--name", victim, "-p", f"{PORT}:80", "busybox", "sleep", "600")
            assert r.returncode == 0, r.stderr
            crash_at(tcrd, point, "start", victim)
        else:
            r = tcrd.cli(*run_victim)
            assert r.returncode == 0, r.stderr
            crash_at(tcrd, point, "rm", "-f", victim)
        ps = _ps(tcrd)
        assert ps.get("bystander", {}).get("State") == "running", ps
        assert tcrd.cli("exec", "bystander", "true").returncode == 0
        exists = victim in ps
        if expect != EITHER:
            assert exists == (expect == EXISTS), (point, op, ps)
        live = [bystander]
        if exists:
            v = ps[victim]
            crun_has = v["Id"] in crun_ids(tcrd)
            if v["State"] == "running":
                assert crun_has and tcrd.cli("exec", victim, "true").returncode == 0
                live.append(v["Id"])
            else:
                assert not crun_has, v
                assert f"dport {PORT}" not in _nft_text(tcrd)
        else:
            assert f"dport {PORT}" not in _nft_text(tcrd)
        assert kernel_leaks(tcrd, networks=["tcr_default"], containers=live, images=[iid]) == []
        # Whatever state it is in, the victim can be removed, and made again from scratch.
        if exists:
            r = tcrd.cli("rm", "-f", victim)
            assert r.returncode == 0, r.stderr
        r = tcrd.cli(*run_victim)
        assert r.returncode == 0, r.stderr
        assert tcrd.cli("rm", "-f", victim).returncode == 0
        assert kernel_leaks(tcrd, networks=["tcr_default"], containers=[bystander], images=[iid]) == []
    finally:
        for n in (victim, "bystander"):
            tcrd.cli("rm", "-f", n)
        tcrd.kill9()  # a restart's recovery releases whatever a failed assertion left attached
        tcrd.start()
        for n in tcrd.cli("network", "ls", "-q").stdout.split():
            tcrd.cli("network", "rm", n)
        force_clean_network(tcrd)


def test_every_fault_point_has_a_crash_test():
    from tcr.common.faults import POINTS

    covered = {p for p, _e in IMAGE_LOAD + IMAGE_RM + NETWORK_CREATE} | {"network.rm.after_state_delete"}
    covered |= {(x.values if hasattr(x, "values") else x)[0] for x in CONTAINER_POINTS}
    assert covered == set(POINTS)
