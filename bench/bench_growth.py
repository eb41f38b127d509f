"""No growth (issue 11 §5): tcrd's resident memory over long runs of everyday work.

Four workloads, each on a fresh tcrd after a warm-up (which fills what is bounded by design: the
256-event ring of `tcr events`, the interpreter's free lists, the seccomp and parser caches):

1. --cycles `image load`/`image rm` of a small zstd image, with the `zstandard` module importable;
2. the same with `zstandard` hidden (validation then goes through a private mount);
3. --containers short containers: the real `tcr` client's `run --rm busybox /bin/true`, every
   other one on the default bridge network (veth, lease, DNS name), the rest `--network none`;
4. --ps `tcr ps` requests (in-process RPC).

tcrd's VmRSS (kB, /proc/PID/status) is read after the warm-up, at every tenth of the run and at
the end; the target is flat: within +-1 MB over the run. Workers (image load, seccomp) are
short-lived children and not counted; they exit before each sample.

    python bench/bench_growth.py [--cycles 1000] [--containers 1000] [--ps 5000] [--parts a,b,c,d]
                                 [--no-write]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Metric  # noqa: E402

LIMIT_KB = 1024  # flat: within +-1 MB
TITLE = "No growth: tcrd's RSS over long runs"


def _hide_zstandard(daemon: common.BenchDaemon) -> None:
    shim = os.path.join(daemon.base, "shim", "zstandard")
    os.makedirs(shim)
    with open(os.path.join(shim, "__init__.py"), "w") as f:
        f.write("raise ImportError('zstandard hidden by bench_growth')\n")
    daemon.extra_path.append(os.path.dirname(shim))



def measure(name: str, daemon: common.BenchDaemon, step: Callable[[int], None], warmup: int,
            count: int) -> Dict[str, Any]:
    """Run step(i) warmup + count times; VmRSS after the warm-up, every count/10 steps, at the end."""
    samples: List[int] = []
    t0 = 0.0
    for i in range(warmup + count):
        if i >= warmup and (i - warmup) % max(1, count // 10) == 0:
            common.wait_no_workers(daemon, timeout=60)
            samples.append(common.rss_kb(daemon.pid))
            if i == warmup:
                t0 = time.monotonic()
        step(i)
    common.wait_no_workers(daemon, timeout=60)
    samples.append(common.rss_kb(daemon.pid))
    res = {"name": name, "count": count, "warmup": warmup, "samples": samples,
           "start": samples[0], "end": samples[-1], "growth": samples[-1] - samples[0],
           "half": samples[len(samples) // 2], "spread": max(samples) - min(samples),
           "peak": common.rss_kb(daemon.pid, "VmHWM"), "seconds": time.monotonic() - t0}
    res["growth_last_half"] = res["end"] - res["half"]
    print(f"  {name}: {res['start']} kB -> {res['end']} kB over {count} ({res['growth']:+d} kB; "
          f"samples {samples})", flush=True)
    return res


def load_rm(work: str, cycles: int, hide: bool) -> Dict[str, Any]:
    daemon = common.BenchDaemon(os.path.join(work, "nozstd" if hide else "zstd"))
    if hide:
        _hide_zstandard(daemon)
    src = os.path.join(work, "cycle.sqfs")
    if not os.path.exists(src):
        common.build_sqfs(src, common.busybox_bundle(), common.image_info("tcr-bench/growth"))
    problems: List[str] = []
    try:
        daemon.start()

        def step(_i: int) -> None:
            iid = daemon.rpc("image", "load", "-q", src)["stdout"].strip()
            daemon.rpc("image", "rm", iid)

        what = "without" if hide else "with"
        return measure(f"{cycles} `image load`/`image rm` ({what} zstandard)", daemon, step,
                       max(150, cycles // 10), cycles)
    finally:
        problems += daemon.cleanup()
        for p in problems:
            print(f"cleanup: {p}", file=sys.stderr)


def containers_and_ps(work: str, containers: int, ps: int, parts: set) -> List[Dict[str, Any]]:
    daemon = common.BenchDaemon(os.path.join(work, "ctr"))
    src = os.path.join(work, "busybox.sqfs")
    common.build_sqfs(src, common.busybox_bundle(), common.image_info("library/busybox"))
    problems: List[str] = []
    out = []
    try:
        daemon.start()
        iid = daemon.rpc("image", "load", "-q", src)["stdout"].strip()
        if "c" in parts:
            def run_one(i: int) -> None:
                net = ("--network", "none") if i % 2 else ()
                daemon.cli("run", "--rm", *net, iid, "/bin/true", timeout=60)

            out.append(measure(f"{containers} `run --rm busybox /bin/true` (half on the bridge network)",
                               daemon, run_one, 100, containers))
            left = daemon.rpc("ps", "-aq")["stdout"].split()
            if left:
                raise RuntimeError(f"containers left after run --rm: {left}")
        if "d" in parts:
            out.append(measure(f"{ps} `tcr ps` (RPC)", daemon, lambda _i: daemon.rpc("ps", "-a"), 200, ps))
    finally:
        problems += daemon.cleanup()
        for p in problems:
            print(f"cleanup: {p}", file=sys.stderr)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--containers", type=int, default=1000)
    ap.add_argument("--ps", type=int, default=5000)
    ap.add_argument("--parts", default="a,b,c,d", help="a/b: load/rm with/without zstandard, "
                    "c: containers, d: ps")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    common.need_root()
    parts = set(args.parts.split(","))
    work = tempfile.mkdtemp(prefix=f"tcr-bench-growth-{os.getpid()}-", dir="/var/tmp")
    results: List[Dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    try:
        if "a" in parts:
            results.append(load_rm(work, args.cycles, False))
        if "b" in parts:
            results.append(load_rm(work, args.cycles, True))
        if parts & {"c", "d"}:
            results += containers_and_ps(work, args.containers, args.ps, parts)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    metrics = [Metric("growth", f"tcrd RSS growth over {r['name']}", f"{r['growth']:+d} kB",
                      f"within +-{LIMIT_KB} kB", abs(r["growth"]) <= LIMIT_KB,
                      f"{r['growth_last_half']:+d} kB over the last half; spread {r['spread']} kB")
               for r in results]
    common.record("growth", metrics)
    if not args.no_write and parts == {"a", "b", "c", "d"}:
        write(results, load_before, os.getloadavg()[0])
    return 0


def write(results: List[Dict[str, Any]], load_before: float, load_after: float) -> None:
    rows = [[r["name"], str(r["warmup"]), f"{r['start']} kB", f"{r['half']} kB", f"{r['end']} kB",
             f"**{r['growth']:+d} kB**", f"{r['growth_last_half']:+d} kB", f"{r['spread']} kB",
             f"{r['seconds']:.0f} s"] for r in results]
    lines = [
        f"## {TITLE}",
        "",
        f"`bench/bench_growth.py` ({common.machine_line()}; load average {load_before:.1f} before, "
        f"{load_after:.1f} after, on 2 cores shared with other sessions). tcrd runs as installed "
        "(`python3 -I -S`); each workload on a fresh tcrd, after a warm-up that fills what is bounded "
        "by design (the 256-event ring of `tcr events`, free lists, caches). VmRSS of tcrd alone, "
        "sampled with no worker alive, after the warm-up, every tenth of the run and at the end. "
        "Target: flat, within +-1 MB.",
        "",
        common.table(["workload", "warm-up", "after warm-up", "half-way", "end", "growth",
                      "growth, last half", "spread of 11 samples", "took"], rows),
        "",
        "Samples (kB, every tenth of the run):",
        "",
        *[f"- {r['name']}: {', '.join(str(s) for s in r['samples'])}" for r in results],
        "",
        "The suite keeps a short version of each (`test/root/test_no_growth.py`: fixed counts, a bound "
        "derived from the spread above).",
        "",
    ]
    common.write_section(TITLE, "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
