#!/usr/bin/env python3
"""Build time: tcr-create-image vs the raw pipeline of the C tool (skopeo copy + umoci unpack +
mksquashfs -comp zstd), on the same ~100 MB OCI image, medians of interleaved runs.

Run as root (umoci unpack needs it; tcr-create-image does not):
    python3 bench/bench_build.py [--runs 3] [--size-mb 100] [--no-write]
Writes the result under "## Build (tcr-create-image)" in docs/benchmarks.md (only that section).
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADING = "## Build (tcr-create-image)"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

DATA_VERSION = "1"
LEVEL = 15  # zstd level for both (mksquashfs' and tar2sqfs' default)

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda",
         "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega",
         "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "was", "on"]


def _content(rnd: random.Random, size: int) -> bytes:
    """Half the files random (incompressible), half text-like (compressible), like real images."""
    if rnd.random() < 0.5:
        return rnd.randbytes(size)
    out = io.StringIO()
    n = 0
    while n < size:
        w = rnd.choice(WORDS) + (" " if rnd.random() < 0.9 else "\n")
        out.write(w)
        n += len(w)
    return out.getvalue().encode()[:size]


def _layer(path: str, rnd: random.Random, budget: int, prefix: str) -> str:
    """Write a gzip layer to path; returns its diff_id (sha256 of the uncompressed tar)."""
    raw = path + ".tar"
    with tarfile.open(raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        used = 0
        i = 0
        dirs = [f"{prefix}/d{j}" for j in range(40)]
        for d in dirs:
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1700000000
            tf.addfile(ti)
        while used < budget:
            size = rnd.choice([rnd.randint(100, 8_000)] * 6 + [rnd.randint(8_000, 200_000)] * 3
                              + [rnd.randint(1_000_000, 6_000_000)])
            size = min(size, budget - used) or 1
            data = _content(rnd, size)
            ti = tarfile.TarInfo(f"{rnd.choice(dirs)}/f{i}.bin")
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1700000000
            ti.uid = ti.gid = 1000 if i % 7 == 0 else 0
            tf.addfile(ti, io.BytesIO(data))
            used += size
            i += 1
    h = hashlib.sha256()
    with open(raw, "rb") as src, gzip.open(path, "wb", compresslevel=6) as gz:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            h.update(chunk)
            gz.write(chunk)
    os.unlink(raw)
    return f"sha256:{h.hexdigest()}"


def _blob(layout: str, path_or_bytes) -> dict:
    if isinstance(path_or_bytes, bytes):
        data = path_or_bytes
        digest = hashlib.sha256(data).hexdigest()
        dest = os.path.join(layout, "blobs", "sha256", digest)
        with open(dest, "wb") as f:
            f.write(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}
    h = hashlib.sha256()
    with open(path_or_bytes, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    dest = os.path.join(layout, "blobs", "sha256", h.hexdigest())
    os.rename(path_or_bytes, dest)
    return {"digest": f"sha256:{h.hexdigest()}", "size": os.path.getsize(dest)}


def make_layout(dest: str, size_mb: int) -> str:
    """A two-layer OCI layout with ~size_mb MB of file content (cached by size and version)."""
    if os.path.exists(os.path.join(dest, "index.json")):
        return dest
    tmp = dest + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "blobs", "sha256"))
    rnd = random.Random(1234)
    layers, diff_ids = [], []
    for n, share in ((0, 0.7), (1, 0.3)):
        p = os.path.join(tmp, f"layer{n}.tar.gz")
        diff_ids.append(_layer(p, rnd, int(size_mb * 1e6 * share), f"opt/l{n}"))
        layers.append(dict(_blob(tmp, p), mediaType="application/vnd.oci.image.layer.v1.tar+gzip"))
    cfg = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
           "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cdesc = dict(_blob(tmp, json.dumps(cfg).encode()), mediaType="application/vnd.oci.image.config.v1+json")
    man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cdesc,
           "layers": layers}
    mdesc = dict(_blob(tmp, json.dumps(man).encode()), mediaType="application/vnd.oci.image.manifest.v1+json",
                 annotations={"org.opencontainers.image.ref.name": "latest"})
    with open(os.path.join(tmp, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(tmp, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [mdesc]}, f)
    os.rename(tmp, dest)
    return dest


def _sh(argv, **kw):
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, **kw)


def run_raw(layout: str, work: str) -> float:
    """The C tool's pipeline (host_tools/tcr-create-image.sh), minus its prints."""
    w = os.path.join(work, "raw")
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(os.path.join(w, "stage"))
    out = os.path.join(work, "raw.sqfs")
    t0 = time.perf_counter()
    policy = [] if os.path.exists("/etc/containers/policy.json") else ["--insecure-policy"]
    _sh(["skopeo", *policy, "copy", "--quiet", f"oci:{layout}:latest", f"oci:{w}/oci:latest"])
    _sh(["umoci", "unpack", "--image", f"{w}/oci:latest", f"{w}/stage/bundle"])
    with open(os.path.join(w, "stage", "image-info.json"), "w") as f:
        json.dump({"version": 1, "image": {"registry": "localhost", "repository": "bench", "tag": "latest",
                                           "digest": "sha256:" + "0" * 64, "arch": "amd64"},
                   "bundlePath": "bundle", "created": int(time.time())}, f)
    _sh(["mksquashfs", f"{w}/stage", out, "-noappend", "-comp", "zstd", "-Xcompression-level", str(LEVEL),
         "-quiet"])
    shutil.rmtree(w)
    return time.perf_counter() - t0


