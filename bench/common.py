"""Shared helpers for the bench scripts (stdlib only; each bench stays a standalone script).

- statistics: median(), summarize(); interleave() runs A/B/... cases in alternating order
  (ABBA...) after a warm-up, so drift (CPU frequency, page cache) hits every case alike.
- docs/benchmarks.md: replace_section() (pure) and write_section() replace ONLY one `## Title`
  section; the header + `## Summary` at the top belong to bench/run_all.py.
- results: record() writes a bench's headline metrics (value, target, met) as JSON under
  build/bench/results/ (or $TCR_BENCH_RESULTS) for run_all's summary table.
- machine(): CPU model, cores, kernel, Python, date.
- BenchDaemon: a tcrd on a private root/socket/run dir, started from sys.executable; rpc()
  talks to it in-process (no CLI start-up in the timing), cli() runs the real `tcr` client.
"""

import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(REPO, "target")
BENCH_MD = os.path.join(REPO, "docs", "benchmarks.md")
RESULTS_DIR = os.path.join(REPO, "build", "bench", "results")
TITLE = "# Benchmarks"


def setup_path() -> None:
    """Make `tcr` (target/) and `test.fixtures` (repo root) importable from a bench script."""
    for p in (TARGET, REPO):
        if p not in sys.path:
            sys.path.insert(0, p)


# ---- statistics ------------------------------------------------------------------------------

def median(xs: Sequence[float]) -> float:
    if not xs:
        raise ValueError("median of no values")
    s = sorted(xs)
    n = len(s)
    mid = n // 2
    return float(s[mid]) if n % 2 else (s[mid - 1] + s[mid]) / 2.0


def summarize(xs: Sequence[float]) -> Dict[str, float]:
    s = sorted(xs)
    return {"n": float(len(s)), "median": median(s), "min": float(s[0]), "max": float(s[-1])}


def interleave(cases: Dict[str, Callable[[], Any]], runs: int = 10, warmup: int = 1,
               between: Optional[Callable[[str], None]] = None) -> Dict[str, List[float]]:
    """Run every case `warmup` times (discarded), then `runs` times, interleaved.

    A case may return its own elapsed seconds as a float (when only part of it is the measured
    thing); for any other return value the whole call is timed.
    The order alternates every round (A B, B A, ...).
    between(label), if given, runs untimed after each call (e.g. remove what a load made).
    """
    if runs < 1 or warmup < 0:
        raise ValueError("runs must be >= 1 and warmup >= 0")
    labels = list(cases)
    out: Dict[str, List[float]] = {k: [] for k in labels}
    for rnd in range(warmup + runs):
        order = labels if rnd % 2 == 0 else labels[::-1]
        for label in order:
            t0 = time.perf_counter()
            got = cases[label]()
            elapsed = got if isinstance(got, float) else time.perf_counter() - t0
            if between is not None:
                between(label)
            if rnd >= warmup:
                out[label].append(elapsed)
    return out


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# ---- docs/benchmarks.md ----------------------------------------------------------------------

def _section_re(title: str) -> "re.Pattern[str]":
    return re.compile(r"^## " + re.escape(title) + r"[ \t]*\n.*?(?=^## |\Z)", re.S | re.M)


def replace_section(text: str, title: str, body: str, top: bool = False) -> str:
    """Return text with section `## title` replaced by body (which must start with that heading).

    A missing section is appended, or inserted right after the `# ...` title line when top=True.
    Nothing else in the text changes.
    """
    if not body.startswith(f"## {title}\n"):
        raise ValueError(f"section body must start with '## {title}'")
    section = body.rstrip("\n") + "\n\n"
    if not text.strip():
        text = TITLE + "\n\n"
    m = _section_re(title).search(text)
    if m:
        return text[:m.start()] + section + text[m.end():]
    if top:
        first = re.search(r"^## ", text, re.M)
        at = first.start() if first else len(text)
        head = text[:at].rstrip("\n") + "\n\n"
        return head + section + text[at:]
    return text.rstrip("\n") + "\n\n" + section


def section_titles(text: str) -> List[str]:
    return re.findall(r"^## (.+?)[ \t]*$", text, re.M)


def read_doc(path: str = BENCH_MD) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return TITLE + "\n\n"


def write_doc(text: str, path: str = BENCH_MD) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text.rstrip("\n") + "\n")
    os.replace(tmp, path)


