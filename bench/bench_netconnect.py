"""`tcr network connect` / `disconnect` of a running container: what each costs end to end.

Starts its own tcrd (private root, socket and run dir; needs root), loads the bench busybox image,
makes a second network and runs one container on the default network, then measures the median
wall time of the whole client process for `network connect NET CTR` and `network disconnect NET
CTR`, alternated (each connect is followed by its disconnect), with `tcr ps` as the client's
baseline. The connect plumbs a veth into the container's namespace (address, up), writes the
network record, applies the nft ruleset in one transaction and updates the DNS names; the
disconnect deletes the veth before it answers (the kernel's RCU wait is in the number).
Writes the `## network connect` section of docs/benchmarks.md (only that section).

    sudo python3 bench/bench_netconnect.py [--runs N] [--no-write]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

SECTION = "## network connect"


def timed_ms(argv, cwd: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=common.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True, stdin=subprocess.DEVNULL, cwd=cwd)
    return (time.perf_counter() - t0) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    opts = ap.parse_args()
    common.need_root()
    base = tempfile.mkdtemp(prefix=f"tcr-bench-netconn-{os.getpid()}-", dir="/tmp")
    daemon = common.BenchDaemon(base)
    daemon.start()
    try:
        img = common.build_sqfs(os.path.join(base, "bb.sqfs"), common.busybox_bundle(),
                                common.image_info("bench-busybox"))
        daemon.cli("image", "load", img)
        daemon.cli("network", "create", "benchnet")
        daemon.cli("run", "-d", "--name", "other", "--network", "benchnet", "localhost/bench-busybox",
                   "sleep", "100000")
        daemon.cli("run", "-d", "--name", "ctr", "localhost/bench-busybox", "sleep", "100000")
        tcr = daemon.client_argv()
        connect, disconnect, ps = [], [], []
        for i in range(opts.runs + 1):  # the first round warms the byte-code and page caches
            c = timed_ms([*tcr, "network", "connect", "benchnet", "ctr"], base)
            d = timed_ms([*tcr, "network", "disconnect", "benchnet", "ctr"], base)
            p = timed_ms([*tcr, "ps"], base)
            if i:
                connect.append(c)
                disconnect.append(d)
                ps.append(p)
        daemon.cli("rm", "-f", "ctr", "other")
        rows = [("`network connect benchnet ctr` (running container: veth, address, nft, DNS)", connect),
                ("`network disconnect benchnet ctr` (veth deleted before the reply)", disconnect),
                ("(baseline) `tcr ps`", ps)]
        lines = [
            SECTION,
            "",
            f"`bench/bench_netconnect.py`, {common.machine_line()}; median (min-max) of {opts.runs} runs "
            "of the whole client process, connect and disconnect alternated on one running container.",
            "",
            "| what | median (ms) | min-max (ms) |",
            "|---|---|---|",
            *[f"| {label} | {statistics.median(xs):.1f} | {min(xs):.1f}-{max(xs):.1f} |"
              for label, xs in rows],
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
