"""compose and health checks: what a no-op `tcr compose up` costs, and what health checks cost tcrd.

Starts its own tcrd (private root, socket and run dir; needs root), loads the bench busybox image,
then measures (median wall time of the whole client process):
  - `compose config` (parse + validate only, no daemon), `compose up -d --dry-run`, and a second
    `compose up -d` that finds nothing to do, for a two-service stack;
  - tcrd's CPU time (utime+stime from /proc) over an idle window with no health check, and with
    one container checked every second: the cost per check.
Writes the `## compose and health checks` section of docs/benchmarks.md (only that section).

    sudo python3 bench/bench_compose.py [--runs N] [--window S]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

SECTION = "## compose and health checks"
STACK = """name: bench
services:
  db:
    image: localhost/bench-busybox:latest
    command: sleep 100000
    restart: always
  web:
    image: localhost/bench-busybox:latest
    command: sleep 100000
    restart: always
    environment: {MODE: bench}
    depends_on: [db]
"""


def median_ms(argv, runs: int, cwd: str) -> float:
    times = []
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        subprocess.run(argv, env=common.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True, stdin=subprocess.DEVNULL, cwd=cwd)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times[1:])  # the first run warms the byte-code and page caches


def cpu_ms(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) * 1000.0 / ticks


def cpu_over(pid: int, seconds: float) -> float:
    """tcrd's CPU time (its own and its reaped children's: the check workers) over a window."""
    before = cpu_ms(pid)
    time.sleep(seconds)  # bench only: an idle window, measured from outside
    return cpu_ms(pid) - before


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--window", type=float, default=20.0, help="seconds of each idle CPU window")
    ap.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    opts = ap.parse_args()
    common.need_root()
    base = tempfile.mkdtemp(prefix=f"tcr-bench-compose-{os.getpid()}-", dir="/tmp")
    daemon = common.BenchDaemon(base)
    daemon.start()
    try:
        img = common.build_sqfs(os.path.join(base, "bb.sqfs"), common.busybox_bundle(),
                                common.image_info("bench-busybox"))
        daemon.cli("image", "load", img)
        f = os.path.join(base, "compose.yaml")
        with open(f, "w") as fh:
            fh.write(STACK)
        tcr = daemon.client_argv()
        daemon.cli("compose", "-f", f, "up", "-d")
        cases = [
            ("`compose config -q` (parse + validate, no daemon)", ["compose", "-f", f, "config", "-q"]),
            ("`compose up -d --dry-run` (plan)", ["compose", "-f", f, "--dry-run", "up", "-d"]),
            ("`compose up -d`, nothing to do", ["compose", "-f", f, "up", "-d"]),
            ("(baseline) `tcr ps`", ["ps"]),
        ]
        rows = [(label, median_ms([*tcr, *args], opts.runs, base)) for label, args in cases]
        daemon.cli("compose", "-f", f, "down")
        daemon.cli("run", "-d", "--name", "idle", "localhost/bench-busybox", "sleep", "100000")
        idle = cpu_over(daemon.pid, opts.window)
        daemon.cli("run", "-d", "--name", "checked", "--health-cmd", "true", "--health-interval", "1s",
                   "localhost/bench-busybox", "sleep", "100000")
        time.sleep(2)
        checked = cpu_over(daemon.pid, opts.window)
        status = daemon.cli("inspect", "-f", "{{.State.Health.Status}}", "checked").stdout.strip()
        daemon.cli("rm", "-f", "idle", "checked")
        per_check = (checked - idle) / opts.window
        lines = [
            SECTION,
            "",
            f"`bench/bench_compose.py`, {common.machine_line()}; a two-service stack, median of "
            f"{opts.runs} runs of the whole client process (the installed `#!python3 -IS` script).",
            "",
            "| what | median (ms) |",
            "|---|---|",
            *[f"| {label} | {ms:.1f} |" for label, ms in rows],
            "",
            f"tcrd CPU over {opts.window:.0f} s with one running container: {idle:.1f} ms without a health "
            f"check; {checked:.1f} ms with one `--health-cmd true --health-interval 1s` (status {status}), "
            f"i.e. about {per_check:.1f} ms of CPU per check (fork of the worker + `crun exec`, counted "
            "in tcrd's children time). Without a check there is no timer and no health code is imported.",
            "",
        ]
        text = "\n".join(lines)
        print(text)
        if not opts.no_write:
            common.write_section(SECTION[3:], text)
    finally:
        for problem in daemon.cleanup():
            print(f"cleanup: {problem}", file=sys.stderr)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
