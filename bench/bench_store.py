"""The image store (issue 11 §1, §3): load time by mode and size, and `tcr ps` latency while a big
load and verify run. (tcrd's RSS over many load/rm cycles, §5: bench/bench_growth.py.)

1. Load time of `tcr image load` (in-process RPC: the daemon's work, without client start-up) for
   10, 100 and 500 MB images, three ways: copy (copy_file_range on this machine's ext4), reflink
   (FICLONE, on an XFS loop filesystem with reflink=1) and `--move` (rename). Every load also
   hashes the stored file (sha256, checked against the sidecar) except `--move` without a sidecar,
   which hashes in the background after the reply. Medians of --runs after a warm-up; between runs
   (untimed) the image is removed and, for --move, the source file made again.
2. `tcr ps` round trips (RPC) sent back to back while a 500 MB load and then a 500 MB verify run,
   --rounds times (the machine is shared: the max of one round says little; all rounds are listed).

    python bench/bench_store.py [--runs 5] [--sizes 10,100,500] [--rounds 5] [--parts load,ps] [--no-write]
"""

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Metric, median, ms  # noqa: E402

MB = 1 << 20
PS_TARGET_MS = 100.0
TITLE = "Image store: load modes, `tcr ps` during long work"


def padded_image(path: str, size_mb: int, label: str) -> str:
    """A valid image padded to size_mb (squashfs ignores what follows its bytes_used) + sidecar."""
    common.build_sqfs(path, common.busybox_bundle(), common.image_info(f"tcr-bench/store-{label}"))
    pattern = os.urandom(MB)
    with open(path, "ab") as f:
        while f.tell() < size_mb * MB:
            f.write(pattern)
        f.flush()
        os.fsync(f.fileno())
    write_sidecar(path)
    return path


def write_sidecar(path: str) -> None:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MB), b""):
            h.update(chunk)
    with open(path + ".sha256", "w") as f:
        f.write(f"{h.hexdigest()}  {os.path.basename(path)}\n")


