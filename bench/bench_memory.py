"""Footprint: tcrd resident memory (idle with the default network up, and with 10 detached
containers), what the daemon imports and which modules dominate, the pyroute2 question, and the
installed size of the package.

Memory = the sum of VmRSS of tcr's own processes: tcrd and any descendant running the same
Python interpreter (crun, conmon-like helpers and the containers' processes are not counted; they
are listed). PSS (smaps_rollup) is shown too: shared library pages are charged pro rata there.

Imports: tcrd is started a second time under `-X importtime` with the same workload; the modules
it imported are then re-imported in a fresh interpreter, one module at a time in importtime order
(dependencies first), adding up the VmRSS and tracemalloc growth per group.

    /tmp/tv/bin/python bench/bench_memory.py [--containers 10] [--no-write]
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
TARGET_IDLE_MB = 16.0
TARGET_10_MB = 20.0


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


def workload(d: common.BenchDaemon, img: str) -> None:
    d.rpc("image", "load", img)
    d.cli("run", "--rm", IMAGE, "/bin/true")  # brings the default network (bridge, nft, DNS) up


def imports_of(work: str, img: str) -> List[Tuple[str, int, int]]:
    """(module, self us, cumulative us) for every import of a tcrd running the idle workload."""
    d = common.BenchDaemon(os.path.join(work, "tcrd-importtime"), python=["-X", "importtime"])
    try:
        d.start()
        workload(d, img)
    finally:
        probs = d.cleanup()
    for p in probs:
        print(f"cleanup (importtime daemon): {p}", file=sys.stderr)
    out = []
    with open(d.logfile, errors="replace") as f:
        for ln in f:
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", ln)
            if m:
                out.append((m.group(4), int(m.group(1)), int(m.group(2))))
    shutil.rmtree(d.base, ignore_errors=True)
    return out


ATTRIBUTE = r"""
import importlib, json, sys, tracemalloc
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


def attribute(imports: List[Tuple[str, int, int]]) -> Dict[str, Any]:
    """Import the modules one by one in -X importtime order (dependencies come first there, so each
    module is charged mostly for itself) and add up the growth per group."""
    arg = json.dumps([[mod, group_of(mod)] for mod, _s, _c in imports])
    r = subprocess.run([sys.executable, "-c", ATTRIBUTE, arg], env=common.env(), capture_output=True,
                       text=True, timeout=120, check=True)
    return json.loads(r.stdout)


PROBE = r"""
import importlib, sys
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
    """VmRSS growth (kB) of running stmts in a fresh interpreter, and the interpreter's own VmRSS."""
    r = subprocess.run([sys.executable, "-c", PROBE, *stmts], env=common.env(), capture_output=True,
                       text=True, timeout=120)
    if r.returncode != 0:
        return -1, -1
    grow, base = r.stdout.split()
    return int(grow), int(base)


# The proposal, simulated: jsonc without ujson (stdlib json has a C accelerator too; ujson pulls in
# libstdc++ and decimal), sha256 from the builtin _sha256 instead of OpenSSL's libcrypto, and image
# validation through the mount tcrd makes anyway instead of PySquashfsImage (+ zstandard, lzma, bz2).
SHIM = ("import sys, types, _sha256\n"
        "sys.modules['ujson'] = None\n"
        "h = types.ModuleType('hashlib'); h.sha256 = _sha256.sha256; sys.modules['hashlib'] = h\n")
DROPPED = ("PySquashfsImage", "zstandard", "lzma", "_lzma", "bz2", "_bz2", "ujson", "decimal", "_decimal",
           "numbers", "hashlib", "_hashlib")


HASHLIB_SHIM = """\
# bench_memory shim: hashlib on CPython's builtin hash modules instead of OpenSSL's libcrypto
from _sha256 import sha224, sha256
from _sha1 import sha1
from _md5 import md5
from _sha512 import sha384, sha512
from _blake2 import blake2b, blake2s
algorithms_guaranteed = algorithms_available = frozenset(
    ("sha224", "sha256", "sha1", "md5", "sha384", "sha512", "blake2b", "blake2s"))
def new(name, data=b"", **kw):
    return globals()[name.lower()](data, **kw)
"""


