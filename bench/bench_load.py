"""Image load: `tcr image load` vs `podman load` of the same ~100 MB image, and tcr's load time
from 10 MB to 500 MB. tcr copies the file into its root-only store (reflink or copy_file_range
where the filesystem offers it), hashes it and loop-mounts it; the squashfs is never unpacked.
`--move` and the per-mode numbers (copy / reflink / --move) are in bench/bench_store.py.

The image is the test busybox bundle plus one file of random data. For podman the same rootfs is
repacked with umoci into an OCI layout and exported with skopeo as a docker-archive; podman runs
on private storage (bench.common.Podman). Each round removes what the load made (untimed).
Medians of --runs rounds after --warmup, tcr and podman interleaved.

    /tmp/tv/bin/python bench/bench_load.py [--runs 10] [--warmup 1] [--sizes 10,100,500] [--no-write]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Metric, median, ms  # noqa: E402

MB = 1 << 20
PODMAN_SIZE = 100
TARGET_MS = 25.0
TARGET_RATIO = 40.0


def make_images(work: str, sizes: List[int], podman_size: int) -> Dict[str, str]:
    """{'sqfs-N': path, 'tar-N': path}: the squashfs for every size, the docker-archive for podman_size."""
    base = common.busybox_bundle()
    out = {}
    for size in sizes:
        stage = os.path.join(work, f"stage-{size}")
        bundle = os.path.join(stage, "bundle")
        shutil.copytree(base, bundle, symlinks=True)
        data = os.path.join(bundle, "rootfs", "data")
        os.makedirs(data, exist_ok=True)
        common.write_random(os.path.join(data, "blob.bin"), size * MB)
        if size == podman_size:
            out[f"tar-{size}"] = docker_archive(work, bundle, size)
        t0 = time.perf_counter()
        # Random data does not compress: skip the attempt (the load never reads the data anyway).
        out[f"sqfs-{size}"] = common.build_sqfs(os.path.join(work, f"load-{size}.sqfs"), bundle,
                                                common.image_info(f"tcr-bench/load{size}"), compress=False)
        print(f"built {size} MB image in {time.perf_counter() - t0:.1f} s", flush=True)
        shutil.rmtree(stage)
    return out


def docker_archive(work: str, bundle: str, size: int) -> str:
    """The same rootfs as a docker-archive: umoci repack onto a copy of the busybox layout."""
    layout = os.path.join(work, f"oci-{size}")
    shutil.copytree(common.busybox_layout(), layout, symlinks=True)
    common.sh(["umoci", "repack", "--image", f"{layout}:latest", bundle])
    tar = os.path.join(work, f"load-{size}.tar")
    common.sh(["skopeo", "copy", "-q", f"oci:{layout}:latest",
               f"docker-archive:{tar}:localhost/tcr-bench/load{size}:latest"])
    shutil.rmtree(layout)
    return tar


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--sizes", default="10,100,500", help="image sizes in MB (podman: 100)")
    ap.add_argument("--no-podman", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    common.need_root()
    sizes = sorted({int(x) for x in args.sizes.split(",")} | {PODMAN_SIZE})
    use_podman = not args.no_podman and common.have("podman")
    work = tempfile.mkdtemp(prefix=f"tcr-bench-load-{os.getpid()}-", dir="/var/tmp")
    daemon = common.BenchDaemon(os.path.join(work, "tcrd"))
    podman = common.Podman(os.path.join(work, "podman")) if use_podman else None
    problems: List[str] = []
    try:
        images = make_images(work, sizes, PODMAN_SIZE if use_podman else -1)
        daemon.start()
        refs = {s: f"localhost/tcr-bench/load{s}:latest" for s in sizes}

        def tcr_cli(size: int):
            return lambda: daemon.cli("image", "load", images[f"sqfs-{size}"])

        def tcr_rpc(size: int):
            def f() -> float:
                t0 = time.perf_counter()
                daemon.rpc("image", "load", images[f"sqfs-{size}"])
                return time.perf_counter() - t0
            return f

        def undo(label: str) -> None:
            if label.startswith("podman"):
                assert podman is not None
                podman.run("rmi", "-f", refs[PODMAN_SIZE])
            else:
                size = int(label.split()[-1].rstrip("MB"))
                daemon.rpc("image", "rm", refs[size])

        # 1. tcr vs podman, 100 MB, through the real command-line clients.
        cases = {f"tcr cli {PODMAN_SIZE}MB": tcr_cli(PODMAN_SIZE)}
        if podman is not None:
            tar = images[f"tar-{PODMAN_SIZE}"]
            cases["podman load"] = lambda: podman.run("load", "-q", "-i", tar)
        vs = common.interleave(cases, runs=args.runs, warmup=args.warmup, between=undo)
        # 2. tcr alone over the sizes: in-process RPC (the daemon's work) and the CLI.
        sweep_cases = {}
        for s in sizes:
            sweep_cases[f"tcr rpc {s}MB"] = tcr_rpc(s)
            sweep_cases[f"tcr cli {s}MB"] = tcr_cli(s)
        sweep = common.interleave(sweep_cases, runs=args.runs, warmup=args.warmup, between=undo)
        private = check_private(daemon, images[f"sqfs-{PODMAN_SIZE}"], refs[PODMAN_SIZE])
    finally:
        problems += daemon.cleanup()
        if podman is not None:
            problems += podman.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    for p in problems:
        print(f"cleanup: {p}", file=sys.stderr)

    tcr_med = median(vs[f"tcr cli {PODMAN_SIZE}MB"])
    pod_med = median(vs["podman load"]) if "podman load" in vs else None
    ratio = pod_med / tcr_med if pod_med else None
    rpc = {s: median(sweep[f"tcr rpc {s}MB"]) for s in sizes}
    cli = {s: median(sweep[f"tcr cli {s}MB"]) for s in sizes}
    print(f"tcr image load {PODMAN_SIZE} MB (cli): {ms(tcr_med)}" +
          (f"; podman load: {ms(pod_med)}; podman/tcr = {ratio:.0f}x" if pod_med and ratio else ""))
    for s in sizes:
        print(f"  {s:4d} MB: rpc {ms(rpc[s])}  cli {ms(cli[s])}")
    metrics = [
        Metric("load", f"`tcr image load` {PODMAN_SIZE} MB (CLI, end to end)", ms(tcr_med),
               f"<= {TARGET_MS:.0f} ms", tcr_med * 1000 <= TARGET_MS,
               f"daemon side (RPC) {ms(rpc[PODMAN_SIZE])}"),
    ]
    if ratio is not None:
        metrics.insert(1, Metric("load", f"`podman load` / `tcr image load` ({PODMAN_SIZE} MB)",
                                 f"{ratio:.0f}x", f">= {TARGET_RATIO:.0f}x", ratio >= TARGET_RATIO,
                                 f"{ms(pod_med or 0.0)} vs {ms(tcr_med)}"))
    common.record("load", metrics)
    if not args.no_write:
        write(args, sizes, tcr_med, pod_med, ratio, rpc, cli, private)
    return 0


def check_private(daemon: common.BenchDaemon, src: str, ref: str) -> bool:
    """Did the load give the store its own inode (the user's file keeps one link)?"""
    daemon.rpc("image", "load", src)
    try:
        return os.stat(src).st_nlink == 1
    finally:
        daemon.rpc("image", "rm", ref)


def write(args, sizes, tcr_med, pod_med, ratio, rpc, cli, private) -> None:
    lines = [
        "## Image load",
        "",
        f"`bench/bench_load.py`: median of {args.runs} runs after {args.warmup} warm-up, A/B interleaved; "
        "every run removes the image again (untimed). The image is the busybox bundle plus a file of",
        "random data; podman loads the same rootfs as a docker-archive (skopeo), on private storage.",
        "CLI = the real client process end to end (`tcr` as `make install` ships it: `#!python3 -IS`);",
        "RPC = the same request sent in-process (the daemon's work, without the client's start-up).",
        "tcr copies the file into its root-only store and checks it (docs/image_manager.md): the time",
        "grows with the size; `--move` is O(1) (bench/bench_store.py, \"Image store\" below).",
        f"The store holds its own inode (not a hard link to the user's file): {'yes' if private else 'NO'}.",
        "",
        common.table(["case", "median", "target"], [
            [f"`tcr image load` {PODMAN_SIZE} MB (CLI)", ms(tcr_med), f"<= {TARGET_MS:.0f} ms"],
            [f"`podman load` {PODMAN_SIZE} MB docker-archive", ms(pod_med) if pod_med else "n/a", ""],
            ["podman / tcr", f"{ratio:.0f}x" if ratio else "n/a", f">= {TARGET_RATIO:.0f}x"],
        ]),
        "",
        common.table(["image size", "tcr load (RPC)", "tcr load (CLI)"],
                     [[f"{s} MB", ms(rpc[s]), ms(cli[s])] for s in sizes]),
        "",
    ]
    common.write_section("Image load", "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
