"""buildroot/package/tcr/S30tcr-cgroup2, the cgroup v2 mount tcr installs under BusyBox init on
Buildroot releases without cgroupfs-v2-mount (before 2025.05): it really mounts cgroup v2 and is
a no-op when a cgroup file system is already there. Runs in a private mount namespace (unshare),
on a temporary mount point, so nothing outside the test is touched."""

import os
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.root

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "buildroot", "package", "tcr", "S30tcr-cgroup2")


def in_private_mount_ns(shell: str, mnt: str) -> subprocess.CompletedProcess:
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) not installed")
    env = dict(os.environ, CGROUP_ROOT=mnt, S=SCRIPT)
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", shell], env=env,
                          capture_output=True, text=True, timeout=60)


def test_start_mounts_cgroup2_once(tmp_path):
    mnt = str(tmp_path / "cgroup")
    r = in_private_mount_ns(
        'sh "$S" start && awk -v m="$CGROUP_ROOT" \'$5 == m {print "MOUNT", $0}\' /proc/self/mountinfo '
        '&& cat "$CGROUP_ROOT/cgroup.controllers" >/dev/null && echo CONTROLLERS-FILE '
        '&& sh "$S" start && sh "$S" stop', mnt)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Mounting tcr-cgroup2: OK"
    mounts = [x for x in lines if x.startswith("MOUNT ")]
    assert len(mounts) == 1 and " - cgroup2 " in mounts[0]
    assert "CONTROLLERS-FILE" in lines
    assert "Mounting tcr-cgroup2: already mounted" in lines
    # the private namespace is gone: nothing is left mounted here
    with open("/proc/self/mountinfo") as f:
        assert mnt not in f.read()


def test_start_leaves_an_existing_v1_or_v2_mount_alone(tmp_path):
    mnt = str(tmp_path / "cgroup")
    r = in_private_mount_ns(
        'mkdir -p "$CGROUP_ROOT" && mount -t cgroup2 none "$CGROUP_ROOT" && sh "$S" start '
        '&& awk -v m="$CGROUP_ROOT" \'$5 == m\' /proc/self/mountinfo | wc -l', mnt)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == ["Mounting tcr-cgroup2: already mounted", "1"]


def test_usage(tmp_path):
    r = subprocess.run(["sh", SCRIPT, "bogus"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "Usage:" in r.stdout