def write_section(title: str, body: str, path: str = BENCH_MD, top: bool = False) -> None:
    write_doc(replace_section(read_doc(path), title, body, top=top), path)
    print(f"wrote the '{title}' section of {path}")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: Optional[str] = None) -> str:
    """A markdown table; align is one char per column ('l' or 'r')."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# ---- results for the summary -----------------------------------------------------------------

@dataclass(frozen=True)
class Metric:
    """One headline number of a bench, with its target (met=None: no target / not decided)."""

    bench: str
    name: str
    value: str
    target: str = ""
    met: Optional[bool] = None
    note: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return {"bench": self.bench, "name": self.name, "value": self.value, "target": self.target,
                "met": self.met, "note": self.note}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Metric":
        met = d.get("met")
        if met is not None and not isinstance(met, bool):
            raise ValueError("met must be true, false or null")
        return cls(bench=str(d["bench"]), name=str(d["name"]), value=str(d["value"]),
                   target=str(d.get("target", "")), met=met, note=str(d.get("note", "")))


def results_dir() -> str:
    return os.environ.get("TCR_BENCH_RESULTS") or RESULTS_DIR


def record(bench: str, metrics: Sequence[Metric]) -> str:
    """Write this bench's metrics (replacing its previous ones) for run_all's summary."""
    d = results_dir()
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"{bench}.json")
    with open(path + ".tmp", "w") as f:
        json.dump({"bench": bench, "time": int(time.time()), "metrics": [m.to_dict() for m in metrics]}, f,
                  indent=1)
    os.replace(path + ".tmp", path)
    return path


def load_results(d: Optional[str] = None) -> List[Metric]:
    d = d or results_dir()
    out: List[Metric] = []
    if not os.path.isdir(d):
        return out
    for name in sorted(os.listdir(d)):
        if name.endswith(".json"):
            with open(os.path.join(d, name)) as f:
                out += [Metric.from_dict(m) for m in json.load(f).get("metrics", [])]
    return out


# ---- machine ---------------------------------------------------------------------------------

def machine() -> Dict[str, str]:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": cpu, "cores": str(os.cpu_count() or "?"), "memory": mem,
            "kernel": platform.release(), "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def machine_desc() -> str:
    m = machine()
    return f"{m['cpu']}, {m['cores']} cores, {m['memory']} RAM; Linux {m['kernel']}; Python {m['python']}"


def machine_line() -> str:
    m = machine()
    return (f"{m['date']}; {m['cpu']}, {m['cores']} cores, {m['memory']} RAM; Linux {m['kernel']}; "
            f"Python {m['python']}")


# ---- processes and memory --------------------------------------------------------------------

def proc_status(pid: int) -> Dict[str, str]:
    out: Dict[str, str] = {}
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            k, _, v = ln.partition(":")
            out[k] = v.strip()
    return out


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    v = proc_status(pid).get(field, "0 kB")
    return int(v.split()[0])


def run_timed(argv: Sequence[str], env: Dict[str, str], what: str) -> Tuple[float, float]:
    """Run argv to completion (no stdio); return (wall, CPU) seconds. CPU is user + system of the
    process and what it waited for, from wait4: on a loaded machine it moves far less than wall."""
    t0 = time.perf_counter()
    p = subprocess.Popen(list(argv), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    _pid, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"{what}: exit {p.returncode}")
    return wall, ru.ru_utime + ru.ru_stime


def cmdline(pid: int) -> bytes:
    """/proc/PID/cmdline, empty once the process is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def wait_no_workers(daemon: "BenchDaemon", timeout: float = 120) -> None:
    """Until tcrd has no forked worker left (a worker is a child with tcrd's own command line), so
    that a sample or the next timed step sees tcrd alone. Bench set-up, untimed."""
    me = cmdline(daemon.pid)
    deadline = time.monotonic() + timeout
    while any(cmdline(c) == me for c in children(daemon.pid)):
        if time.monotonic() > deadline:
            raise RuntimeError("tcrd's worker did not finish")
        time.sleep(0.01)


def children(pid: int) -> List[int]:
    """Direct children (needs CONFIG_PROC_CHILDREN; falls back to scanning /proc)."""
    try:
        out = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
        return out
    except OSError:
        kids = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    if int(proc_status(int(name)).get("PPid", "0")) == pid:
                        kids.append(int(name))
                except OSError:
                    continue
        return kids


def descendants(pid: int) -> List[int]:
    out: List[int] = []
    todo = [pid]
    while todo and len(out) < 10000:
        p = todo.pop()
        for c in children(p):
            out.append(c)
            todo.append(c)
    return out


def exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


