"""Container start: `tcr run --rm --network none IMG /bin/true` vs bare `crun run` of the same config.

Both sides in one run, A/B interleaved after a warm-up, medians of N runs (default 15):
- tcr:  the real `tcr` client -> tcrd (overlay, /etc files, config.json, record) -> tcrd runs
        `crun run` in the foreground as its child, the client attaches and gets the exit code;
        clean-up (umount, rm) happens after the reply, as it does for a user.
- crun: `crun run` of the config.json tcrd generated for the same image (same seccomp, mounts,
        namespaces), on an overlay mounted once beforehand, with a fresh id each time.
The tcr number includes the client's Python start-up. Results go to the `## Container start`
section of docs/benchmarks.md (other sections untouched). Target: tcr / crun <= 1.6.

Exec: `tcr exec CTR /bin/true` (client -> tcrd -> execArgs -> the client execs `crun exec`)
vs a C client of the C tool's protocol (bench/cref/exec_client.c, built here with cc: one request
on tcrd's compat socket, then it execs the execArgs, as the C implementation's client does; the C
tool itself is not on this machine) and vs bare `crun exec` of the same running container;
`## Exec` section.

--before TREE adds a third case, interleaved with the two others: the same run with the tcr of
another checkout (its own tcrd and client, e.g. `git worktree add /tmp/before main`), so a change
is compared under the same load (this machine is shared: absolute numbers drift by 2x).

    /tmp/tv/bin/python bench/bench_run.py [--runs 15] [--no-write] [--before TREE]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.setup_path()

TARGET_RATIO = 1.6  # issue 16 (was 1.3, below the floor of a Python client)
TARGET_EXEC = 1.3   # issue 16: of the C tool's exec (here: a C client of its protocol, against tcrd)
CREF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cref", "exec_client.c")
CLIENT_PYTHON = "/usr/bin/python3"


def client_wrapper(site: str) -> str:
    """The `tcr` script `make install` writes (keep in step with the Makefile's install target)."""
    return (f"#!{CLIENT_PYTHON} -IS\nimport sys\nsys.path.insert(0, {site!r})\n"
            "from tcr.cli.main import main\nsys.exit(main())\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    ap.add_argument("--before", metavar="TREE", help="also time the tcr of this checkout (before/after)")
    ns = ap.parse_args()
    common.need_root()
    from test.root.test_containers_image import build

    work = tempfile.mkdtemp(prefix=f"tcr-bench-run-{os.getpid()}-", dir="/tmp")
    # the compat socket (a private abstract name) serves the C stand-in client of the exec bench
    d = common.BenchDaemon(extra_args=["--compat-socket", f"tcr-bench-{os.getpid()}"])
    old: Optional[common.BenchDaemon] = None
    overlay = os.path.join(work, "ovl")
    crun_root = os.path.join(work, "crun")
    problems = []
    try:
        d.start()
        d.cli("image", "load", build(work))
        # The client as `make install` ships it (Makefile: `#!python3 -IS` wrapper), run by the kernel.
        client = os.path.join(work, "tcr")
        with open(client, "w") as f:
            f.write(client_wrapper(common.TARGET))
        os.chmod(client, 0o755)
        tcr_argv = [client, "--socket", d.socket, "run", "--rm", "--network", "none", "busybox", "/bin/true"]
        old_argv: List[str] = []
        if ns.before:
            old = common.BenchDaemon()
            old.extra_path = [os.path.join(os.path.abspath(ns.before), "target")]
            old.start()
            old.cli("image", "load", build(work, name="busybox-before.sqfs"))
            old_client = os.path.join(work, "tcr-before")
            with open(old_client, "w") as f:
                f.write(client_wrapper(os.path.join(os.path.abspath(ns.before), "target")))
            os.chmod(old_client, 0o755)
            old_argv = [old_client, "--socket", old.socket] + tcr_argv[3:]

        # The reference bundle: the config tcrd generates, for a container started once.
        cid = d.cli("create", "--name", "benchref", "--network", "none", "busybox",
                    "/bin/true").stdout.strip()
        d.cli("start", "benchref")
        d.cli("wait", "benchref")
        cdir = os.path.join(d.root, "containers", cid)
        with open(os.path.join(cdir, "bundle", "config.json")) as f:
            config = json.load(f)
        image = json.loads(d.cli("image", "inspect", "busybox").stdout)
        image = image[0] if isinstance(image, list) else image
        lower = image["rootfs"]
        for sub in ("upper", "work", "merged"):
            os.makedirs(os.path.join(overlay, sub))
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={lower},upperdir={overlay}/upper,workdir={overlay}/work,index=off",
                        f"{overlay}/merged"], check=True)
        bundle = os.path.join(work, "bundle")
        os.makedirs(bundle)
        config["root"]["path"] = os.path.join(overlay, "merged")
        config["linux"]["cgroupsPath"] = f"/tcr-bench-{os.getpid()}"
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f)
        crun = shutil.which("crun") or "crun"
        env = common.env()
        seq = {"n": 0}

        def run_tcr():
            r = subprocess.run(tcr_argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
            if r.returncode != 0:
                raise RuntimeError(f"tcr run failed ({r.returncode}): {r.stderr.decode()}")

        def run_crun():
            seq["n"] += 1
            r = subprocess.run([crun, "--root", crun_root, "run", "--bundle", bundle, f"bench{seq['n']}"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if r.returncode != 0:
                raise RuntimeError(f"crun run failed ({r.returncode}): {r.stderr.decode()}")

        def run_before():
            r = subprocess.run(old_argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
            if r.returncode != 0:
                raise RuntimeError(f"tcr (before) run failed ({r.returncode}): {r.stderr.decode()}")

        def settle(label):
            if label in ("tcr", "before"):  # let tcrd finish the --rm clean-up before the next timing
                daemon, left = (d, cid[:12]) if label == "tcr" else (old, "")
                assert daemon is not None
                deadline = time.monotonic() + 10
                while daemon.cli("ps", "-aq").stdout.strip() != left and time.monotonic() < deadline:
                    time.sleep(0.01)

        cases = {"tcr": run_tcr, "crun": run_crun}
        if ns.before:
            cases["before"] = run_before
        res = common.interleave(cases, runs=ns.runs, warmup=ns.warmup, between=settle)
        t, c = common.median(res["tcr"]), common.median(res["crun"])
        ratio = t / c
        print(f"tcr run --rm: median {common.ms(t)}; bare crun run: median {common.ms(c)}; "
              f"ratio {ratio:.2f}x")
        before_rows = []
        if ns.before:
            b = common.median(res["before"])
            print(f"before ({ns.before}): median {common.ms(b)}; ratio {b / c:.2f}x; "
                  f"after/before {t / b:.2f}")
            before_rows = [[f"tcr run --rm, before ({os.path.basename(ns.before.rstrip('/'))})", common.ms(b),
                            common.ms(min(res["before"])), common.ms(max(res["before"]))]]
        # Where the time goes, for the record: the CLI's interpreter start alone.
        py = common.median([_time([CLIENT_PYTHON, "-I", "-S", "-c", "pass"]) for _ in range(5)])
        ps = common.median([_time(tcr_argv[:3] + ["ps"], env) for _ in range(5)])
        body = (
            "## Container start\n\n"
            f"`bench/bench_run.py`: {common.machine_line()}; {ns.runs} interleaved runs after {ns.warmup} "
            "warm-up, medians.\n"
            "`tcr run --rm --network none busybox /bin/true` (real client, includes its Python start-up "
            "and tcrd's overlay, /etc files, config and record) vs `crun run` of the same generated config "
            f"on a pre-mounted overlay. Target: <= {TARGET_RATIO}x.\n\n"
            + common.table(["case", "median", "min", "max"], [
                ["tcr run --rm", common.ms(t), common.ms(min(res["tcr"])), common.ms(max(res["tcr"]))],
                *before_rows,
                ["crun run", common.ms(c), common.ms(min(res["crun"])), common.ms(max(res["crun"]))],
                ["python3 -I -S -c pass", common.ms(py), "", ""],
                ["tcr ps (client + one RPC)", common.ms(ps), "", ""],
            ])
            + f"\n\nRatio tcr / crun: **{ratio:.2f}x** ({'met' if ratio <= TARGET_RATIO else 'not met'}).\n"
            + (f"Before/after (`--before {ns.before}`, the three cases interleaved under the same load): "
               f"after / before = **{t / common.median(res['before']):.2f}**.\n" if ns.before else "")
            + "Where the difference goes (docs/containers.md, `## Where the start time goes`): the client "
            "(`#!python3 -IS` interpreter start + one RPC, the `tcr ps` row) is the floor; tcrd's run "
            "handler is ~3-5 ms (seccomp evaluation cached, one fsync'd record, written while crun "
            "starts) plus ~4-6 ms for the options parse in a forked worker (so tcrd does not keep "
            "the parser's ~100 kB of code: docs/profile.md). "
            "tcrd owns the container (issue 13): it spawns `crun run` in the foreground "
            "(posix_spawn, a pidfd watch: no `--detach` double fork, no Popen.wait sleep loop) and replies "
            "with the exit code before the clean-up; the client attaches and leaves without the "
            "interpreter's teardown. Both sides load the seccomp filter precompiled by a tcrd worker "
            "(run.oci.seccomp_bpf_data), "
            "which took crun from ~36 to ~15 ms. "
            "With a Python client the 1.3x target is below the floor (interpreter alone ~0.7x crun). "
            "This machine is shared by several sessions: absolute times drift by 2x between runs; compare "
            "within one table.\n"
        )
        print(body)
        exec_body, exec_ratio, exec_of = bench_exec(d, client, env, crun, ns)
        print(exec_body)
        common.record("run", [common.Metric("run", "tcr run --rm / crun run", f"{ratio:.2f}x",
                                            f"<= {TARGET_RATIO}x", ratio <= TARGET_RATIO),
                              common.Metric("run", f"tcr exec / {exec_of} exec, minimums",
                                            f"{exec_ratio:.2f}x", f"<= {TARGET_EXEC}x",
                                            exec_ratio <= TARGET_EXEC)])
        if not ns.no_write:
            common.write_section("Container start", body)
            common.write_section("Exec", exec_body)
    finally:
        subprocess.run(["umount", os.path.join(overlay, "merged")], stderr=subprocess.DEVNULL)
        if os.path.isdir(crun_root):
            for n in os.listdir(crun_root):
                subprocess.run(["crun", "--root", crun_root, "delete", "-f", n], stderr=subprocess.DEVNULL)
        problems += d.cleanup()
        if old is not None:
            problems += old.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    for p in problems:
        print("cleanup:", p, file=sys.stderr)
    return 0


def build_cref(out_dir: str) -> Optional[str]:
    """The C stand-in client (bench/cref/exec_client.c), or None without a C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    out = os.path.join(out_dir, "exec_client")
    subprocess.run([cc, "-O2", "-o", out, CREF], check=True, stdin=subprocess.DEVNULL)
    return out


def bench_exec(d, client, env, crun, ns):
    """`tcr exec CTR /bin/true` vs the C stand-in client's exec and `crun exec` of the same
    container, interleaved. Returns (section, ratio, what the ratio is of)."""
    cid = d.cli("run", "-d", "--name", "benchexec", "--network", "none", "busybox", "sleep",
                "600").stdout.strip()
    cref = build_cref(d.base)
    try:
        crun_root = os.path.join(d.run_dir, "crun")
        tcr_argv = [client, "--socket", d.socket, "exec", "benchexec", "/bin/true"]
        crun_argv = [crun, "--root", crun_root, "exec", cid, "/bin/true"]
        compat = d.extra_args[d.extra_args.index("--compat-socket") + 1]
        cref_argv = [cref, compat, "benchexec", "/bin/true"] if cref else []

        cpu = {}

        def run(argv, what):
            wall, used = common.run_timed(argv, env, what)
            cpu.setdefault(what, []).append(used)
            return wall

        floor_argv = ["/usr/bin/python3", "-I", "-S", "-c", "pass"]
        cases = {"tcr": lambda: run(tcr_argv, "tcr exec"),
                 "crun": lambda: run(crun_argv, "crun exec"),
                 "python": lambda: run(floor_argv, "python3 -I -S -c pass")}
        if cref:
            cases["cref"] = lambda: run(cref_argv, "C client exec")
        res = common.interleave(cases, runs=ns.runs, warmup=ns.warmup)
    finally:
        d.cli("rm", "-f", "benchexec", check=False)
    cpu_tcr, cpu_crun = common.median(cpu["tcr exec"]), common.median(cpu["crun exec"])
    cpu_py = common.median(cpu["python3 -I -S -c pass"])
    t, c = common.median(res["tcr"]), common.median(res["crun"])
    # the verdict on the minimums: medians move with the load of a shared machine, and crun exec's
    # (cgroup and namespace work) differently from a client's start
    ref_key = "cref" if cref else "crun"
    ratio = min(res["tcr"]) / min(res[ref_key])
    ratio_median = t / common.median(res[ref_key])
    # per round: what tcr adds to an interpreter start and a crun exec (imports, one RPC, the exec)
    own = common.median([a - b - p for a, b, p in zip(res["tcr"], res["crun"], res["python"])])
    floor = (min(res["python"]) + min(res["crun"])) / min(res[ref_key])
    rows = [["tcr exec", common.ms(t), common.ms(min(res["tcr"])), common.ms(max(res["tcr"]))]]
    if cref:
        rows.append(["C client of the C tool's protocol (stand-in)", common.ms(common.median(res["cref"])),
                     common.ms(min(res["cref"])), common.ms(max(res["cref"]))])
    rows += [["bare crun exec", common.ms(c), common.ms(min(res["crun"])), common.ms(max(res["crun"]))],
             ["python3 -I -S -c pass", common.ms(common.median(res["python"])), common.ms(min(res["python"])),
              common.ms(max(res["python"]))]]
    of = "the C stand-in client's" if cref else "bare crun's (no C compiler for the stand-in)"
    body = (
        "## Exec\n\n"
        f"`bench/bench_run.py`: {common.machine_line()}; {ns.runs} interleaved runs after {ns.warmup} "
        "warm-up.\n"
        "`tcr exec CTR /bin/true` (the installed client: one RPC, then it execs `crun exec` itself) vs "
        "the same exec by a C client of the C tool's protocol (bench/cref/exec_client.c: one request on "
        "tcrd's compat socket, then it execs the execArgs, which is what the C implementation's client "
        "does; the C tool itself is not on this machine, so its daemon's share is tcrd's here) and vs "
        f"bare `crun exec` of the same running container. Target: <= {TARGET_EXEC}x of the C tool's.\n\n"
        + common.table(["case", "median", "min", "max"], rows)
        + f"\n\nRatio tcr / {of} exec, of the minimums: **{ratio:.2f}x** "
        f"({'met' if ratio <= TARGET_EXEC else 'not met'}); of the medians {ratio_median:.2f}x. "
        f"tcr / bare crun exec (minimums): {min(res['tcr']) / min(res['crun']):.2f}x. "
        "The floor for any Python client is (interpreter start + crun exec), "
        f"{floor:.2f}x of the reference (minimums)"
        + (f": above {TARGET_EXEC}x, so no Python client can meet the target on this machine (a CPython "
           "start costs about as much as `crun exec` itself). " if floor > TARGET_EXEC else ". ")
        + "What tcr itself adds on top "
        f"(imports, one RPC of ~0.2 ms in tcrd, the exec; median of per-round differences): "
        f"{own * 1000:.1f} ms. CPU time (medians): tcr exec {cpu_tcr * 1000:.1f} ms, crun exec "
        f"{cpu_crun * 1000:.1f} ms, `python3 -I -S -c pass` {cpu_py * 1000:.1f} ms"
        + (f", C client exec {common.median(cpu['C client exec']) * 1000:.1f} ms" if cref else "")
        + f": tcr's own share {(cpu_tcr - cpu_crun - cpu_py) * 1000:.1f} ms.\n"
    )
    return body, ratio, of


def _time(argv, env=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