def idle_in_shim(work: str, img: str, label: str, proposal: bool, problems: List[str]) -> Dict[str, Any]:
    """Idle footprint of a tcrd whose PYTHONPATH starts with a shim dir hiding modules."""
    shim = os.path.join(work, f"shim-{label}")
    os.makedirs(shim)
    with open(os.path.join(shim, "ujson.py"), "w") as f:
        f.write("raise ImportError('hidden by bench_memory')\n")
    if proposal:
        # image validation falls back to tcrd's own mount (tcr.images.reader.NeedsMount)
        os.makedirs(os.path.join(shim, "PySquashfsImage"))
        with open(os.path.join(shim, "PySquashfsImage", "__init__.py"), "w") as f:
            f.write("raise ImportError('hidden by bench_memory')\n")
        with open(os.path.join(shim, "hashlib.py"), "w") as f:
            f.write(HASHLIB_SHIM)
    d = common.BenchDaemon(os.path.join(work, f"tcrd-{label}"))
    d.extra_path = [shim]
    try:
        d.start()
        workload(d, img)
        return settle_sample(d.pid)
    finally:
        problems += d.cleanup()


def import_all(mods: List[str]) -> str:
    """Statement importing mods in order (failures ignored: some are platform fallbacks)."""
    return ("import importlib\n"
            f"for m in {json.dumps(mods)}:\n"
            "    try:\n        importlib.import_module(m)\n    except Exception:\n        pass\n")


MARGINAL = r"""
import importlib, json, sys
def rss():
    with open("/proc/self/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
base, groups = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for m in base:
    try:
        importlib.import_module(m)
    except Exception:
        pass
out = []
for g in groups:
    r0 = rss()
    for m in g:
        importlib.import_module(m)
    out.append([" + ".join(g), rss() - r0])
print(json.dumps(out))
"""
NEXT_CANDIDATES = [["dataclasses"], ["typing"], ["argparse"], ["logging"]]


