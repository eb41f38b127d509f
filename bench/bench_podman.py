"""Container start: `tcr run --rm IMG /bin/true` vs `podman run --rm IMG /bin/true`, same image,
same machine, interleaved: with no network and with each tool's default NAT bridge network.

tcr runs the busybox test image (test/fixtures) on a private tcrd; podman gets the same OCI
layout copied offline into private containers-storage with skopeo, and runs with private
storage/run dir/network config (bench.common.Podman; its default bridge uses 10.213.77.0/24 so
it cannot clash with tcr's 10.88.x.0/24). Both are timed as the real CLI process, end to end
(tcr: the client as `make install` ships it, `#!python3 -IS`).
Target: tcr with network <= 0.2x podman with network.

    /tmp/tv/bin/python bench/bench_podman.py [--runs 10] [--warmup 2] [--no-write]
"""

import argparse
import os
import shutil
import sys
import tempfile
from typing import List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Metric, median, ms  # noqa: E402

TARGET = 0.2
IMAGE = "localhost/tcr-bench/busybox:latest"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    common.need_root()
    common.ensure_apt({"podman": "podman"})
    work = tempfile.mkdtemp(prefix=f"tcr-bench-podman-{os.getpid()}-", dir="/var/tmp")
    daemon = common.BenchDaemon(os.path.join(work, "tcrd"))
    podman = common.Podman(os.path.join(work, "podman"))
    problems: List[str] = []
    try:
        img = common.build_sqfs(os.path.join(work, "busybox.sqfs"), common.busybox_bundle(),
                                common.image_info("tcr-bench/busybox"))
        daemon.start()
        daemon.rpc("image", "load", img)
        common.sh(["skopeo", "copy", "-q", f"oci:{common.busybox_layout()}:latest",
                   podman.storage_ref(IMAGE)])
        cmd = (IMAGE, "/bin/true")
        pod = ("run", *podman.run_opts, "--rm")
        cases = {
            "tcr none": lambda: daemon.cli("run", "--rm", "--network", "none", *cmd),
            "podman none": lambda: podman.run(*pod, "--network", "none", *cmd),
            "tcr net": lambda: daemon.cli("run", "--rm", *cmd),
            "podman net": lambda: podman.run(*pod, "--network", "bridge", *cmd),
        }
        res = common.interleave(cases, runs=args.runs, warmup=args.warmup)
    finally:
        problems += daemon.cleanup()
        problems += podman.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    for p in problems:
        print(f"cleanup: {p}", file=sys.stderr)
    med = {k: median(v) for k, v in res.items()}
    r_net = med["tcr net"] / med["podman net"]
    r_none = med["tcr none"] / med["podman none"]
    for k, v in med.items():
        print(f"{k:12s} {ms(v)}")
    print(f"tcr/podman: network {r_net:.2f}x, none {r_none:.2f}x")
    common.record("podman", [
        Metric("podman", "`tcr run --rm` / `podman run --rm` (bridge network)", f"{r_net:.2f}x",
               f"<= {TARGET}x", r_net <= TARGET, f"{ms(med['tcr net'])} vs {ms(med['podman net'])}"),
        Metric("podman", "`tcr run --rm` / `podman run --rm` (--network none)", f"{r_none:.2f}x", "", None,
               f"{ms(med['tcr none'])} vs {ms(med['podman none'])}"),
    ])
    if not args.no_write:
        lines = [
            "## Start vs podman",
            "",
            f"`bench/bench_podman.py`: `run --rm IMG /bin/true`, real CLI processes end to end, median of "
            f"{args.runs} runs after {args.warmup} warm-up, the four cases interleaved. Same busybox OCI",
            "image (podman: skopeo into private containers-storage, overlay driver, crun, netavark; "
            "its default bridge network on 10.213.77.0/24).",
            "",
            common.table(["network", "tcr", "podman", "tcr / podman", "target"], [
                ["none", ms(med["tcr none"]), ms(med["podman none"]), f"{r_none:.2f}x", ""],
                ["default bridge (NAT)", ms(med["tcr net"]), ms(med["podman net"]), f"{r_net:.2f}x",
                 f"<= {TARGET}x"],
            ]),
            "",
        ]
        common.write_section("Start vs podman", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
