"""`make profile`: run tcrd under memray through a scripted workload and write a report.

Workload (private tcrd, busybox test image): load the image; `run --rm` with the default network
(bridge, nft, DNS come up); start --containers detached containers on it; DNS lookups of their
names from inside a container (traffic stays in namespaces this script made); stop and remove
them; remove the image; SIGTERM.

Output in build/profile/: tcrd.bin (memray capture), tcrd-flamegraph.html, summary.txt, stats.txt,
stats.json. Its own section of docs/profile.md (`## memray run`) gets the peak, the totals and the
top allocating locations; the rest of that page is written by hand.

    /tmp/tv/bin/python bench/profile_tcrd.py [--native] [--containers 3] [--no-doc]
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from typing import Any, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

OUT = os.path.join(common.REPO, "build", "profile")
DOC = os.path.join(common.REPO, "docs", "profile.md")
IMAGE = "localhost/tcr-bench/busybox:latest"


def workload(d: common.BenchDaemon, img: str, n: int) -> List[str]:
    steps = []
    d.rpc("image", "load", img)
    steps.append("image load")
    d.cli("run", "--rm", IMAGE, "/bin/true")
    steps.append("run --rm (default network up)")
    names = [f"prof-{i}" for i in range(n)]
    for name in names:
        d.cli("run", "-d", "--name", name, IMAGE, "sleep", "600")
    steps.append(f"run -d x{n}")
    d.rpc("ps", "-a")
    # DNS from inside a container: the forwarder answers the other containers' names.
    script = "; ".join(f"nslookup {nm} >/dev/null 2>&1 && echo ok-{nm}" for nm in names * 3)
    r = d.cli("run", "--rm", IMAGE, "sh", "-c", script, check=False)
    steps.append(f"{3 * n} DNS lookups from a container ({r.stdout.count('ok-')} answered)")
    for name in names:
        d.rpc("stop", "-t", "2", name)
        d.rpc("rm", name)
    steps.append(f"stop + rm x{n}")
    d.rpc("image", "rm", IMAGE)
    steps.append("image rm")
    return steps


def memray(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "160", "TERM": "dumb", "NO_COLOR": "1"}
    return common.sh([sys.executable, "-m", "memray", *args], env=env, timeout=600).stdout


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


def locations(stats: Dict[str, Any], key: str) -> List[List[str]]:
    """memray's top locations: [location, size] or [location, count] rows."""
    rows = []
    for loc in stats.get(key, [])[:10]:
        where = str(loc.get("location", "?"))
        func, _, rest = where.partition(":")
        where_s = f"`{func}` {rest.replace(common.REPO + '/', '')}" if rest else f"`{where}`"
        rows.append([where_s, fmt_bytes(loc["size"]) if "size" in loc else f"{loc.get('count', 0):,}"])
    return rows


