"""Footprint: tcrd resident memory idle (image loaded, default network up), with 10 running
containers, and after they are removed; wake-ups over 60 s with containers running and no client;
what the daemon imports and what each import costs; the installed size of the package.

tcrd runs as a board runs it: `python3 -I -S` (bench/common.tcrd_command) with the package from
tcr.zip as `make install BYTECODE_ONLY=1` builds it for Buildroot and Yocto (host_tools/tcr_host/
boardzip.py); a second tcrd from the source tree (.pyc as compileall writes them, what a plain
`make install` or pip leaves) is measured idle for reference. Memory = the sum of VmRSS of
tcr's own processes: tcrd and any descendant running the same Python interpreter (workers; crun and
the containers' processes are not counted; they are listed). PSS (smaps_rollup) is shown too.

Wake-ups: tcrd's scheduler run count (/proc/PID/schedstat, 3rd field: times it got a CPU) and its
context switches (/proc/PID/status), before and after 60 s with 10 containers running and no client.

Imports: the modules the daemon holds (hidden `tcr _modules`), re-imported in a fresh `-I -S`
interpreter one at a time in load order, adding up the VmRSS and tracemalloc growth per group;
self times from a second tcrd under `-X importtime`.

    /work/main/.venv/bin/python bench/bench_memory.py [--containers 10] [--idle-seconds 60] [--no-write]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Metric  # noqa: E402

IMAGE = "localhost/tcr-bench/busybox:latest"
TARGET_IDLE_MB = 12.0
TARGET_10_MB = 14.0
TARGET_BACK_MB = 1.0  # after the containers are removed: within this of idle


def pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for ln in f:
                if ln.startswith("Pss:"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return 0


def footprint(tcrd_pid: int) -> Dict[str, Any]:
    """tcr's own processes (tcrd + descendants running our interpreter) and the others."""
    py = os.path.realpath(sys.executable)
    own: List[int] = [tcrd_pid]
    others: List[int] = []
    for p in common.descendants(tcrd_pid):
        (own if os.path.realpath(common.exe(p) or "/") == py else others).append(p)
    rss = pss = anon = rfile = 0
    for p in own:
        try:
            st = common.proc_status(p)
        except OSError:
            continue
        rss += int(st.get("VmRSS", "0 kB").split()[0])
        anon += int(st.get("RssAnon", "0 kB").split()[0])
        rfile += int(st.get("RssFile", "0 kB").split()[0])
        pss += pss_kb(p)
    names = []
    for p in others:
        try:
            names.append(common.proc_status(p).get("Name", "?"))
        except OSError:
            pass
    return {"rss_kb": rss, "anon_kb": anon, "file_kb": rfile, "pss_kb": pss, "own": len(own),
            "others": sorted(names)}


