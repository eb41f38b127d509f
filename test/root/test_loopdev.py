"""Loop devices from Python on the real kernel: configure, autoclear, and the fd/mount ordering."""

import os
import tempfile

import pytest

from tcr.kernel import loopdev, mountinfo
from tcr.kernel import mount as kmount
from test.fixtures.images import tiny_sqfs
from test.fixtures.process import wait_for

pytestmark = pytest.mark.root

INFO = {"version": 1, "image": {"registry": "docker.io", "repository": "library/tiny", "tag": "latest",
                                "digest": "sha256:" + "4" * 64, "arch": "amd64"}, "bundlePath": "bundle",
        "created": 1}


@pytest.fixture
def sqfs():
    d = tempfile.mkdtemp(prefix=f"tcr-loop-{os.getpid()}-")
    p = tiny_sqfs(d, INFO)
    yield p
    for m in mountinfo.under(d):
        kmount.umount_quiet(m.mount_point, kmount.MNT_DETACH)
    for n in loopdev.find_by_backing(p):
        loopdev.detach(n)
    import shutil

    shutil.rmtree(d)


def test_attach_is_read_only_and_autoclear(sqfs):
    dev = loopdev.attach(sqfs)
    try:
        assert loopdev.backing_file(dev.number) == os.path.realpath(sqfs)
        fl = loopdev.flags(dev.number)
        assert fl & loopdev.LO_FLAGS_READ_ONLY and fl & loopdev.LO_FLAGS_AUTOCLEAR
        assert dev.number in loopdev.find_by_backing(sqfs)
    finally:
        dev.close()
    # Nothing mounted: closing the last fd released the device.
    assert loopdev.backing_file(dev.number) is None


def test_fd_kept_until_mount_then_mount_holds_the_device(sqfs):
    mnt = os.path.join(os.path.dirname(sqfs), "mnt")
    os.mkdir(mnt)
    dev = loopdev.attach(sqfs)
    kmount.mount(dev.path, mnt, "squashfs", kmount.MS_RDONLY | kmount.MS_NODEV | kmount.MS_NOSUID)
    dev.close()
    try:
        assert loopdev.backing_file(dev.number) == os.path.realpath(sqfs)
        with open(os.path.join(mnt, "bundle", "rootfs", "etc", "hostname")) as f:
            assert f.read() == "tiny\n"
        m = mountinfo.find(mnt)
        assert m.fstype == "squashfs" and (m.major, m.minor) == (7, dev.number)
        assert "ro" in m.options.split(",") and "nodev" in m.options and "nosuid" in m.options
    finally:
        kmount.umount(mnt)
    # autoclear at umount: the kernel clears the device from a work queue, so under load it can
    # lag behind umount() returning (seen on a busy 2-core machine)
    wait_for(lambda: loopdev.backing_file(dev.number) != os.path.realpath(sqfs), what="loop autoclear")


def test_closing_the_fd_before_mounting_loses_the_device(sqfs):
    """Why the fd must stay open: the C implementation's order fails on this kernel."""
    mnt = os.path.join(os.path.dirname(sqfs), "mnt")
    os.mkdir(mnt)
    dev = loopdev.attach(sqfs)
    path = dev.path
    dev.close()
    with pytest.raises(OSError):
        kmount.mount(path, mnt, "squashfs", kmount.MS_RDONLY)
    assert mountinfo.find(mnt) is None


def test_two_attaches_get_two_devices(sqfs):
    a = loopdev.attach(sqfs)
    b = loopdev.attach(sqfs)
    try:
        assert a.number != b.number
        assert set(loopdev.find_by_backing(sqfs)) == {a.number, b.number}
    finally:
        a.close()
        b.close()
    assert loopdev.find_by_backing(sqfs) == []
