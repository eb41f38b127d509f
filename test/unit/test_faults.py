"""tcr.common.faults: armed only by TCR_TEST_FAULTS=1 plus a named point; then SIGKILL."""

import os
import signal
import subprocess
import sys

from tcr.common import faults

TARGET = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "target")

SCRIPT = (
    "import sys\n"
    "from tcr.common.faults import fault\n"
    "fault('other.point')\n"
    "print('before', flush=True)\n"
    "fault('image.after_mount')\n"
    "print('after', flush=True)\n"
)


def _run(env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TCR_")}
    env["PYTHONPATH"] = TARGET
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)


def test_unarmed_is_a_no_op():
    r = _run({})
    assert r.returncode == 0 and r.stdout.split() == ["before", "after"]


def test_points_without_the_test_switch_do_nothing():
    r = _run({"TCR_FAULT_POINTS": "image.after_mount"})
    assert r.returncode == 0 and r.stdout.split() == ["before", "after"]


def test_switch_without_matching_point_does_nothing():
    for v in ("image.after_loop_attach", "", " , ,", "image.after_moun"):
        r = _run({"TCR_TEST_FAULTS": "1", "TCR_FAULT_POINTS": v})
        assert r.returncode == 0 and r.stdout.split() == ["before", "after"], v


def test_armed_point_kills_with_sigkill_exactly_there():
    r = _run({"TCR_TEST_FAULTS": "1", "TCR_FAULT_POINTS": "x, image.after_mount ,y"})
    assert r.returncode == -signal.SIGKILL
    assert r.stdout.split() == ["before"]


def test_switch_must_be_exactly_1():
    r = _run({"TCR_TEST_FAULTS": "yes", "TCR_FAULT_POINTS": "image.after_mount"})
    assert r.returncode == 0


def test_armed_parser():
    assert faults._armed({}) == frozenset()
    assert faults._armed({"TCR_FAULT_POINTS": "a"}) == frozenset()
    assert faults._armed({"TCR_TEST_FAULTS": "1", "TCR_FAULT_POINTS": "a, b,,"}) == {"a", "b"}


def test_point_names_are_unique_and_dotted():
    assert len(set(faults.POINTS)) == len(faults.POINTS)
    assert all("." in p and p == p.strip() and "," not in p for p in faults.POINTS)


def test_this_process_is_not_armed():
    # The test suite itself must never run armed (a stray env would kill pytest).
    assert not faults.ARMED or os.environ.get("TCR_TEST_FAULTS") == "1"


def test_every_listed_point_is_called_exactly_once_in_the_daemon_code():
    import re

    pkg = os.path.join(TARGET, "tcr")
    called = []
    for dirpath, _dirs, files in os.walk(pkg):
        for f in files:
            if f.endswith(".py") and not (dirpath.endswith("common") and f == "faults.py"):
                with open(os.path.join(dirpath, f)) as fh:
                    called += re.findall(r'\bfault\("([a-z0-9_.]+)"\)', fh.read())
    assert sorted(called) == sorted(faults.POINTS)


def test_errno_points_raise_the_armed_oserror_only_with_the_switch():
    import errno

    assert faults._failing({"TCR_FAULT_ERRNO": "state.write=EIO"}) == {}
    armed = faults._failing({"TCR_TEST_FAULTS": "1", "TCR_FAULT_ERRNO": "state.write=EIO, x=ENOSPC,y=NOPE"})
    assert armed == {"state.write": errno.EIO, "x": errno.ENOSPC}
    faults.fail("state.write", "/x")  # this process is not armed: nothing happens


def test_every_errno_point_is_called_exactly_once():
    import re

    called = []
    for dirpath, _dirs, files in os.walk(os.path.join(TARGET, "tcr")):
        for f in files:
            if f.endswith(".py") and f != "faults.py":
                with open(os.path.join(dirpath, f)) as fh:
                    called += re.findall(r'\bfail\("([a-z0-9_.]+)"', fh.read())
    assert sorted(called) == sorted(faults.ERRNO_POINTS)