def run_tcr(layout: str, work: str) -> float:
    out = os.path.join(work, "tcr.sqfs")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "target"),
                                                        os.path.join(ROOT, "host_tools")]))
    t0 = time.perf_counter()
    _sh([sys.executable, "-m", "tcr_host.cli", f"oci:{layout}:latest", "-o", out, "-f", "-q",
         "--comp-level", str(LEVEL)], env=env)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mb", type=int, default=100)
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_build: needs root for the baseline's `umoci unpack`", file=sys.stderr)
        return 2
    # a cache kept between runs, inside the checkout's ignored build/ dir (not in /tmp)
    cache = os.path.join(ROOT, "build", "bench", f"build-layout-v{DATA_VERSION}-{a.size_mb}mb")
    t0 = time.perf_counter()
    layout = make_layout(cache, a.size_mb)
    print(f"layout {layout} ready ({time.perf_counter() - t0:.1f}s)")
    work = tempfile.mkdtemp(prefix="tcr-bench-build-")
    raw, ours = [], []
    try:
        run_tcr(layout, work)  # warm the page cache for both
        for i in range(a.runs):  # interleaved, alternating who goes first
            order = (run_raw, run_tcr) if i % 2 == 0 else (run_tcr, run_raw)
            for fn in order:
                (raw if fn is run_raw else ours).append(fn(layout, work))
            print(f"run {i + 1}: raw {raw[-1]:.2f}s  tcr {ours[-1]:.2f}s")
        raw_size = os.path.getsize(os.path.join(work, "raw.sqfs"))
        tcr_size = os.path.getsize(os.path.join(work, "tcr.sqfs"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    content = sum(os.path.getsize(os.path.join(layout, "blobs", "sha256", f))
                  for f in os.listdir(os.path.join(layout, "blobs", "sha256")))
    mr, mt = statistics.median(raw), statistics.median(ours)
    ratio = mt / mr
    verdict = "meets" if ratio <= 1.1 else "misses"
    print(f"median raw {mr:.2f}s, tcr-create-image {mt:.2f}s, ratio {ratio:.2f}x ({verdict} the 1.1x target)")
    text = f"""Image: {a.size_mb} MB of file content in 2 gzip layers ({content / 1e6:.0f} MB of blobs), \
half random and half text-like data, from a local OCI layout. zstd level {LEVEL} for both. \
{os.cpu_count()} CPUs.
Medians of {a.runs} interleaved runs (`python3 bench/bench_build.py`, as root).

| pipeline | median wall time | output size |
|---|---|---|
| raw: `skopeo copy` + `umoci unpack` (root) + `mksquashfs -comp zstd` | {mr:.2f} s | \
{raw_size / 1e6:.1f} MB |
| `tcr-create-image oci:DIR:latest` (no root) | {mt:.2f} s | {tcr_size / 1e6:.1f} MB |

Ratio tcr-create-image / raw: **{ratio:.2f}x** (target <= 1.1x: {verdict}).
All runs (s): raw {', '.join(f'{x:.2f}' for x in raw)}; tcr {', '.join(f'{x:.2f}' for x in ours)}.
"""
    if not a.no_write:
        common.write_section(HEADING[3:], HEADING + "\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
