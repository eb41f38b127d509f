"""Found on the emulated board under BusyBox init (make board-test): with loop built as a module
and no udev, nothing creates /dev/loop-control, so tcrd refused to start ("prerequisite missing:
loop"). Under systemd, kmod static-nodes makes the node and opening it loads the module. tcrd now
makes the node itself (misc 10:237) and opens it, which loads the module.

Reproduced here in a private mount namespace whose /dev is an empty tmpfs (what a board without
udev or mdev has before the loop module is loaded)."""

import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.root

TARGET = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "target")

PROBE = """
import os, stat
from tcr.check import daemon_prerequisites
loop = [c for c in daemon_prerequisites() if c.name == "loop"][0]
st = os.stat("/dev/loop-control") if os.path.exists("/dev/loop-control") else None
print(loop.ok, loop.detail, st is not None and stat.S_ISCHR(st.st_mode), st and os.major(st.st_rdev),
      st and os.minor(st.st_rdev))
"""


def test_tcrd_makes_dev_loop_control_where_no_udev_did():
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) not installed")
    script = f"mount -t tmpfs -o mode=0755 tmpfs /dev && exec {sys.executable} -c '{PROBE}'"
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, PYTHONPATH=TARGET))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "/dev/loop-control", "True", "10", "237"], r.stdout + r.stderr
