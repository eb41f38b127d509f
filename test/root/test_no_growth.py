"""No growth (issue 11 §5), the short version of bench/bench_growth.py: tcrd's VmRSS over a fixed
number of everyday operations after a warm-up stays within a bound. Not a timing: counts and
kilobytes. The bench measured +0 kB over 1000 load/rm cycles and a spread of a few hundred kB over
1000 containers (docs/benchmarks.md, "No growth"); the bound here, 1 MB over 60-100 operations, is
far above that noise and far below real leaks: the old PySquashfsImage growth was ~40 kB per load
(+27 MB over 700), so 60 loads would have grown ~2.4 MB.
"""

import os

import pytest

from test.fixtures.daemon import managed_tcrd
from test.root.test_containers_image import build

pytestmark = pytest.mark.root

BOUND_KB = 1024


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def rpc(d, *args):
    from tcr.rpc import client

    s = client.connect(d.socket)
    try:
        reply = client.call(s, args[0], list(args[1:]))
    finally:
        s.close()
    assert reply.get("kind") == "result" and not reply.get("exit_code"), (args, reply, d.log())
    return reply.get("stdout", "")


def growth(d, step, warmup: int, count: int) -> int:
    for i in range(warmup):
        step(i)
    start = rss_kb(d.pid)
    for i in range(count):
        step(warmup + i)
    return rss_kb(d.pid) - start


@pytest.mark.parametrize("zstandard", ["with", "without"])
def test_tcrd_does_not_grow_over_image_load_and_rm(tmp_path, monkeypatch, zstandard):
    if zstandard == "without":  # validation then goes through a private mount
        shim = tmp_path / "shim" / "zstandard"
        shim.mkdir(parents=True)
        (shim / "__init__.py").write_text("raise ImportError('hidden by test_no_growth')\n")
        monkeypatch.setenv("PYTHONPATH", str(shim.parent))
    src = build(str(tmp_path))
    with managed_tcrd(prefix="tcrd-growth") as d:
        def step(_i: int) -> None:
            rpc(d, "image", "rm", rpc(d, "image", "load", "-q", src).strip())

        g = growth(d, step, warmup=20, count=60)
        assert g <= BOUND_KB, f"tcrd grew {g} kB over 60 load/rm cycles ({zstandard} zstandard)"


def test_tcrd_does_not_grow_over_short_containers_and_ps(tmp_path):
    src = build(str(tmp_path))
    with managed_tcrd(prefix="tcrd-growth") as d:
        iid = rpc(d, "image", "load", "-q", src).strip()
        os.unlink(src)

        def run_one(i: int) -> None:
            net = ("--network", "none") if i % 2 else ()
            r = d.cli("run", "--rm", *net, iid, "/bin/true", timeout=60)
            assert r.returncode == 0, r.stderr

        g = growth(d, run_one, warmup=20, count=60)
        assert g <= BOUND_KB, f"tcrd grew {g} kB over 60 `run --rm` (half on the bridge network)"
        assert rpc(d, "ps", "-aq") == ""
        g = growth(d, lambda _i: rpc(d, "ps", "-a"), warmup=100, count=1000)
        assert g <= BOUND_KB // 2, f"tcrd grew {g} kB over 1000 ps"