def copy_file(src: str, dst: str) -> None:
    """cp --reflink=auto: instant on XFS/btrfs, a real copy elsewhere (untimed set-up), then on
    disk like a file copied to the board earlier (the load fsyncs what it moves: dirty data would
    be written back inside the timed load)."""
    common.sh(["cp", "--reflink=auto", src, dst])
    fd = os.open(dst, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if os.path.exists(src + ".sha256"):
        shutil.copyfile(src + ".sha256", dst + ".sha256")


def image_id(daemon: common.BenchDaemon, path: str, *flags: str) -> str:
    return daemon.rpc("image", "load", "-q", *flags, path)["stdout"].strip()


def load_times(daemon: common.BenchDaemon, work: str, sizes: List[int], runs: int,
               modes: List[str]) -> Dict[str, Dict[int, float]]:
    """{mode: {size: median seconds}} for the modes copy / reflink / move on daemon's filesystem."""
    out: Dict[str, Dict[int, float]] = {m: {} for m in modes}
    for size in sizes:
        master = padded_image(os.path.join(work, f"master-{size}.sqfs"), size, f"{size}")
        for mode in modes:
            times = []
            for i in range(runs + 1):
                src = master
                if mode == "move":
                    src = os.path.join(work, f"move-{size}.sqfs")
                    copy_file(master, src)
                    os.unlink(src + ".sha256")  # --move without a sidecar: the O(1) path
                flags = ("--move",) if mode == "move" else ()
                t0 = time.perf_counter()
                iid = image_id(daemon, src, *flags)
                elapsed = time.perf_counter() - t0
                if i:
                    times.append(elapsed)
                common.wait_no_workers(daemon)  # --move: let the background hash finish before the next run
                daemon.rpc("image", "rm", iid)
            out[mode][size] = median(times)
            print(f"  {mode:8s} {size:4d} MB: {ms(out[mode][size])}", flush=True)
        os.unlink(master)
        os.unlink(master + ".sha256")
    return out



def ps_during(daemon: common.BenchDaemon, work: str, size: int, src: str) -> Dict[str, List[float]]:
    """`tcr ps` latencies while a load, then a verify, of a size-MB image run."""
    out: Dict[str, List[float]] = {}
    iid = ""
    for what in ("load", "verify"):
        box: Dict[str, str] = {}

        def work_thread(what=what, box=box, iid=iid) -> None:
            if what == "load":
                box["id"] = image_id(daemon, src)
            else:
                daemon.rpc("image", "verify", iid)

        t = threading.Thread(target=work_thread)
        lat: List[float] = []
        t.start()
        while t.is_alive():
            t0 = time.perf_counter()
            daemon.rpc("ps")
            lat.append(time.perf_counter() - t0)
        t.join()
        out[what] = lat
        if what == "load":
            iid = box["id"]
        print(f"  ps during {size} MB {what}: {len(lat)} calls, median {ms(median(lat))}, "
              f"p99 {ms(p99(lat))}, max {ms(max(lat))}", flush=True)
    daemon.rpc("image", "rm", iid)
    # The control: the same back-to-back ps with nothing else running in tcrd, as long as the
    # verify took. Its max is what the shared machine alone does to a round trip.
    lat = []
    end = time.perf_counter() + max(1.0, sum(out["verify"]))
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        daemon.rpc("ps")
        lat.append(time.perf_counter() - t0)
    out["nothing (control)"] = lat
    print(f"  ps with nothing running: {len(lat)} calls, median {ms(median(lat))}, p99 {ms(p99(lat))}, "
          f"max {ms(max(lat))}", flush=True)
    return out


NICE = -10


def sched_ns(pid: int) -> Tuple[int, int]:
    """(CPU time on, time waiting for a CPU) of pid's main thread, ns (/proc/PID/schedstat)."""
    with open(f"/proc/{pid}/schedstat") as f:
        run, wait, _n = f.read().split()
    return int(run), int(wait)


def loop_cost(daemon: common.BenchDaemon, work: str, size: int, runs: int = 3) -> Dict[str, List[float]]:
    """tcrd's own CPU time (its one thread: the event loop) for one load and one verify of a size-MB
    image with no other client: everything the loop does for them (two forks, bookkeeping, the
    reply). The copy, hash, mount and fsyncs are in the workers' time, not in this."""
    src = padded_image(os.path.join(work, f"cost-{size}.sqfs"), size, f"cost{size}")
    out: Dict[str, List[float]] = {"load": [], "verify": [], "load wall": [], "verify wall": []}
    try:
        for _ in range(runs):
            for what in ("load", "verify"):
                r0, t0 = sched_ns(daemon.pid)[0], time.perf_counter()
                if what == "load":
                    iid = image_id(daemon, src)
                else:
                    daemon.rpc("image", "verify", iid)
                out[f"{what} wall"].append(time.perf_counter() - t0)
                out[what].append((sched_ns(daemon.pid)[0] - r0) / 1e9)
            common.wait_no_workers(daemon)
            daemon.rpc("image", "rm", iid)
        print(f"  tcrd's own CPU per {size} MB load: {ms(median(out['load']))} "
              f"(wall {ms(median(out['load wall']))}), per verify: {ms(median(out['verify']))}", flush=True)
        return out
    finally:
        os.unlink(src)
        os.unlink(src + ".sha256")


def ps_rounds(daemon: common.BenchDaemon, work: str, size: int, rounds: int,
              nice_rounds: int) -> List[Tuple[str, Dict[str, List[float]]]]:
    """(label, latencies) of `rounds` load+verify rounds, then `nice_rounds` more with tcrd and this
    client at nice NICE (the machine is shared by several sessions; on a board tcrd is the main
    process). Workers are forked from tcrd and inherit its nice value."""
    src = padded_image(os.path.join(work, f"ps-{size}.sqfs"), size, f"ps{size}")
    try:
        out = []
        for i in range(rounds + nice_rounds):
            label = f"{i + 1}"
            if i >= rounds:
                if i == rounds:
                    os.setpriority(os.PRIO_PROCESS, daemon.pid, NICE)
                    os.setpriority(os.PRIO_PROCESS, 0, NICE)
                label = f"{i + 1 - rounds} (nice {NICE})"
            out.append((label, ps_during(daemon, work, size, src)))
            print(f"  round {label}: load avg {os.getloadavg()[0]:.1f}", flush=True)
        return out
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
        os.unlink(src)
        os.unlink(src + ".sha256")


def _pool(rounds: List[Tuple[str, Dict[str, List[float]]]], nice: bool, control: bool) -> List[float]:
    keys = ("nothing (control)",) if control else ("load", "verify")
    return [x for label, r in rounds if ("nice" in label) == nice for k, v in r.items() if k in keys
            for x in v]


def p99(xs: List[float]) -> float:
    return sorted(xs)[min(len(xs) - 1, int(len(xs) * 0.99))]


class XfsMount:
    """An XFS filesystem with reflink=1 on a loop file: where FICLONE works."""

    def __init__(self, work: str, size_mb: int):
        self.img = os.path.join(work, "xfs.img")
        self.mnt = os.path.join(work, "xfs")
        with open(self.img, "wb") as f:
            f.truncate(size_mb * MB)
        common.sh(["mkfs.xfs", "-q", "-m", "reflink=1", self.img])
        os.makedirs(self.mnt)
        common.sh(["mount", "-o", "loop", self.img, self.mnt])

    def close(self) -> None:
        common.sh(["umount", self.mnt], check=False)
        os.unlink(self.img)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", default="10,100,500")
    ap.add_argument("--rounds", type=int, default=5, help="load+verify rounds for the ps latency")
    ap.add_argument("--nice-rounds", type=int, default=5, help=f"more rounds with tcrd at nice {NICE}")
    ap.add_argument("--parts", default="load,ps")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    common.need_root()
    parts = set(args.parts.split(","))
    sizes = [int(x) for x in args.sizes.split(",")]
    common.ensure_apt({"mkfs.xfs": "xfsprogs"})
    work = tempfile.mkdtemp(prefix=f"tcr-bench-store-{os.getpid()}-", dir="/var/tmp")
    problems: List[str] = []
    xfs: Optional[XfsMount] = None
    times: Dict[str, Dict[int, float]] = {}
    method = xfs_method = "?"
    rounds: List[Tuple[str, Dict[str, List[float]]]] = []
    cost: Dict[str, List[float]] = {}
    load_before = os.getloadavg()
    try:
        d1 = common.BenchDaemon(os.path.join(work, "ext4"))
        try:
            d1.start()
            if "load" in parts:
                print("load times (ext4: copy_file_range / --move)", flush=True)
                times = load_times(d1, work, sizes, args.runs, ["copy", "move"])
                method = copy_method(d1)
            if "ps" in parts:
                cost = loop_cost(d1, work, max(sizes))
                rounds = ps_rounds(d1, work, max(sizes), args.rounds, args.nice_rounds)
        finally:
            problems += d1.cleanup()
        if "load" in parts:
            print("load times (XFS reflink=1: reflink)", flush=True)
            xfs = XfsMount(work, 4 * max(sizes) + 512)
            d2 = common.BenchDaemon(os.path.join(xfs.mnt, "tcrd"))
            try:
                d2.start()
                times.update(load_times(d2, xfs.mnt, sizes, args.runs, ["reflink"]))
                xfs_method = copy_method(d2)
            finally:
                problems += d2.cleanup()
    finally:
        if xfs is not None:
            xfs.close()
        shutil.rmtree(work, ignore_errors=True)
    for p in problems:
        print(f"cleanup: {p}", file=sys.stderr)
    load_after = os.getloadavg()

    big = max(sizes)
    small = min(sizes)
    metrics = []
    if "load" in parts:
        move_ratio = times["move"][big] / times["move"][small]
        metrics.append(Metric("store", f"`image load --move` {big} MB / {small} MB", f"{move_ratio:.2f}x",
                              "O(1) (<= 1.5x)", move_ratio <= 1.5,
                              f"{ms(times['move'][small])} -> {ms(times['move'][big])}"))
    for nice in (False, True):
        every, control = _pool(rounds, nice, False), _pool(rounds, nice, True)
        if not every:
            continue
        ps_max = max(every)
        how = f", tcrd at nice {NICE}" if nice else ""
        n = len({label for label, _r in rounds if ("nice" in label) == nice})
        metrics.append(Metric("store", f"`tcr ps` max during {big} MB load + verify ({n} rounds{how})",
                              ms(ps_max), f"< {PS_TARGET_MS:.0f} ms", ps_max * 1000 < PS_TARGET_MS,
                              f"p99 {ms(p99(every))}, median {ms(median(every))}; with nothing running: "
                              f"max {ms(max(control))}, p99 {ms(p99(control))}; load average "
                              f"{load_before[0]:.1f}-{load_after[0]:.1f} on 2 shared cores"))
    common.record("store", metrics)
    if not args.no_write and parts >= {"load", "ps"}:
        write(args, sizes, times, method, xfs_method, rounds, big, (load_before, load_after), cost)
    return 0


def copy_method(daemon: common.BenchDaemon) -> str:
    """How the last copy was made, from tcrd's log line 'loaded image ... on /dev/loopN (METHOD; ...)'."""
    import re

    for line in reversed(daemon.log().splitlines()):
        m = re.search(r"loaded image .* on /dev/loop\d+ \(([^;)]+)", line)
        if m and m.group(1) != "move":
            return m.group(1)
    return "?"


def write(args, sizes, times, method, xfs_method, rounds, big, loads, cost) -> None:
    rows = [[f"{s} MB", ms(times["copy"][s]), ms(times["reflink"][s]), ms(times["move"][s])] for s in sizes]
    ps_rows = []
    for label, r in rounds:
        for w, v in r.items():
            ps_rows.append([label, w, str(len(v)), ms(median(v)), ms(p99(v)), ms(max(v))])
    for nice in (False, True):
        how = f" (nice {NICE})" if nice else ""
        for control in (False, True):
            v = _pool(rounds, nice, control)
            if v:
                what = "nothing (control)" if control else "load + verify"
                ps_rows.append([f"**all{how}**", what, str(len(v)), ms(median(v)), ms(p99(v)),
                                f"**{ms(max(v))}**"])
    lines = [
        f"## {TITLE}",
        "",
        f"`bench/bench_store.py` ({common.machine_line()}): medians of {args.runs} runs after a warm-up, "
        "in-process RPC (the daemon's work). Every load checks the `.sha256` sidecar (one sha256 pass",
        "over the stored file, in the forked worker) except `--move` without a sidecar, which replies",
        "after the rename and validation and hashes in the background.",
        f"Copy here: {method} (ext4); reflink: {xfs_method} (XFS, `reflink=1`, loop file).",
        "",
        common.table(["image", "copy", "reflink", "--move"], rows),
        "",
        f"`tcr ps` (RPC) back to back while a {big} MB load and then a {big} MB verify run in workers, "
        f"{args.rounds} rounds, then {args.nice_rounds} more with tcrd and the client at nice {NICE} "
        f"(workers inherit it); load average {loads[0][0]:.1f} before, {loads[1][0]:.1f} after "
        "(2 cores shared with other sessions' tests and builds):",
        "",
        common.table(["round", "during", "calls", "median", "p99", "max"], ps_rows),
        "",
        f"tcrd's own CPU time (its single thread, the event loop; `/proc/PID/schedstat`) for one {big} "
        f"MB load with no other client: **{ms(median(cost['load']))}** in all (median of "
        f"{len(cost['load'])}; the load took {ms(median(cost['load wall']))}), for one verify: "
        f"**{ms(median(cost['verify']))}**. The blocking steps (mount, fsyncs) run in the workers, so the",
        "loop never waits on the disk for a load either: a `ps` round trip that takes longer is waiting",
        "for a CPU (the control rows show the same).",
        "",
        "On tcrd's loop a load is now only the two worker hand-offs and the bookkeeping (is the id",
        "loaded, or being installed by a concurrent load): the copy, hash and validation run in one",
        "worker, the loop device, the rename into place, the mount and the fsync'd record in a second",
        "(`tcr.images.manager.install`). Before that second worker (2026-12-01, same script, one",
        "round) the max was 118.3 ms, p99 10.8 ms during the load: the mount and the record's fsyncs",
        "took 30-75 ms on the loop. The control rows (`nothing`) are the same back-to-back `ps` with",
        "no load or verify in tcrd, right after each round: what the shared machine alone does to a",
        "round trip (the client or tcrd not scheduled). A max at the level of the control's is the",
        "machine, not work on the loop.",
        "",
    ]
    common.write_section(TITLE, "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
