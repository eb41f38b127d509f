"""The tcrd fixture's leak check sees loop devices whose backing file was on a filesystem detached
with `umount -l` (the path the kernel then shows, e.g. /images/ID/image.sqfs, is relative to a root
nobody can reach, so a match on the test's base path missed 13 of them on the shared machine)."""

import os
import shutil
import subprocess
import tempfile

import pytest

from test.fixtures.daemon import LeakWatch, loops_under

pytestmark = pytest.mark.root


def test_leak_watch_sees_a_loop_device_on_a_lazily_detached_tmpfs():
    base = tempfile.mkdtemp(prefix=f"tcr-leakwatch-{os.getpid()}-", dir="/tmp")
    root = os.path.join(base, "root")
    os.makedirs(root)
    dev = ""
    mounted = False
    try:
        watch = LeakWatch(base)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tcr-leakwatch", root], check=True)
        mounted = True
        watch.note_filesystems()
        img = os.path.join(root, "images", "0123456789abcdef", "image.sqfs")
        os.makedirs(os.path.dirname(img))
        with open(img, "wb") as f:
            f.truncate(64 * 1024)
        dev = subprocess.run(["losetup", "-f", "--show", "-r", img], check=True, capture_output=True,
                             text=True).stdout.strip()
        n = int(dev[len("/dev/loop"):])
        assert n in watch.leaked()  # while mounted: by path and by device
        subprocess.run(["umount", "-l", root], check=True)
        mounted = False
        assert loops_under(base) == []  # the old check is blind now
        assert n in watch.leaked(), watch.loops()
        assert watch.loops() == [f"{dev} -> {watch.leaked()[n]}"]
        fresh = LeakWatch(base)  # a watch begun after it: not this test's leak
        assert n not in fresh.leaked()
        watch.detach_leaked()
        assert n not in watch.leaked()
        dev = ""
    finally:
        if dev:
            subprocess.run(["losetup", "-d", dev], capture_output=True)
        if mounted:
            subprocess.run(["umount", "-l", root], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
