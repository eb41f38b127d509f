"""Scale: CLI latency with 50 images and 20 containers, and the time tcrd needs to start serving
with 100 images and 50 containers on disk.

1. Populate a private tcrd with 50 images (distinct ids, the busybox bundle) and 20 created
   containers; time `tcr ps -a` and `tcr image ls` as shipped (`make install`'s `#!python3 -IS`
   script, and what pip makes), --cli-runs interleaved rounds.
2. Grow it to 100 images and 50 containers; restart tcrd --runs times: time from exec to the
   socket accepting, and to the first `image ls` reply. Warm = the images stay mounted across
   the restart (what SIGTERM leaves); cold = every mount under the root removed first, as after a
   reboot, so recovery re-attaches and re-mounts all 100 images (fewer runs).
Target: start serving <= 1 s with 100 images and 50 containers.

    /tmp/tv/bin/python bench/bench_scale.py [--runs 10] [--cli-runs 150] [--images 100] [--containers 50]
        [--no-write]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Metric, median, ms  # noqa: E402

TARGET_S = 1.0

CLI_IMAGES, CLI_CONTAINERS = 50, 20
CACHE_VERSION = "1"


def image_files(n: int) -> List[str]:
    """n distinct busybox images, cached under test/fixtures/cache/ (mksquashfs is the slow part)."""
    common.setup_path()
    from test.fixtures.oci_layout import CACHE

    d = os.path.join(CACHE, f"bench-scale-v{CACHE_VERSION}")
    os.makedirs(d, exist_ok=True)
    bundle = common.busybox_bundle()
    out = []
    for i in range(n):
        p = os.path.join(d, f"scale-{i:03d}.sqfs")
        if not os.path.exists(p):
            common.build_sqfs(p, bundle, common.image_info("tcr-bench/scale", f"v{i:03d}"))
        out.append(p)
    return out


def populate(d: common.BenchDaemon, files: List[str], have_images: int, images: int, have_c: int,
             containers: int) -> None:
    for f in files[have_images:images]:
        d.rpc("image", "load", f)
    for i in range(have_c, containers):
        ref = f"localhost/tcr-bench/scale:v{i % images:03d}"
        d.rpc("create", "--name", f"scale-{i:03d}", "--network", "none", ref, "/bin/true")


CLIENT_PY = "/usr/bin/python3"  # the interpreter a board ships (the venv's adds its .pth files)
DELTA_TARGET_MS = 3.0  # issue 16: within 3 ms of `python3 -I -S -c pass`


# What bin/tcr was before it became a /bin/sh + Python polyglot: pip puts its interpreter on the
# first line (dropping any flag), so site runs. Kept here as the reference row.
PLAIN_PIP_SCRIPT = "import sys\n\nfrom tcr.cli.main import main\n\nsys.exit(main())\n"


def pip_venv(base: str) -> str:
    """A fresh venv of CLIENT_PY (`python3 -m venv`: with pip and setuptools, whose
    distutils-precedence.pth site runs) with tcr installed by its pip from a wheel of this tree
    (offline: --no-index --no-build-isolation; CLIENT_PY's own setuptools and wheel build it)."""
    venv = os.path.join(base, "venv")
    if os.path.exists(venv):
        return venv
    src, wheels = os.path.join(base, "src"), os.path.join(base, "wheels")
    os.makedirs(src)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(os.path.join(common.REPO, name), src)
    for name in ("bin", "target", "host_tools"):
        shutil.copytree(os.path.join(common.REPO, name), os.path.join(src, name),
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    quiet = ["-q", "--no-deps", "--no-index", "--disable-pip-version-check"]
    e = dict(os.environ, PIP_ROOT_USER_ACTION="ignore")
    subprocess.run([CLIENT_PY, "-m", "pip", "wheel", *quiet, "--no-build-isolation", "-w", wheels, src],
                   check=True, env=e)
    subprocess.run([CLIENT_PY, "-m", "venv", venv], check=True)  # as users make one: with pip and setuptools
    wheel = [os.path.join(wheels, f) for f in os.listdir(wheels) if f.endswith(".whl")][0]
    subprocess.run([os.path.join(venv, "bin", "python3"), "-m", "pip", "install", *quiet, wheel], check=True,
                   env=e)
    subprocess.run([os.path.join(venv, "bin", "python3"), "-m", "compileall", "-q", venv], check=True)
    return venv


def client_scripts(d: common.BenchDaemon) -> Dict[str, List[str]]:
    """argv prefixes of the ways the client is installed.

    installed: what `make install` writes (#!python3 -IS, the site directory appended to sys.path).
    pip: what `pip install` makes in a fresh venv, really built and installed by pip: bin/tcr, a
    /bin/sh + Python polyglot that execs the venv's python3 with -I -S. pip, `#!python` script:
    the script bin/tcr was before, with the venv's interpreter on the first line as pip writes it:
    site runs (for reference)."""
    venv = pip_venv(d.base)
    site = subprocess.run([os.path.join(venv, "bin", "python3"), "-c",
                           "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    installed = os.path.join(d.base, "tcr-installed")  # what `make install` writes (Makefile)
    with open(installed, "w") as f:
        f.write(f"#!{CLIENT_PY} -IS\nimport sys\nsys.path.append({site!r})\n"
                "from tcr.cli.main import main\nsys.exit(main())\n")
    plain = os.path.join(venv, "bin", "tcr-plain")
    with open(plain, "w") as f:
        f.write(f"#!{os.path.join(venv, 'bin', 'python3')}\n{PLAIN_PIP_SCRIPT}")
    for p in (installed, plain):
        os.chmod(p, 0o755)
    pip = os.path.join(venv, "bin", "tcr")
    with open(pip) as f:
        if f.readline() != "#!/bin/sh\n":
            raise RuntimeError(f"{pip}: pip rewrote the first line")
    return {"installed": [installed, "--socket", d.socket], "pip": [pip, "--socket", d.socket],
            "pip, #!python script": [plain, "--socket", d.socket]}


def cli_latency(d: common.BenchDaemon, runs: int) -> Dict[str, Dict[str, float]]:
    """The installed clients and the bare interpreter, interleaved, byte-code cached. Per case: the
    median and minimum wall time; the median of its per-round wall-time difference to `python3 -I -S
    -c pass` (each round runs every case back to back); and the median CPU time (user + system, from
    wait4) with its per-round difference: CPU time barely moves with the load of a shared machine,
    where wall time waits in the run queue (tcrd's ~0.3 ms for the RPC is not in the client's CPU
    time). No PYTHONPATH: each finds the package where it was installed."""
    env = common.env()
    venv_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    cpu: Dict[str, List[float]] = {}

    def case(label: str, argv: List[str], e: Dict[str, str]):
        def go() -> float:
            wall, used = common.run_timed(argv, e, label)
            cpu.setdefault(label, []).append(used)
            return wall
        return go

    scripts = client_scripts(d)
    bare = "python3 -I -S -c pass"
    cases = {bare: case(bare, [CLIENT_PY, "-I", "-S", "-c", "pass"], env),
             "python3 -c pass": case("python3 -c pass", [CLIENT_PY, "-c", "pass"], env)}
    for cmd in (("ps", "-a"), ("image", "ls")):
        for how, argv in scripts.items():
            label = f"{how}: tcr {' '.join(cmd)}"
            cases[label] = case(label, [*argv, *cmd], venv_env)
    res = common.interleave(cases, runs=runs, warmup=2)
    floor = res["python3 -I -S -c pass"]
    cfloor = cpu["python3 -I -S -c pass"][-runs:]
    out = {}
    for k, v in res.items():
        c = cpu[k][-runs:]  # the warm-up rounds come first
        out[k] = {"median": median(v), "min": min(v), "delta": median([a - b for a, b in zip(v, floor)]),
                  "cpu": median(c), "cpu_delta": median([a - b for a, b in zip(c, cfloor)])}
    return out


def restart_times(d: common.BenchDaemon, runs: int, cold: bool) -> Dict[str, List[float]]:
    listen, first = [], []
    for _ in range(runs):
        rc = d.stop()
        if rc not in (0, None):
            raise RuntimeError(f"tcrd exited with {rc}:\n{d.log()}")
        if cold:
            common.force_clean(d.root)  # what a reboot does to the loop mounts and overlays
        t_listen = d.start(timeout=120)
        t0 = time.perf_counter()
        d.rpc("image", "ls")
        listen.append(t_listen)
        first.append(t_listen + time.perf_counter() - t0)
    return {"listen": listen, "first": first}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--cli-runs", type=int, default=150, help="rounds of the interleaved CLI start-up")
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    common.need_root()
    t0 = time.perf_counter()
    files = image_files(args.images)
    print(f"{len(files)} images ready ({time.perf_counter() - t0:.1f} s)", flush=True)
    work = tempfile.mkdtemp(prefix=f"tcr-bench-scale-{os.getpid()}-", dir="/var/tmp")
    d = common.BenchDaemon(os.path.join(work, "tcrd"))
    problems: List[str] = []
    try:
        empty_start = d.start()
        ni, nc = min(CLI_IMAGES, args.images), min(CLI_CONTAINERS, args.containers)
        populate(d, files, 0, ni, 0, nc)
        load = "/".join(f"{x:.2f}" for x in os.getloadavg())
        cli = cli_latency(d, args.cli_runs)
        print(f"CLI with {ni} images / {nc} containers: "
              + ", ".join(f"{k} {ms(v['median'])} (+{v['delta'] * 1000:.1f} ms; "
                          f"CPU +{v['cpu_delta'] * 1000:.1f} ms)" for k, v in cli.items()))
        t0 = time.perf_counter()
        populate(d, files, ni, args.images, nc, args.containers)
        print(f"populated {args.images} images / {args.containers} containers "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
        warm = restart_times(d, args.runs, cold=False)
        cold = restart_times(d, args.cold_runs, cold=True) if args.cold_runs else {"listen": [], "first": []}
        n_img = len(d.rpc("image", "ls", "-q")["stdout"].split())
        n_ctr = len(d.rpc("ps", "-aq")["stdout"].split())
    finally:
        problems += d.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    for p in problems:
        print(f"cleanup: {p}", file=sys.stderr)
    w_first = median(warm["first"])
    c_first = median(cold["first"]) if cold["first"] else None
    print(f"tcrd start, empty root: {ms(empty_start)}")
    print(f"tcrd start with {n_img} images / {n_ctr} containers: warm listen {ms(median(warm['listen']))}, "
          f"first reply {ms(w_first)}" + (f"; cold first reply {ms(c_first)}" if c_first else ""))
    worst = max(w_first, c_first or 0.0)
    metrics = [Metric("scale", f"tcrd start to first reply, {n_img} images / {n_ctr} containers "
                      f"({'cold' if c_first else 'warm'})", ms(worst), f"<= {TARGET_S * 1000:.0f} ms",
                      worst <= TARGET_S and n_img == args.images and n_ctr == args.containers,
                      f"warm restart {ms(w_first)}; empty root {ms(empty_start)}")]
    site_cost = cli["python3 -c pass"]["cpu_delta"]
    for k, v in cli.items():
        if k.startswith("python3"):
            continue
        delta = v["cpu_delta"] * 1000
        how, cmd = k.split(": ", 1)
        metrics.append(Metric("scale", f"`{cmd}` ({how}) with {ni} images / "
                              f"{nc} containers, over `python3 -I -S -c pass` (CPU time)", f"+{delta:.1f} ms",
                              f"<= {DELTA_TARGET_MS:.0f} ms",
                              None if "#!python" in how else delta <= DELTA_TARGET_MS,
                              f"wall: +{v['delta'] * 1000:.1f} ms (median of rounds), minimums +"
                              f"{(v['min'] - cli['python3 -I -S -c pass']['min']) * 1000:.1f} ms"
                              + ("; the script before bin/tcr's -I -S (site runs): reference"
                                 if "#!python" in how else "")))
    common.record("scale", metrics)
    if not args.no_write:
        rows = [["empty root", ms(empty_start), "", ""],
                [f"{n_img} images / {n_ctr} containers, warm (mounts kept)", ms(median(warm["listen"])),
                 ms(w_first), f"{len(warm['first'])}"]]
        if c_first is not None:
            rows.append([f"{n_img} images / {n_ctr} containers, cold (all mounts gone)",
                         ms(median(cold["listen"])), ms(c_first), f"{len(cold['first'])}"])
        lines = [
            "## Scale",
            "",
            "`bench/bench_scale.py`: a private tcrd populated through the RPC with distinct busybox images",
            "and created (not running) containers.",
            "",
            f"CLI start-up with {ni} images and {nc} containers, interleaved with the bare interpreter, "
            f"byte-code cached, {args.cli_runs} rounds ({CLIENT_PY}; load average {load}). `installed`: the "
            "`#!python3 -IS` script `make install` writes; `pip`: what `pip install` makes in a fresh venv "
            "(`python3 -m venv`, with pip and setuptools; tcr built into a wheel and installed by its pip, "
            "offline): bin/tcr, a /bin/sh + Python polyglot whose "
            "first line pip leaves alone, which execs the venv's python3 with -I -S and puts its site "
            "directory on sys.path itself (docs/profile.md, \"The client\"); `pip, #!python script`: the "
            "script bin/tcr was before, as pip installs it (its interpreter on the first line, flags "
            "dropped, so site runs), for reference. This machine is shared "
            "with other work (load average often > 10 on 2 cores), where wall time mostly measures the "
            "run queue: the verdict uses CPU time (user + system of the client process, from wait4), "
            "the median of its per-round difference to the bare interpreter (every round runs all "
            "cases back to back); wall-time medians, minimums and per-round differences are shown "
            "too (tcrd's ~0.3 ms for the RPC is in the wall time only). Target: within "
            f"{DELTA_TARGET_MS:.0f} ms of `python3 -I -S -c pass`.",
            "",
            common.table(["case", "wall median", "wall min", "wall over `-I -S` (rounds)", "CPU median",
                          "CPU over `-I -S` (rounds)"],
                         [[f"`{k}`", ms(v["median"]), ms(v["min"]), f"+{v['delta'] * 1000:.1f} ms",
                           ms(v["cpu"]), f"+{v['cpu_delta'] * 1000:.1f} ms"] for k, v in cli.items()]),
            "",
            "Site (`python3 -c pass` over `-I -S`, CPU: this machine's dist-packages .pth files) costs "
            f"{site_cost * 1000:.1f} ms here; in a venv it is the venv's paths and .pth files (~19 ms "
            "in a development venv with editable installs). Boards use the `make install` script "
            "(Buildroot and Yocto recipes).",
            "",
            f"tcrd start (exec to socket accepting / to the first `image ls` reply), target <= "
            f"{TARGET_S * 1000:.0f} ms:",
            "",
            common.table(["state on disk", "listening", "first reply", "runs"], rows),
            "",
        ]
        common.write_section("Scale", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