# ---- environment -----------------------------------------------------------------------------

def precompile() -> None:
    """Byte-compile target/ (into its gitignored __pycache__/), as `make install` does on a board.

    Without it every tcrd/tcr start compiles the changed modules from source: slower, and the
    compiler's memory stays in tcrd's RSS (measured: ~+6 MB). Cheap when up to date (mtime check)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(TARGET, "tcr")], check=True,
                   stdout=subprocess.DEVNULL, timeout=300, env={k: v for k, v in os.environ.items()
                                                                if k != "PYTHONDONTWRITEBYTECODE"})


def env() -> Dict[str, str]:
    """Environment for tcrd/tcr: target/ on the path, bytecode written and used like an install."""
    e = dict(os.environ)
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    e["PYTHONPATH"] = TARGET + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.pop("TCR_HOST", None)
    e.pop("TCR_SOCKET", None)
    return e


def need_root() -> None:
    if os.geteuid() != 0:
        raise SystemExit("this bench needs root (tcrd mounts images and runs containers)")


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def ensure_apt(packages: Dict[str, str]) -> None:
    """Install the Debian packages of missing tools ({tool: package}); `make bench` does it too."""
    missing = sorted({pkg for tool, pkg in packages.items() if not have(tool)})
    if not missing:
        return
    print(f"installing {' '.join(missing)} ...", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, timeout=900,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, stdout=subprocess.DEVNULL)


def sh(argv: Sequence[str], timeout: float = 600, check: bool = True,
       **kw: Any) -> subprocess.CompletedProcess:
    """Run a helper tool (bench code; the product itself goes through tcr.common.run)."""
    r = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                       **kw)
    if check and r.returncode != 0:
        why = (r.stderr or r.stdout).strip()[-2000:]
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {why}")
    return r


# ---- a private tcrd --------------------------------------------------------------------------

def tcrd_command(python: Sequence[str] = (), extra_path: Sequence[str] = ()) -> List[str]:
    """tcrd started the way an installed one runs on a board: `python3 -I -S` with the package's
    site directory on sys.path and no .pth processing. Run through the dev venv's site instead,
    tcrd would also carry the editable install's import hook (pathlib, urllib, ipaddress: ~1.2 MB
    resident) that no board has. The site directories of this interpreter hold the dependencies."""
    import site

    path = [*extra_path, TARGET, *site.getsitepackages()]
    boot = f"import sys; sys.path[:0] = {path!r}; from tcr.daemon.main import main; sys.exit(main())"
    return [sys.executable, "-I", "-S", *python, "-c", boot]


class BenchDaemon:
    """tcrd on private directories under base (a fresh temp dir unless given)."""

    def __init__(self, base: Optional[str] = None, extra_args: Sequence[str] = (),
                 python: Sequence[str] = ()):
        self.owns_base = base is None
        self.base = base or tempfile.mkdtemp(prefix=f"tcr-bench-{os.getpid()}-", dir="/tmp")
        self.root = os.path.join(self.base, "root")
        self.run_dir = os.path.join(self.base, "run")
        self.socket = os.path.join(self.run_dir, "tcrd.sock")
        self.logfile = os.path.join(self.base, "tcrd.log")
        self.extra_args = list(extra_args)
        self.python = list(python)  # e.g. ["-X", "importtime"] or a memray wrapper
        self.extra_path: List[str] = []  # prepended to PYTHONPATH (e.g. a dir that hides a module)
        self.proc: Optional[subprocess.Popen] = None
        self.ready_seconds = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def argv(self) -> List[str]:
        # Benchmarks never reach the machine's real resolvers: no upstream unless a bench names a
        # loopback stub with its own --resolv-conf (later flags win).
        setup_path()
        from test.fixtures.daemon import no_upstream_resolv_conf

        no_upstream = no_upstream_resolv_conf(self.base)
        return [*tcrd_command(self.python, self.extra_path), *self.daemon_args(no_upstream)]

    def daemon_args(self, resolv_conf: Optional[str] = None) -> List[str]:
        """tcrd's own flags (after the interpreter and its boot code)."""
        if resolv_conf is None:
            setup_path()
            from test.fixtures.daemon import no_upstream_resolv_conf

            resolv_conf = no_upstream_resolv_conf(self.base)
        return ["--root", self.root, "--socket", self.socket, "--run-dir", self.run_dir, "--no-compat-socket",
                "--resolv-conf", resolv_conf, *self.extra_args]

    def start(self, timeout: float = 60.0, argv: Optional[List[str]] = None) -> float:
        """Start and wait until the socket accepts; returns the seconds that took."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        os.makedirs(self.base, exist_ok=True)
        precompile()
        t0 = time.perf_counter()
        e = env()
        if self.extra_path:
            e["PYTHONPATH"] = os.pathsep.join([*self.extra_path, e["PYTHONPATH"]])
        with open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen(argv or self.argv(), env=e, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, cwd=self.base)
        setup_path()
        from test.fixtures.daemon import wait_for_socket

        try:  # retry every 1 ms: the start-up time itself is measured here
            wait_for_socket(self.proc, self.socket, timeout, self.log, first_delay=0.001, max_delay=0.001)
        except RuntimeError:
            self.kill()
            raise
        self.ready_seconds = time.perf_counter() - t0
        return self.ready_seconds

    def log(self) -> str:
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()[-6000:]
        except OSError:
            return ""

    def rpc(self, *args: str, check: bool = True) -> Dict[str, Any]:
        """One request in-process (what the CLI sends, minus interpreter start-up)."""
        setup_path()
        from tcr.rpc import client

        s = client.connect(self.socket)
        try:
            reply = client.call(s, args[0], list(args[1:]))
        finally:
            s.close()
        if check and reply.get("kind") == "result" and reply.get("exit_code"):
            raise RuntimeError(f"tcr {' '.join(args)}: {reply.get('stderr', '').strip()}")
        return reply

    def client_argv(self) -> List[str]:
        """The `tcr` client as `make install` ships it: `#!python3 -IS` plus an explicit sys.path
        entry (no site, no .pth files; the client needs only the stdlib)."""
        script = os.path.join(self.base, "tcr")
        if not os.path.exists(script):
            with open(script, "w") as f:
                f.write(f"#!{sys.executable} -IS\nimport sys\nsys.path.insert(0, {TARGET!r})\n"
                        "from tcr.cli.main import main\nsys.exit(main())\n")
            os.chmod(script, 0o755)
        return [script, "--socket", self.socket]

    def cli(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run the real client process (console script) against this daemon."""
        r = subprocess.run([*self.client_argv(), *args], env=env(),
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=self.base,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"tcr {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return r

    def stop(self, timeout: float = 60.0) -> Optional[int]:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def remove_everything(self) -> List[str]:
        """Best effort over the RPC: every container (forced), network and image. Returns failures."""
        problems: List[str] = []
        if not self.running():
            return problems
        for ls, rm in ((("ps", "-aq"), ("rm", "-f")),
                       (("network", "ls", "-q"), ("network", "rm")),
                       (("image", "ls", "-q"), ("image", "rm"))):
            try:
                idents = self.rpc(*ls).get("stdout", "").split()
            except Exception as exc:  # the listing itself failed: report, go on with the next kind
                problems.append(f"{' '.join(ls)}: {exc}")
                continue
            for ident in idents:
                try:
                    self.rpc(*rm, ident)
                except Exception as exc:
                    problems.append(f"{' '.join(rm)} {ident}: {exc}")
        return problems

    def cleanup(self) -> List[str]:
        """Remove everything, stop, unmount leftovers, delete the base dir. Returns problems found."""
        problems: List[str] = []
        try:
            problems += self.remove_everything()
        except Exception as exc:  # cleanup must go on
            problems.append(f"remove: {exc}")
        rc = self.stop()
        if rc not in (0, None):
            problems.append(f"tcrd exited with {rc}")
        self.kill()
        problems += force_clean(self.base)
        problems += remove_network_leftovers(self.root)
        if self.owns_base:
            shutil.rmtree(self.base, ignore_errors=True)
        return problems


def remove_network_leftovers(root: str) -> List[str]:
    """Delete the bridges/veths and nft table of a stopped tcrd instance (named from its root)."""
    setup_path()
    from tcr.network import netplan

    tag = netplan.instance_tag(os.path.abspath(root))
    if not tag:
        return []  # never touch the machine's real tcr
    left = []
    prefix = netplan.if_prefix(tag)
    links = sh(["ip", "-o", "link", "show"], check=False).stdout
    for name in re.findall(r"^\d+: ([^:@]+)[:@]", links, re.M):
        if name.startswith(prefix):
            left.append(f"link left: {name}")
            sh(["ip", "link", "del", name], check=False)
    table = netplan.nft_table(tag)
    if sh(["nft", "list", "table", "ip", table], check=False).returncode == 0:
        left.append(f"nft table left: {table}")
        sh(["nft", "delete", "table", "ip", table], check=False)
    return left


def force_clean(base: str) -> List[str]:
    """Unmount anything under base and detach loop devices backed by files under it."""
    setup_path()
    from tcr.kernel import loopdev, mountinfo
    from tcr.kernel import mount as kmount

    left = []
    for m in sorted(mountinfo.under(base), key=lambda m: -len(m.mount_point)):
        left.append(f"mount left: {m.mount_point}")
        if not kmount.umount_quiet(m.mount_point):
            kmount.umount_quiet(m.mount_point, kmount.UMOUNT_NOFOLLOW | kmount.MNT_DETACH)
    for n, bf in loopdev.attached().items():
        f = bf[: -len(" (deleted)")] if bf.endswith(" (deleted)") else bf
        if f.startswith(base.rstrip("/") + "/"):
            left.append(f"loop left: /dev/loop{n} -> {bf}")
            try:
                loopdev.detach(n)
            except OSError:
                pass
    return left


# ---- images ----------------------------------------------------------------------------------

def busybox_layout() -> str:
    setup_path()
    from test.fixtures.oci_layout import busybox_layout as layout

    return layout()


def busybox_bundle() -> str:
    """A cached `umoci unpack` of the test busybox layout (latest = amd64): the bundle directory."""
    import fcntl

    setup_path()
    from test.fixtures.oci_layout import CACHE

    dest = os.path.join(CACHE, "bench-busybox-bundle-v1")
    bundle = os.path.join(dest, "bundle")
    if os.path.isdir(os.path.join(bundle, "rootfs")):
        return bundle
    layout = busybox_layout()
    with open(os.path.join(CACHE, ".bench-lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if not os.path.isdir(os.path.join(bundle, "rootfs")):
            tmp = dest + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            sh(["umoci", "unpack", "--image", f"{layout}:latest", os.path.join(tmp, "bundle")])
            shutil.rmtree(dest, ignore_errors=True)
            os.rename(tmp, dest)
    return bundle


def image_info(repository: str, tag: str = "latest", label: Optional[str] = None) -> Dict[str, Any]:
    """image-info.json v1 for a bench image; label (default repository:tag) makes its digest/id."""
    import hashlib

    digest = "sha256:" + hashlib.sha256((label or f"{repository}:{tag}").encode()).hexdigest()
    return {"version": 1, "image": {"registry": "localhost", "repository": repository, "tag": tag,
                                    "digest": digest, "arch": "amd64"},
            "bundlePath": "bundle", "created": 1700000000}


def write_random(path: str, size: int, chunk: int = 8 << 20) -> None:
    """size bytes of incompressible data."""
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(chunk, left)
            f.write(os.urandom(n))
            left -= n


def build_sqfs(out: str, bundle: str, info: Dict[str, Any], compress: bool = True) -> str:
    """A tcr image: image-info.json + the bundle directory (named bundle/) at the root."""
    work = tempfile.mkdtemp(prefix="sqfs-", dir=os.path.dirname(os.path.abspath(out)))
    try:
        info_path = os.path.join(work, "image-info.json")
        with open(info_path, "w") as f:
            json.dump(info, f, indent=4)
        src = bundle
        if os.path.basename(bundle.rstrip("/")) != "bundle":
            src = os.path.join(work, "bundle")
            os.symlink(os.path.abspath(bundle), src)  # mksquashfs follows a symlinked source dir
        opts = ["-comp", "zstd"] if compress else ["-comp", "zstd", "-noD", "-noF"]
        sh(["mksquashfs", src, info_path, out + ".tmp", "-noappend", "-quiet", "-no-progress", *opts])
        os.replace(out + ".tmp", out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


# ---- podman on private storage ---------------------------------------------------------------

class Podman:
    """podman with its own storage, run dir and network config under base, so the bench touches
    nothing of the machine's podman; its default network gets a subnet away from tcr's 10.88/16."""

    SUBNET = "10.213.77.0/24"

    def __init__(self, base: str):
        self.base = base
        self.storage = os.path.join(base, "storage")
        # podman refuses a runroot longer than 50 characters
        self.runroot = tempfile.mkdtemp(prefix="tcrb-", dir="/run")
        self.netdir = os.path.join(base, "networks")
        self.conf = os.path.join(base, "containers.conf")
        for d in (self.storage, self.runroot, self.netdir):
            os.makedirs(d, exist_ok=True)
        import resource

        # podman (as root) asks crun for RLIMIT_NOFILE/NPROC 1048576/max, which fails where the hard
        # limits are lower (containers, CI): `run` with self.run_opts uses the limits we have
        # (no CAP_SYS_RESOURCE); nproc above 32768 (podman's own default) fails there too.
        nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 1 << 20)
        nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)
        self.run_opts = ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]
        with open(self.conf, "w") as f:
            f.write(f'[network]\nnetwork_backend = "netavark"\ndefault_subnet = "{self.SUBNET}"\n'
                    f'network_config_dir = "{self.netdir}"\n')
        self._nft_before = _nft_tables()  # first: listing with iptables-nft creates its tables
        self._iptables_before = _iptables_chains()
        # Global state netavark/CNI create even with private storage (IPAM db): removed at cleanup
        # when it did not exist before. (skopeo's shared blob-info cache is left alone.)
        self._global_new = [p for p in ("/run/containers/networks", "/var/lib/cni") if not os.path.exists(p)]

    def env(self) -> Dict[str, str]:
        e = dict(os.environ)
        e["CONTAINERS_CONF"] = self.conf
        e["TMPDIR"] = os.path.join(self.base)
        return e

    def argv(self, *args: str) -> List[str]:
        return ["podman", "--root", self.storage, "--runroot", self.runroot, "--network-config-dir",
                self.netdir, "--cgroup-manager", "cgroupfs", *args]

    def storage_ref(self, name: str) -> str:
        return f"containers-storage:[overlay@{self.storage}+{self.runroot}]{name}"

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        return sh(self.argv(*args), check=check, timeout=timeout, env=self.env())

    def cleanup(self) -> List[str]:
        problems = []
        r = self.run("ps", "-aq", check=False)
        if r.stdout.split():
            problems.append(f"podman containers left: {r.stdout.split()}")
            self.run("rm", "-f", *r.stdout.split(), check=False)
        self.run("rmi", "-af", check=False)
        self.run("system", "reset", "-f", check=False)
        problems += force_clean(self.base) + force_clean(self.runroot)
        shutil.rmtree(self.runroot, ignore_errors=True)
        for bridge in ("podman0", "cni-podman0"):  # the bridge of our private default network
            if os.path.exists(f"/sys/class/net/{bridge}"):
                sh(["ip", "link", "del", bridge], check=False)
        _iptables_restore_chains(self._iptables_before)
        _drop_new_empty_tables(self._nft_before)
        for p in self._global_new:
            shutil.rmtree(p, ignore_errors=True)
        shutil.rmtree(self.base, ignore_errors=True)
        return problems


def _nft_tables() -> List[str]:
    if not have("nft"):
        return []
    out = sh(["nft", "list", "tables"], check=False).stdout
    return [ln[len("table "):].strip() for ln in out.splitlines() if ln.startswith("table ")]


def _drop_new_empty_tables(before: List[str]) -> None:
    """iptables-nft/netavark leave empty `ip filter`/`ip nat` tables (base chains, no rules) behind."""
    for t in _nft_tables():
        if t in before or t.split()[-1] not in ("filter", "nat"):
            continue
        body = sh(["nft", "list", "table", *t.split()], check=False).stdout
        rules = [ln for ln in body.splitlines() if ln.strip() and not ln.strip().startswith(
            ("table ", "chain ", "type ", "}"))]
        if not rules:
            sh(["nft", "delete", "table", *t.split()], check=False)


def _iptables_chains() -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    if not have("iptables"):
        return out
    for table in ("filter", "nat"):
        r = sh(["iptables", "-t", table, "-S"], check=False)
        out[table] = [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("-N ")]
    return out


def _iptables_restore_chains(before: Dict[str, List[str]]) -> None:
    """Remove the NETAVARK/CNI chains podman created during the bench (and the jumps to them)."""
    if not have("iptables"):
        return
    for table in ("filter", "nat"):
        rules = sh(["iptables", "-t", table, "-S"], check=False).stdout.splitlines()
        new = {ln.split()[1] for ln in rules if ln.startswith("-N ")} - set(before.get(table, []))
        new = {c for c in new if c.startswith(("NETAVARK", "CNI-"))}
        if not new:
            continue
        for ln in rules:
            parts = shlex.split(ln)
            if parts[:1] == ["-A"] and "-j" in parts and parts[parts.index("-j") + 1] in new \
                    and parts[1] not in new:
                sh(["iptables", "-t", table, "-D", *parts[1:]], check=False)
        for c in new:
            sh(["iptables", "-t", table, "-F", c], check=False)
        for c in new:
            sh(["iptables", "-t", table, "-X", c], check=False)