def marginal(mods: List[str]) -> List[List[Any]]:
    """VmRSS growth of each candidate module on top of everything else tcrd imports at idle."""
    skip = {m for g in NEXT_CANDIDATES for m in g} | {"inspect", "ast", "dis", "gettext", "locale"}
    base = [m for m in mods if m.split(".")[0] not in skip and not m.startswith("tcr")
            and m.split(".")[0] not in DROPPED]
    r = subprocess.run([sys.executable, "-c", MARGINAL, json.dumps(base), json.dumps(NEXT_CANDIDATES)],
                       env=common.env(), capture_output=True, text=True, timeout=120, check=True)
    return json.loads(r.stdout)


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
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    common.need_root()
    work = tempfile.mkdtemp(prefix=f"tcr-bench-mem-{os.getpid()}-", dir="/var/tmp")
    d = common.BenchDaemon(os.path.join(work, "tcrd"))
    problems: List[str] = []
    try:
        img = common.build_sqfs(os.path.join(work, "busybox.sqfs"), common.busybox_bundle(),
                                common.image_info("tcr-bench/busybox"))
        d.start()
        fresh = settle_sample(d.pid)
        d.rpc("image", "load", img)
        after_load = settle_sample(d.pid)
        d.cli("run", "--rm", "--network", "none", IMAGE, "/bin/true")
        after_run = settle_sample(d.pid)
        d.cli("run", "--rm", IMAGE, "/bin/true")  # default network: bridge, nft, DNS forwarder
        idle = settle_sample(d.pid)
        for i in range(args.containers):
            d.cli("run", "-d", "--name", f"bench-mem-{i}", IMAGE, "sleep", "3600")
        busy = settle_sample(d.pid)
        ps = d.cli("ps").stdout
        running = sum(1 for ln in ps.splitlines() if "bench-mem-" in ln)
    finally:
        problems += d.cleanup()
    # The same idle state (1) without the optional ujson (the `fast` extra is not a dependency) and
    # (2) with the whole proposal, simulated by a PYTHONPATH shim: no product code is changed.
    idle_no_ujson = idle_in_shim(work, img, "no-ujson", proposal=False, problems=problems)
    idle_proposal = idle_in_shim(work, img, "proposal", proposal=True, problems=problems)
    for p in problems:
        print(f"cleanup: {p}", file=sys.stderr)
    try:
        imports = imports_of(work, img)
        common.precompile()  # files edited meanwhile would be compiled by the probes: not the cost we want
        attr = attribute(imports)
        mods = [m for m, _s, _c in imports]
        probes = {
            "bare interpreter (python -c '')": probe(),
            "import pyroute2": probe("import pyroute2"),
            "from pyroute2 import IPRoute; IPRoute().close()": probe("from pyroute2 import IPRoute",
                                                                     "IPRoute().close()"),
            "import tcr.network.links (stdlib rtnetlink)": probe("import tcr.network.links"),
            "import PySquashfsImage": probe("import PySquashfsImage"),
            "import dnslib": probe("import dnslib"),
            "import tcr.daemon.app": probe("import tcr.daemon.app"),
            "every module tcrd has imported at idle": probe(import_all(mods)),
            "same without ujson, OpenSSL hashlib, PySquashfsImage (proposal)":
                probe(SHIM, import_all([m for m in mods if m.split(".")[0] not in DROPPED])),
        }
        size = installed_size(work)
        nexts = marginal(mods)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def mb(kb: Any) -> float:
        return int(kb) / 1024.0

    print(f"tcrd fresh: {mb(fresh['rss_kb']):.1f} MB; after load {mb(after_load['rss_kb']):.1f} MB; "
          f"after run --network none {mb(after_run['rss_kb']):.1f} MB; idle (image + default network): "
          f"{mb(idle['rss_kb']):.1f} MB; {running} containers: {mb(busy['rss_kb']):.1f} MB "
          f"(PSS {mb(busy['pss_kb']):.1f} MB)")
    print(f"  idle without ujson: {mb(idle_no_ujson['rss_kb']):.1f} MB; with the proposal (shim): "
          f"{mb(idle_proposal['rss_kb']):.1f} MB")
    print(f"  processes counted: {busy['own']}; not counted: {busy['others']}")
    top = sorted(attr["groups"], key=lambda g: -g[1])[:12]
    for name, rss_kb, tm_kb in top:
        print(f"  {name:30s} +{rss_kb:6d} kB RSS  {tm_kb:6d} kB traced")
    for k, (grow, base) in probes.items():
        print(f"  probe {k}: +{grow} kB (interpreter {base} kB)")
    src_kb, pyc_kb = int(size["source_bytes"]) / 1024, int(size["with_pyc_bytes"]) / 1024
    print(f"  installed tcr/: {src_kb:.0f} kB source, {pyc_kb:.0f} kB with bytecode ({size['files']} files)")

    idle_mb, busy_mb = mb(idle["rss_kb"]), mb(busy["rss_kb"])
    common.record("memory", [
        Metric("memory", "tcrd VmRSS idle (image loaded, default network up)", f"{idle_mb:.1f} MB",
               f"<= {TARGET_IDLE_MB:.0f} MB", idle_mb <= TARGET_IDLE_MB,
               f"PSS {mb(idle['pss_kb']):.1f} MB; without ujson {mb(idle_no_ujson['rss_kb']):.1f} MB"),
        Metric("memory", f"tcrd VmRSS with {running} detached containers", f"{busy_mb:.1f} MB",
               f"<= {TARGET_10_MB:.0f} MB", busy_mb <= TARGET_10_MB and running == args.containers,
               f"PSS {mb(busy['pss_kb']):.1f} MB; crun/containers not counted"),
        Metric("memory", "installed size of tcr/ (no deps; source / with bytecode)",
               f"{src_kb:.0f} kB / {pyc_kb:.0f} kB"),
    ])
    if not args.no_write:
        steps = [("tcrd just started", fresh), ("+ image loaded", after_load),
                 ("+ one `run --rm --network none`", after_run),
                 ("+ one `run --rm` on the default network", idle)]
        write(steps, idle, busy, running, attr, imports, probes, size, idle_no_ujson, idle_proposal, nexts)
    return 0


