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
import shutil
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
    mounted_loops = len([m for m in mounts_under(tcrd.base) if m.startswith(os.path.join(tcrd.root, "images"))])
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


def _unused(*_a) -> None:  # keep shutil imported for later helpers
    shutil.rmtree
