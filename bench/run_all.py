"""Run every bench/bench_*.py, then write the `## Summary` at the top of docs/benchmarks.md.

Each bench is a standalone script that writes its own `## ...` section; a failing bench is reported
(exit code, log tail) and does not stop the others. The summary lists every headline number with
its target and met/missed, from the metrics the benches record (bench.common.record) or, for the
benches that only print, from their output (adapters below). Logs: build/bench/logs/.

    make bench                                    # installs podman, dnsperf, ... then runs this
    /tmp/tv/bin/python bench/run_all.py [--only load,scale] [--skip build] [--timeout 1800]
    /tmp/tv/bin/python bench/run_all.py --summary-only   # rebuild the summary from recorded results
"""

import argparse
import os
import re
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Metric  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LOGS = os.path.join(common.REPO, "build", "bench", "logs")
# Cheap and independent first; the long ones last.
ORDER = ["run", "podman", "load", "cli", "scale", "memory", "dns", "build"]


def discover() -> List[str]:
    names = [f[len("bench_"):-3] for f in os.listdir(HERE) if f.startswith("bench_") and f.endswith(".py")]
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


# ---- adapters: headline numbers of benches that print instead of calling common.record() -----

def _dns(out: str) -> List[Metric]:
    ms = []
    for label, target in (("local", 1.0), ("forwarded", None)):
        m = re.search(rf"^{label}: tcr/dnsmasq = ([0-9.]+)x", out, re.M)
        if m:
            v = float(m.group(1))
            ms.append(Metric("dns", f"DNS q/s tcr / dnsmasq ({label} names)", f"{v:.2f}x",
                             f">= {target}x" if target else "", v >= target if target else None))
    return ms


def _cli(out: str) -> List[Metric]:
    """The client as installed (`make install`'s -IS script) when the table has it, else pip's script."""
    rows: Dict[str, Dict[str, float]] = {}
    for cmd, how, val in re.findall(r"^\| `tcr ([^`]+)` \| ([^|]+?) \| ([0-9.]+) \|", out, re.M):
        rows.setdefault(cmd, {})[how] = float(val)
    ms = []
    for cmd, hows in rows.items():
        if cmd == "help":
            continue
        how = next((h for h in hows if h.startswith("installed")), None) or \
            next((h for h in hows if "console script" in h), None)
        if how is None:
            continue
        v = hows[how]
        label = "installed" if how.startswith("installed") else "console script"
        ms.append(Metric("cli", f"`tcr {cmd}` (empty daemon, {label})", f"{v:.1f} ms", "<= 30 ms", v <= 30.0))
    return ms


def _build(out: str) -> List[Metric]:
    m = re.search(r"median raw ([0-9.]+)s, tcr-create-image ([0-9.]+)s, ratio ([0-9.]+)x "
                  r"\((\w+) the ([0-9.]+)x", out)
    if not m:
        return []
    ratio, target = float(m.group(3)), float(m.group(5))
    return [Metric("build", "tcr-create-image / raw skopeo+umoci+mksquashfs", f"{ratio:.2f}x",
                   f"<= {target}x", ratio <= target, f"{m.group(2)} s vs {m.group(1)} s")]


ADAPTERS: Dict[str, Callable[[str], List[Metric]]] = {"dns": _dns, "cli": _cli, "build": _build}


# ---- running -------------------------------------------------------------------------------

def run_one(name: str, timeout: float) -> Tuple[str, float, str]:
    """Run bench_<name>.py; returns (status, seconds, output)."""
    script = os.path.join(HERE, f"bench_{name}.py")
    os.makedirs(LOGS, exist_ok=True)
    stale = os.path.join(common.results_dir(), f"{name}.json")
    if os.path.exists(stale):
        os.unlink(stale)  # a failed run must not show last time's numbers
    t0 = time.monotonic()
    print(f"==> bench_{name}.py", flush=True)
    try:
        p = subprocess.run([sys.executable, "-u", script], cwd=common.REPO, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        out, status = p.stdout, "ok" if p.returncode == 0 else f"failed (exit {p.returncode})"
    except subprocess.TimeoutExpired as exc:
        raw = exc.stdout or b""
        out = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        status = f"timed out after {timeout:.0f} s"
    took = time.monotonic() - t0
    with open(os.path.join(LOGS, f"{name}.log"), "w") as f:
        f.write(out)
    tail = "\n".join(out.rstrip().splitlines()[-(8 if status == "ok" else 25):])
    print(tail)
    print(f"<== bench_{name}.py: {status} ({took:.0f} s)\n", flush=True)
    if status == "ok" and name in ADAPTERS and not os.path.exists(stale):
        metrics = ADAPTERS[name](out)
        if metrics:
            common.record(name, metrics)
    return status, took, out


def summary(statuses: Dict[str, Tuple[str, float]], metrics: List[Metric]) -> str:
    def verdict(m: Metric) -> str:
        return "" if m.met is None else ("met" if m.met else "**missed**")

    met = sum(1 for m in metrics if m.met)
    missed = sum(1 for m in metrics if m.met is False)
    lines = [
        "## Summary",
        "",
        f"Run: {common.machine()['date']}. Machine: {common.machine_desc()}.",
        "",
        "Written by `bench/run_all.py` (`make bench`); every section below is written by its own script",
        "(`bench/bench_<name>.py`), which can be re-run alone. Ratios are measured side by side in the same",
        "run on this machine: medians after warm-up, A/B interleaved. Not timed tests.",
        "",
        f"Targets: {met} met, {missed} missed.",
        "",
        common.table(["bench", "metric", "value", "target", "", "note"],
                     [[m.bench, m.name, m.value, m.target, verdict(m), m.note] for m in metrics],
                     align="llrrll"),
        "",
    ]
    if statuses:
        lines += [common.table(["bench script", "status", "took"],
                               [[f"`bench_{n}.py`", s, f"{t:.0f} s"] for n, (s, t) in statuses.items()],
                               align="llr"), ""]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="comma-separated bench names (e.g. load,scale)")
    ap.add_argument("--skip", default="", help="comma-separated bench names to leave out")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per bench")
    ap.add_argument("--summary-only", action="store_true", help="only rebuild the summary")
    args = ap.parse_args(argv)
    names = discover()
    if args.only:
        want = args.only.split(",")
        unknown = [n for n in want if n not in names]
        if unknown:
            raise SystemExit(f"unknown bench(es): {', '.join(unknown)} (have: {', '.join(names)})")
        names = [n for n in names if n in want]
    names = [n for n in names if n not in args.skip.split(",")]
    statuses: Dict[str, Tuple[str, float]] = {}
    if not args.summary_only:
        for n in names:
            status, took, _out = run_one(n, args.timeout)
            statuses[n] = (status, took)
    metrics = common.load_results()
    order = {n: i for i, n in enumerate(discover())}
    metrics.sort(key=lambda m: order.get(m.bench, len(order)))
    common.write_section("Summary", summary(statuses, metrics), top=True)
    for m in metrics:
        flag = "" if m.met is None else (" (met)" if m.met else " (MISSED)")
        print(f"{m.bench:7s} {m.name}: {m.value}  target {m.target or '-'}{flag}")
    failed = [n for n, (s, _t) in statuses.items() if s != "ok"]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