def write(steps, idle, busy, running, attr, imports, probes, size, idle_no_ujson, idle_proposal,
          nexts) -> None:
    def mb(kb: Any) -> str:
        return f"{int(kb) / 1024:.1f} MB"

    top = sorted(attr["groups"], key=lambda g: -g[1])[:12]
    slow = sorted(imports, key=lambda m: -m[1])[:8]
    lines = [
        "## Memory and footprint",
        "",
        "`bench/bench_memory.py`: VmRSS summed over tcr's own processes (tcrd and descendants running the",
        "same interpreter; crun and the containers' processes are not counted), median of 5 samples.",
        "",
        common.table(["state", "VmRSS", "RssAnon", "RssFile", "PSS", "target"], [
            *[[label, mb(st["rss_kb"]), mb(st["anon_kb"]), mb(st["file_kb"]), mb(st["pss_kb"]), ""]
              for label, st in steps[:-1]],
            ["idle: image loaded, default network up (bridge, nft, DNS)", mb(idle["rss_kb"]),
             mb(idle["anon_kb"]), mb(idle["file_kb"]), mb(idle["pss_kb"]), f"<= {TARGET_IDLE_MB:.0f} MB"],
            [f"{running} detached containers", mb(busy["rss_kb"]), mb(busy["anon_kb"]), mb(busy["file_kb"]),
             mb(busy["pss_kb"]), f"<= {TARGET_10_MB:.0f} MB"],
            ["idle as above, without the optional ujson (`fast` extra)", mb(idle_no_ujson["rss_kb"]),
             mb(idle_no_ujson["anon_kb"]), mb(idle_no_ujson["file_kb"]), mb(idle_no_ujson["pss_kb"]), ""],
            ["idle, proposal simulated: no ujson, hashlib on builtin `_sha256`, no PySquashfsImage",
             mb(idle_proposal["rss_kb"]), mb(idle_proposal["anon_kb"]), mb(idle_proposal["file_kb"]),
             mb(idle_proposal["pss_kb"]), ""],
        ]),
        "",
        f"Processes counted with {running} containers: {busy['own']}; not counted: "
        f"{', '.join(sorted(set(busy['others']))) or 'none'} ({len(busy['others'])}). The last two rows run",
        "tcrd with a shim directory first on PYTHONPATH that hides modules (no product code changed):",
        "`ujson` (jsonc falls back to stdlib json), `PySquashfsImage` (image validation falls back to",
        "tcrd's own mount) and `hashlib` (replaced by CPython's builtin `_sha256`/`_md5`/... modules).",
        "",
        f"### What tcrd imports ({len(imports)} modules at idle, `-X importtime`)",
        "",
        "Re-imported in a fresh interpreter (base VmRSS "
        f"{mb(attr['base_rss'])} with tracemalloc on), one module at a time in `-X importtime` order",
        "(dependencies first), growth added up per group (tcr by subpackage, the rest by top-level name).",
        "",
        common.table(["module group", "VmRSS growth", "traced allocations"],
                     [[f"`{n}`", f"{r} kB", f"{t} kB"] for n, r, t in top]),
        "",
        "Slowest imports (self time): " + ", ".join(f"`{m}` {s / 1000:.1f} ms" for m, s, _c in slow) + ".",
        "",
        "### Import cost probes (fresh interpreter each)",
        "",
        common.table(["statement", "VmRSS growth", "interpreter before"],
                     [[k, f"{g / 1024:.1f} MB" if g >= 0 else "failed", f"{b / 1024:.1f} MB"]
                      for k, (g, b) in probes.items()]),
        "",
        "pyroute2 is not used: tcr.network.links speaks rtnetlink over a plain socket (most of its 2 MB",
        "is socket/struct/enum, which tcrd imports anyway). The interpreter alone is the floor; about",
        "5 MB of it are the python binary's file pages, shared with every other Python process (PSS).",
        "The last probe simulates the proposal in the report: jsonc on stdlib json (no ujson: no",
        "libstdc++, no decimal), sha256 from the builtin `_sha256` (no OpenSSL libcrypto), and images",
        "validated through the mount tcrd makes anyway (no PySquashfsImage, zstandard, lzma, bz2).",
        "",
        "### Closing the gap",
        "",
        f"Idle is {mb(idle['rss_kb'])} against the {TARGET_IDLE_MB:.0f} MB target; the proposal measured "
        f"above gives {mb(idle_proposal['rss_kb'])}.",
        "What is left is the interpreter floor (see the probes) and the code and data of the modules",
        "tcrd imports. The next candidates, each measured on top of everything else tcrd imports (so",
        "only what it alone adds): "
        + ", ".join(f"`{name}` +{kb / 1024:.1f} MB" for name, kb in nexts) + ".",
        "`dataclasses` pulls in inspect/ast/dis, and on top of that every record class pays for the",
        "methods it generates with exec() at import (docs/profile.md: the top allocator by count);",
        "`argparse` also pulls in gettext/locale.",
        "",
        "### Installed size",
        "",
        f"{size['how']}: `tcr/` holds {size['files']} files, "
        f"{size['source_bytes'] / 1024:.0f} kB of source; {size['with_pyc_bytes'] / 1024:.0f} kB with "
        f"`__pycache__` (du: {size['du_kb_with_pyc']} kB).",
        "",
    ]
    common.write_section("Memory and footprint", "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