def settle_sample(pid: int, n: int = 5) -> Dict[str, Any]:
    samples = []
    for _ in range(n):
        time.sleep(0.2)
        samples.append(footprint(pid))
    return sorted(samples, key=lambda s: int(s["rss_kb"]))[n // 2]


def board_zip(work: str) -> str:
    """tcr.zip as `make install BYTECODE_ONLY=1` builds it (the board's package)."""
    out = os.path.join(work, "tcr.zip")
    subprocess.run([sys.executable, os.path.join(common.REPO, "host_tools", "tcr_host", "boardzip.py"),
                    os.path.join(common.TARGET, "tcr"), out,
                    "--prefix", "/usr/lib/python3/site-packages/tcr.zip"],
                   check=True, capture_output=True, timeout=300)
    return out


def source_idle(work: str, img: str) -> Dict[str, Any]:
    """Idle footprint of a tcrd running the source tree's .pyc (same workload)."""
    d = common.BenchDaemon(os.path.join(work, "tcrd-source"))
    try:
        d.start()
        workload(d, img)
        return settle_sample(d.pid)
    finally:
        for p in d.cleanup():
            print(f"cleanup (source tcrd): {p}", file=sys.stderr)


def workload(d: common.BenchDaemon, img: str) -> None:
    d.rpc("image", "load", img)
    d.cli("run", "--rm", "--network", "none", IMAGE, "/bin/true")
    d.cli("run", "--rm", IMAGE, "/bin/true")  # brings the default network (bridge, nft, DNS) up


def common_requests(d: common.BenchDaemon) -> None:
    """Every common command once (their handlers and helpers load on first use: the idle row
    does not pay for them, this row shows what a daemon that served them holds)."""
    d.cli("run", "-d", "--name", "bench-mem-common", IMAGE, "sleep", "3600")
    for args in (("ps", "-a"), ("images",), ("exec", "bench-mem-common", "/bin/true"),
                 ("logs", "bench-mem-common"), ("inspect", "bench-mem-common"),
                 ("stop", "-t", "1", "bench-mem-common"), ("start", "bench-mem-common"),
                 ("restart", "-t", "1", "bench-mem-common"), ("kill", "bench-mem-common"),
                 ("rm", "-f", "bench-mem-common"), ("version",)):
        d.cli(*args)


def isolated(code: str) -> List[str]:
    """argv for a fresh interpreter as tcrd runs (-I -S), with the same sys.path."""
    import site

    path = [common.TARGET, *site.getsitepackages()]
    return [sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = {path!r}\n" + code]


def daemon_modules(d: common.BenchDaemon) -> List[str]:
    """The modules tcrd holds, in load order (hidden `tcr _modules`; worker processes excluded)."""
    return d.rpc("_modules")["stdout"].split()


def import_times(work: str, img: str, held: List[str]) -> List[Tuple[str, int, int]]:
    """(module, self us, cumulative us) from a tcrd under -X importtime running the idle workload.
    Workers write to the same log; only modules the daemon itself holds are kept."""
    d = common.BenchDaemon(os.path.join(work, "tcrd-importtime"), python=["-X", "importtime"])
    try:
        d.start()
        workload(d, img)
    finally:
        probs = d.cleanup()
    for p in probs:
        print(f"cleanup (importtime daemon): {p}", file=sys.stderr)
    keep = set(held)
    out = []
    seen = set()
    with open(d.logfile, errors="replace") as f:
        for ln in f:
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", ln)
            if m and m.group(4) in keep and m.group(4) not in seen:
                seen.add(m.group(4))
                out.append((m.group(4), int(m.group(1)), int(m.group(2))))
    shutil.rmtree(d.base, ignore_errors=True)
    return out


ATTRIBUTE = r"""
import importlib, json, tracemalloc
def rss():
    with open("/proc/self/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
mods = json.loads(sys.argv[1])
tracemalloc.start()
base_rss = rss()
groups = {}
per_mod = []
for mod, group in mods:
    if mod in sys.modules:
        continue
    r0, t0 = rss(), tracemalloc.get_traced_memory()[0]
    try:
        importlib.import_module(mod)
    except Exception:
        pass
    g = groups.setdefault(group, [0, 0])
    dr, dt = rss() - r0, (tracemalloc.get_traced_memory()[0] - t0) // 1024
    g[0] += dr
    g[1] += dt
    per_mod.append([mod, dr, dt])
print(json.dumps({"base_rss": base_rss, "groups": [[k, v[0], v[1]] for k, v in groups.items()],
                  "modules": per_mod, "total_rss": rss()}))
"""


def group_of(mod: str) -> str:
    parts = mod.split(".")
    return ".".join(parts[:2]) if parts[0] == "tcr" else parts[0].lstrip("_") or mod


def attribute(mods: List[str]) -> Dict[str, Any]:
    """Import the daemon's modules one by one in load order in a fresh -I -S interpreter and add up
    the growth per group (dependencies are charged to the first module that needs them)."""
    arg = json.dumps([[m, group_of(m)] for m in mods if m != "__main__"])
    r = subprocess.run([*isolated(ATTRIBUTE), arg], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(r.stdout)


PROBE = r"""
def rss():
    with open("/proc/self/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
r0 = rss()
for stmt in sys.argv[1:]:
    exec(stmt)
print(rss() - r0, r0)
"""


def probe(*stmts: str) -> Tuple[int, int]:
    """VmRSS growth (kB) of running stmts in a fresh -I -S interpreter, and its VmRSS before."""
    r = subprocess.run([*isolated(PROBE), *stmts], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return -1, -1
    grow, base = r.stdout.split()
    return int(grow), int(base)


def import_all(mods: List[str]) -> str:
    """Statement importing mods in order (failures ignored: some are platform fallbacks)."""
    return ("import importlib\n"
            f"for m in {json.dumps(mods)}:\n"
            "    try:\n        importlib.import_module(m)\n    except Exception:\n        pass\n")


def sched_counts(pid: int) -> Tuple[int, int]:
    """(times scheduled onto a CPU, context switches) of every thread of pid."""
    runs = switches = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            runs += int(f.read().split()[2])
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for ln in f:
                if ln.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    switches += int(ln.split()[1])
    return runs, switches


def wakeups(pid: int, seconds: float) -> Dict[str, float]:
    """tcrd's wake-ups per second over `seconds` with nothing talking to it."""
    time.sleep(1.0)  # let the last client's request finish
    r0, s0 = sched_counts(pid)
    t0 = time.monotonic()
    time.sleep(seconds)
    r1, s1 = sched_counts(pid)
    dt = time.monotonic() - t0
    return {"seconds": dt, "runs": r1 - r0, "switches": s1 - s0, "per_second": (r1 - r0) / dt}


def installed_size(work: str) -> Dict[str, Any]:
    """pip install --no-deps of the package into a temp dir: du of tcr/ with and without bytecode.

    Where pip cannot build offline (no `wheel` in the environment), a copy of target/tcr is measured."""
    dest = os.path.join(work, "site")
    src = os.path.join(work, "src")
    os.makedirs(src)
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("pyproject.toml", "README.md", "target", "host_tools"):
        p = os.path.join(common.REPO, name)
        if os.path.isdir(p):
            shutil.copytree(p, os.path.join(src, name), ignore=skip)
        elif os.path.exists(p):
            shutil.copy(p, src)
    r = common.sh([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                   "--no-index", "--no-compile", "--disable-pip-version-check", "--target", dest, src],
                  env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"}, check=False)
    pkg = os.path.join(dest, "tcr")
    how = "pip install --no-deps --target"
    if r.returncode != 0 or not os.path.isdir(pkg):
        how = "copy of target/tcr (pip could not build offline here)"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(os.path.join(common.TARGET, "tcr"), pkg, ignore=skip)

    def du(path: str) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(path):
            for f in files:
                total += os.lstat(os.path.join(dirpath, f)).st_size
        return total

    src_bytes = du(pkg)
    common.sh([sys.executable, "-m", "compileall", "-q", pkg])
    with_pyc = du(pkg)
    blocks = int(common.sh(["du", "-sk", pkg]).stdout.split()[0])
    files = sum(len(fs) for _d, _ds, fs in os.walk(pkg) if "__pycache__" not in _d)
    return {"source_bytes": src_bytes, "with_pyc_bytes": with_pyc, "du_kb_with_pyc": blocks, "files": files,
            "how": how}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=10)
    ap.add_argument("--idle-seconds", type=float, default=60.0)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    common.need_root()
    work = tempfile.mkdtemp(prefix=f"tcr-bench-mem-{os.getpid()}-", dir="/var/tmp")
    d = common.BenchDaemon(os.path.join(work, "tcrd"))
    problems: List[str] = []
    try:
        img = common.build_sqfs(os.path.join(work, "busybox.sqfs"), common.busybox_bundle(),
                                common.image_info("tcr-bench/busybox"))
        zip_path = board_zip(work)
        zip_kb = os.path.getsize(zip_path) / 1024
        d.extra_path = [zip_path]  # first on tcrd's sys.path: tcr comes from the zip
        d.start()
        fresh = settle_sample(d.pid)
        d.rpc("image", "load", img)
        after_load = settle_sample(d.pid)
        d.cli("run", "--rm", "--network", "none", IMAGE, "/bin/true")
        after_run = settle_sample(d.pid)
        d.cli("run", "--rm", IMAGE, "/bin/true")  # default network: bridge, nft, DNS forwarder
        idle = settle_sample(d.pid)
        held = daemon_modules(d)
        names = [f"bench-mem-{i}" for i in range(args.containers)]
        for n in names:
            d.cli("run", "-d", "--name", n, IMAGE, "sleep", "3600")
        busy = settle_sample(d.pid)
        ps = d.cli("ps").stdout
        running = sum(1 for ln in ps.splitlines() if "bench-mem-" in ln)
        wake = wakeups(d.pid, args.idle_seconds)
        d.cli("rm", "-f", *names)
        after_rm = settle_sample(d.pid)
        common_requests(d)
        after_common = settle_sample(d.pid)
        held_after = daemon_modules(d)
    finally:
        problems += d.cleanup()
    for p in problems:
        print(f"cleanup: {p}", file=sys.stderr)
    try:
        src_idle = source_idle(work, img)
        imports = import_times(work, img, held)
        common.precompile()  # files edited meanwhile would be compiled by the probes: not the cost we want
        attr = attribute(held)
        probes = {
            "bare interpreter (`python3 -I -S`)": probe(),
            "`import selectors, socket, json` (the floor the issue names)":
                probe("import selectors, socket, json"),
            "every module tcrd holds at idle": probe(import_all([m for m in held if m != "__main__"])),
            "the same plus `logging, typing, dataclasses, argparse, subprocess` (what was removed)":
                probe(import_all([m for m in held if m != "__main__"]),
                      "import logging, typing, dataclasses, argparse, subprocess"),
        }
        size = installed_size(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def mb(kb: Any) -> float:
        return int(kb) / 1024.0

    idle_mb, busy_mb, back_mb = mb(idle["rss_kb"]), mb(busy["rss_kb"]), mb(after_rm["rss_kb"])
    print(f"tcrd fresh: {mb(fresh['rss_kb']):.1f} MB; after load {mb(after_load['rss_kb']):.1f} MB; "
          f"after run --network none {mb(after_run['rss_kb']):.1f} MB; idle (image + default network): "
          f"{idle_mb:.1f} MB; {running} containers: {busy_mb:.1f} MB; after rm {back_mb:.1f} MB; "
          f"after every common command once {mb(after_common['rss_kb']):.1f} MB")
    print(f"  wake-ups over {wake['seconds']:.0f} s: {wake['runs']} ({wake['per_second']:.2f}/s), "
          f"context switches {wake['switches']}")
    print(f"  modules held at idle: {len(held)}; after rm: {len(held_after)}")
    for name, rss_kb, tm_kb in sorted(attr["groups"], key=lambda g: -g[1])[:15]:
        print(f"  {name:30s} +{rss_kb:6d} kB RSS  {tm_kb:6d} kB traced")
    for k, (grow, base) in probes.items():
        print(f"  probe {k}: +{grow} kB (interpreter {base} kB)")
    src_kb, pyc_kb = int(size["source_bytes"]) / 1024, int(size["with_pyc_bytes"]) / 1024
    print(f"  installed tcr/: {src_kb:.0f} kB source, {pyc_kb:.0f} kB with bytecode ({size['files']} files)")

    back_ok = back_mb - idle_mb <= TARGET_BACK_MB
    common.record("memory", [
        Metric("memory", "tcrd VmRSS idle (image loaded, default network up)", f"{idle_mb:.1f} MB",
               f"<= {TARGET_IDLE_MB:.0f} MB", idle_mb <= TARGET_IDLE_MB, f"PSS {mb(idle['pss_kb']):.1f} MB"),
        Metric("memory", f"tcrd VmRSS with {running} running containers", f"{busy_mb:.1f} MB",
               f"<= {TARGET_10_MB:.0f} MB", busy_mb <= TARGET_10_MB and running == args.containers,
               f"PSS {mb(busy['pss_kb']):.1f} MB; crun/containers not counted"),
        Metric("memory", "tcrd VmRSS after the containers are removed, minus idle",
               f"{back_mb - idle_mb:+.1f} MB", f"<= {TARGET_BACK_MB:.0f} MB", back_ok),
        Metric("memory", f"tcrd wake-ups per second, {running} containers running, no client",
               f"{wake['per_second']:.2f}", "0", wake["runs"] == 0,
               f"{wake['runs']} in {wake['seconds']:.0f} s"),
        Metric("memory", "tcrd VmRSS after every common command once (ps, images, exec, logs, inspect, "
               "stop, start, restart, kill, rm, version)", f"{mb(after_common['rss_kb']):.1f} MB", "", None,
               "reference: handlers load on first use"),
        Metric("memory", "tcrd VmRSS idle from the source tree's .pyc (plain `make install`, pip)",
               f"{mb(src_idle['rss_kb']):.1f} MB", "", None, "reference: the target row runs tcr.zip"),
        Metric("memory", "installed size of tcr/ (no deps; source / with bytecode) / board tcr.zip",
               f"{src_kb:.0f} kB / {pyc_kb:.0f} kB / {zip_kb:.0f} kB"),
    ])
    if not args.no_write:
        steps = [("tcrd just started", fresh), ("+ image loaded", after_load),
                 ("+ one `run --rm --network none`", after_run)]
        write(steps, idle, busy, after_rm, after_common, running, wake, attr, imports, probes, size, held,
              src_idle, zip_kb)
    return 0


def write(steps, idle, busy, after_rm, after_common, running, wake, attr, imports, probes, size, held,
          src_idle, zip_kb) -> None:
    def mb(kb: Any) -> str:
        return f"{int(kb) / 1024:.1f} MB"

    top = sorted(attr["groups"], key=lambda g: -g[1])[:15]
    slow = sorted(imports, key=lambda m: -m[1])[:8]
    row = lambda label, st, target: [label, mb(st["rss_kb"]), mb(st["anon_kb"]), mb(st["file_kb"]),  # noqa: E731
                                     mb(st["pss_kb"]), target]
    lines = [
        "## Memory and footprint",
        "",
        "`bench/bench_memory.py`: " + common.machine_line() + ". tcrd runs as a board runs it: `python3",
        "-I -S` (no site or .pth files) with the package from the board's tcr.zip (`make install",
        "BYTECODE_ONLY=1`, host_tools/tcr_host/boardzip.py); VmRSS summed over tcr's own processes",
        "(tcrd and descendants running",
        "the same interpreter: workers; crun and the containers' processes are not counted), median",
        "of 5 samples. The path from 23 MB to here: docs/profile.md.",
        "",
        common.table(["state", "VmRSS", "RssAnon", "RssFile", "PSS", "target"], [
            *[row(label, st, "") for label, st in steps],
            row("idle: image loaded, default network up (bridge, nft, DNS)", idle,
                f"<= {TARGET_IDLE_MB:.0f} MB"),
            row(f"{running} running containers on the default network", busy, f"<= {TARGET_10_MB:.0f} MB"),
            row("after they are removed", after_rm, f"<= idle + {TARGET_BACK_MB:.0f} MB"),
            row("+ every common command once (ps, images, exec, logs, inspect, stop, start, restart, kill, "
                "rm, version: handlers that load on first use)", after_common, ""),
            row("idle, tcrd from the source tree's .pyc instead of tcr.zip (reference)", src_idle, ""),
        ]),
        "",
        f"Processes counted with {running} containers: {busy['own']}; not counted: "
        f"{', '.join(sorted(set(busy['others']))) or 'none'} ({len(busy['others'])}).",
        "",
        f"Idle wake-ups with {running} containers running and no client, over {wake['seconds']:.0f} s: "
        f"**{wake['runs']}** times on a CPU ({wake['per_second']:.2f}/s; /proc/PID/schedstat), "
        f"{wake['switches']} context switches (target 0: no periodic timer, no polling; "
        "test/root/test_idle.py checks that no timer is armed).",
        "",
        f"### What tcrd holds ({len(held)} modules at idle, `tcr _modules`)",
        "",
        "Re-imported in a fresh `-I -S` interpreter (base VmRSS "
        f"{mb(attr['base_rss'])} with tracemalloc on), one module at a time in load order",
        "(dependencies are charged to the first module that needs them), growth added up per group",
        "(tcr by subpackage, the rest by top-level name).",
        "",
        common.table(["module group", "VmRSS growth", "traced allocations"],
                     [[f"`{n}`", f"{r} kB", f"{t} kB"] for n, r, t in top]),
        "",
        "Slowest imports (self time, `-X importtime`): "
        + ", ".join(f"`{m}` {sf / 1000:.1f} ms" for m, sf, _c in slow) + ".",
        "",
        "### Import cost probes (fresh `-I -S` interpreter each)",
        "",
        common.table(["statement", "VmRSS growth", "interpreter before"],
                     [[k, f"{g / 1024:.1f} MB" if g >= 0 else "failed", f"{b / 1024:.1f} MB"]
                      for k, (g, b) in probes.items()]),
        "",
        "### Installed size",
        "",
        f"{size['how']}: `tcr/` holds {size['files']} files, "
        f"{size['source_bytes'] / 1024:.0f} kB of source; {size['with_pyc_bytes'] / 1024:.0f} kB with "
        f"`__pycache__` (du: {size['du_kb_with_pyc']} kB). The board's tcr.zip (`make install "
        f"BYTECODE_ONLY=1`): {zip_kb:.0f} kB (docs/board-integration.md).",
        "",
    ]
    common.write_section("Memory and footprint", "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