def by_tcr_site(capture: str, peak: bool) -> Tuple[List[List[str]], float]:
    """Allocations grouped by their innermost frame inside tcr (all of them, or those live at the
    peak): which of tcr's own lines cause the allocations, whatever library does the allocating."""
    from collections import Counter

    from memray import AllocatorType, FileReader

    frees = {AllocatorType.FREE, AllocatorType.PYMALLOC_FREE, AllocatorType.MUNMAP}
    reader = FileReader(capture)
    records = reader.get_high_watermark_allocation_records() if peak else reader.get_allocation_records()
    size: Counter = Counter()
    count: Counter = Counter()
    tcr_dir = os.path.join(common.TARGET, "tcr") + "/"
    for rec in records:
        if rec.allocator in frees:
            continue
        try:
            stack = rec.stack_trace(max_stacks=64)
        except NotImplementedError:
            continue
        inner = [f"`{fn}` {f[len(common.TARGET) + 1:]}:{ln}" for fn, f, ln in stack if f.startswith(tcr_dir)]
        site = inner[0] if inner else "(outside tcr: interpreter start-up, runpy, memray)"
        size[site] += rec.size
        count[site] += rec.n_allocations
    total = sum(size.values()) or 1
    at_import = sum(n for site, n in size.items() if site.startswith("`<module>`"))
    return [[site, fmt_bytes(n), f"{count[site]:,}"] for site, n in size.most_common(12)], at_import / total


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--native", action="store_true", help="also record native (C) stacks")
    ap.add_argument("--containers", type=int, default=3)
    ap.add_argument("--no-doc", action="store_true")
    args = ap.parse_args()
    common.need_root()
    try:
        import memray as _memray  # noqa: F401
    except ImportError:
        raise SystemExit(f"memray is not installed for {sys.executable} (pip install memray; `make profile` "
                         "uses the venv's [profile] extra)")
    os.makedirs(OUT, exist_ok=True)
    capture = os.path.join(OUT, "tcrd.bin")
    for old in os.listdir(OUT):
        os.unlink(os.path.join(OUT, old))
    work = tempfile.mkdtemp(prefix=f"tcr-profile-{os.getpid()}-", dir="/var/tmp")
    d = common.BenchDaemon(os.path.join(work, "tcrd"))
    extra = ["--native"] if args.native else []
    argv = [sys.executable, "-m", "memray", "run", "-q", "--trace-python-allocators", *extra, "-o", capture,
            "-m", "tcr.daemon.main", *d.daemon_args()]
    problems: List[str] = []
    try:
        img = common.build_sqfs(os.path.join(work, "busybox.sqfs"), common.busybox_bundle(),
                                common.image_info("tcr-bench/busybox"))
        d.start(argv=argv, timeout=120)
        steps = workload(d, img, args.containers)
    finally:
        problems += d.cleanup()  # SIGTERM: memray writes the capture as tcrd exits
        shutil.rmtree(work, ignore_errors=True)
    for p in problems:
        print(f"cleanup: {p}", file=sys.stderr)
    if not os.path.exists(capture):
        raise SystemExit(f"memray wrote no capture at {capture}")
    html = os.path.join(OUT, "tcrd-flamegraph.html")
    memray("flamegraph", "-f", "-o", html, capture)
    with open(os.path.join(OUT, "summary.txt"), "w") as out:
        out.write(memray("summary", capture))
    with open(os.path.join(OUT, "stats.txt"), "w") as out:
        out.write(memray("stats", capture))
    stats_json = os.path.join(OUT, "stats.json")
    memray("stats", "--json", "-f", "-o", stats_json, capture)
    with open(stats_json) as inp:
        stats = json.load(inp)
    meta = stats.get("metadata", {})
    peak = meta.get("peak_memory", 0)
    total = stats.get("total_bytes_allocated", 0)
    nalloc = stats.get("total_num_allocations", 0)
    print(f"peak {fmt_bytes(peak)}, {nalloc} allocations, {fmt_bytes(total)} allocated in all")
    print(f"report in {OUT}: tcrd-flamegraph.html, summary.txt, stats.txt, stats.json")
    sites_all, import_share = by_tcr_site(capture, peak=False)
    sites_peak, import_share_peak = by_tcr_site(capture, peak=True)
    for row in sites_all[:8]:
        print("  " + "  ".join(row))
    if not args.no_doc:
        write_doc(steps, peak, total, nalloc, stats, args, sites_all, sites_peak,
                  (import_share, import_share_peak))
    return 0


def write_doc(steps: List[str], peak: int, total: int, nalloc: int, stats: Dict[str, Any], args: Any,
              sites_all: List[List[str]], sites_peak: List[List[str]], shares: Tuple[float, float]) -> None:
    by_size = locations(stats, "top_allocations_by_size")
    by_count = locations(stats, "top_allocations_by_count")
    lines = [
        "## memray run (`make profile`)",
        "",
        f"Written by `bench/profile_tcrd.py` on {common.machine_line()}.",
        "tcrd ran under `memray run --trace-python-allocators"
        + (" --native" if args.native else "") + "` (pymalloc allocations are seen one by one).",
        "",
        "Workload: " + "; ".join(steps) + "; SIGTERM.",
        "",
        f"- peak heap: **{fmt_bytes(peak)}** (memray's high-water mark of live allocations; VmRSS adds the",
        "  interpreter, the code objects and the shared libraries, see docs/benchmarks.md)",
        f"- {nalloc:,} allocations, {fmt_bytes(total)} allocated in all",
        f"- {shares[0]:.0%} of the bytes allocated (and {shares[1]:.0%} of those live at the peak) come from",
        "  module-level code (`<module>` sites: imports), the rest from the workload",
        "",
        "Full report: `build/profile/tcrd-flamegraph.html` (open in a browser), `build/profile/summary.txt`,",
        "`build/profile/stats.txt`.",
        "",
        "### tcr lines behind the allocations (innermost tcr frame of each stack)",
        "",
        "All allocations of the run:",
        "",
        common.table(["tcr call site", "allocated", "allocations"], sites_all, align="lrr"),
        "",
        "Live at the peak (what holds the memory):",
        "",
        common.table(["tcr call site", "live at peak", "allocations"], sites_peak, align="lrr"),
        "",
        "### Top allocating locations by size (memray stats)",
        "",
        common.table(["location", "allocated"], by_size, align="lr"),
        "",
        "### Top allocating locations by number of allocations (memray stats)",
        "",
        common.table(["location", "allocations"], by_count, align="lr"),
        "",
    ]
    # only this section: the top of docs/profile.md (the path to the floor) is written by hand
    common.write_doc(common.replace_section(common.read_doc(DOC), "memray run (`make profile`)",
                                            "\n".join(lines)), DOC)
    print(f"wrote the memray section of {DOC}")


if __name__ == "__main__":
    sys.exit(main())
