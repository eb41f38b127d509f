"""tcr.containers.seccomp_cache: the daemon never compiles a filter itself; a worker fills the cache."""

import base64
import sys

import pytest

from tcr.containers import seccomp, seccomp_bpf, seccomp_cache
from tcr.daemon.loop import EventLoop
from test.unit.test_seccomp_bpf import DEFAULT_CAPS, have_lib


@pytest.fixture
def loop():
    seccomp_cache.clear()
    lp = EventLoop()
    lp.call_later(60, lambda: (lp.stop(), pytest.fail("event loop watchdog fired")))
    yield lp
    lp.close()
    seccomp_cache.clear()


def run_until(loop, cond):
    while not cond():
        loop.run_once(0.05)


@have_lib
def test_miss_starts_a_worker_and_the_next_run_gets_the_program(loop):
    oci = seccomp.default_for("amd64", DEFAULT_CAPS, (6, 1))
    first = {"linux": {"seccomp": oci}}
    assert seccomp_cache.annotate(first, loop) is False  # crun compiles this one itself
    assert "annotations" not in first
    assert seccomp_cache.annotate({"linux": {"seccomp": oci}}, loop) is False  # one worker per filter
    assert len(seccomp_cache._compiling) == 1
    run_until(loop, lambda: not seccomp_cache._compiling)
    second = {"linux": {"seccomp": oci}}
    assert seccomp_cache.annotate(second, loop) is True
    data = base64.b64decode(second["annotations"][seccomp_cache.ANNOTATION])
    assert data == seccomp_bpf.compile(oci)
    assert seccomp_cache.ANNOTATION == seccomp_bpf.ANNOTATION


def test_daemon_side_does_not_load_ctypes_or_libseccomp(loop):
    import os
    import subprocess

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    target = os.path.join(repo, "target")
    code = ("import sys; from tcr.containers import seccomp_cache; from tcr.daemon import worker; "
            "print(sorted({'ctypes', '_ctypes', 'tcr.containers.seccomp_bpf'} & set(sys.modules)))")
    boot = f"import sys; sys.path.insert(0, {target!r}); "
    r = subprocess.run([sys.executable, "-I", "-S", "-c", boot + code], capture_output=True, text=True,
                       timeout=60)
    assert r.stdout.strip() == "[]", r.stderr


def test_filter_crun_must_compile_is_remembered_as_such(loop):
    oci = {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"], "syscalls": []}
    assert seccomp_cache.annotate({"linux": {"seccomp": oci}}, loop) is False
    run_until(loop, lambda: not seccomp_cache._compiling)
    assert list(seccomp_cache._cache.values()) == [None]
    cfg = {"linux": {"seccomp": oci}}
    assert seccomp_cache.annotate(cfg, loop) is False and "annotations" not in cfg
    assert not seccomp_cache._compiling  # no second worker


def test_without_a_loop_compiles_in_process():
    seccomp_cache.clear()
    cfg = {"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["X"], "syscalls": []}}}
    assert seccomp_cache.annotate(cfg) is False
    assert seccomp_cache.annotate({"linux": {}}) is False
    seccomp_cache.clear()
