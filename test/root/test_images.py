"""The image manager on the real kernel (in-process, no daemon): load, lookup, remove, verify, recover."""

import os
import shutil
import sys
import tempfile
from types import SimpleNamespace

import pytest

from tcr.common.errors import IN_USE, ImageNotFound, InUse, InvalidArgument, TcrError
from tcr.daemon.state import StateStore
from tcr.formats.xxh64 import image_id
from tcr.images.manager import ImageManager
from tcr.kernel import loopdev, mountinfo
from tcr.kernel import mount as kmount
from test.fixtures.daemon import leak_report
from test.fixtures.images import c_tool_sqfs, image_info, tiny_sqfs, variant_digest

pytestmark = pytest.mark.root


class Env:
    def __init__(self):
        self.base = tempfile.mkdtemp(prefix=f"tcr-img-{os.getpid()}-")
        self.root = os.path.join(self.base, "root")
        self.src = os.path.join(self.base, "src")
        os.makedirs(self.src)
        self.daemon = SimpleNamespace(containers=None)
        self.mgr = self.new_manager()

    def new_manager(self) -> ImageManager:
        return ImageManager(self.root, StateStore(self.root), daemon=self.daemon)

    def loops(self):
        """This test's loop devices (others' daemons may attach theirs meanwhile)."""
        return {n: bf for n, bf in loopdev.attached().items() if bf.startswith(self.base + "/")}

    def image_dirs(self):
        d = os.path.join(self.root, "images")
        if not os.path.isdir(d):
            return []
        return sorted(n for n in os.listdir(d) if os.path.isdir(os.path.join(d, n)))


@pytest.fixture
def env():
    e = Env()
    try:
        yield e
    finally:
        for r in list(e.mgr.records.values()):
            try:
                e.mgr.remove(r.id)
            except TcrError:
                pass
        leaks = leak_report(e.base)
        for m in mountinfo.under(e.base):
            kmount.umount_quiet(m.mount_point, kmount.MNT_DETACH)
        for n, bf in loopdev.attached().items():
            if bf.startswith(e.base + "/"):
                loopdev.detach(n)
        shutil.rmtree(e.base, ignore_errors=True)
        assert leaks == []


def test_load_mounts_read_only_and_keeps_the_file(env):
    src = c_tool_sqfs(env.src, sidecar=True)
    rec = env.mgr.load(src)
    assert rec.id == image_id(rec.info.digest)  # C-tool image-info has no id: derived from the digest
    assert rec.tags == ("docker.io/library/busybox:latest",)
    assert os.path.isfile(os.path.join(rec.rootfs, "bin", "busybox"))
    assert os.path.isfile(rec.config_path)
    m = mountinfo.find(rec.mountpoint)
    assert m.fstype == "squashfs" and m.source == rec.loop
    assert {"ro", "nodev", "nosuid"} <= set(m.options.split(","))
    assert loopdev.backing_file(loopdev.number_of(rec.loop)) == rec.stored
    st = os.stat(rec.stored)  # the store's own inode: root's, read-only, in a root-only directory
    assert st.st_ino != os.stat(src).st_ino and st.st_nlink == 1
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o444)
    assert os.stat(os.path.dirname(rec.stored)).st_mode & 0o777 == 0o700
    assert rec.stored_file.size == st.st_size and len(rec.stored_file.sha256) == 64
    assert os.path.isfile(rec.sidecar)
    assert os.path.isfile(os.path.join(env.root, "images", rec.id + ".json"))
    os.unlink(src)  # the user's file can go; the image does not care
    assert os.path.isfile(os.path.join(rec.rootfs, "bin", "busybox"))
    assert [d for d in env.image_dirs() if d.startswith(".")] == []


def test_loading_the_same_image_again_is_a_no_op(env):
    src = c_tool_sqfs(env.src)
    a = env.mgr.load(src)
    loops = env.loops()
    b = env.mgr.load(src)
    assert a == b and env.loops() == loops and env.image_dirs() == [a.id]


def test_lookup_after_load(env):
    rec = env.mgr.load(c_tool_sqfs(env.src))
    for ref in ("busybox", "busybox:latest", "docker.io/library/busybox:latest", rec.id, rec.id[:6],
                rec.info.digest, f"busybox@{rec.info.digest}"):
        assert env.mgr.get(ref) == rec, ref
    with pytest.raises(ImageNotFound):
        env.mgr.get("busybox:nope")


def test_newer_image_takes_the_tag(env):
    old = env.mgr.load(c_tool_sqfs(env.src))
    new = env.mgr.load(c_tool_sqfs(env.src, digest=variant_digest("newer")))
    assert new.id != old.id
    assert env.mgr.get("busybox") == new
    old_now = env.mgr.get(old.id)
    assert old_now.tags == () and env.mgr.is_mounted(old_now)
    # persisted: a fresh manager sees the same
    m2 = env.new_manager()
    m2.recover()
    assert m2.get("busybox").id == new.id and m2.get(old.id).tags == ()


def test_wrong_arch_is_refused_and_nothing_is_left(env):
    loops = env.loops()
    with pytest.raises(InvalidArgument) as ei:
        env.mgr.load(c_tool_sqfs(env.src, arch="arm64"))
    msg = str(ei.value)
    assert "arm64" in msg and "amd64" in msg
    assert env.image_dirs() == [] and env.mgr.records == {} and env.loops() == loops


def test_invalid_image_is_refused_before_mounting(env):
    p = tiny_sqfs(env.src, {"version": 1, "image": {"registry": "", "repository": "x", "tag": "",
                                                      "digest": "sha256:" + "9" * 64, "arch": "amd64"},
                            "bundlePath": "bundle", "created": 1}, with_config=False)
    loops = env.loops()
    with pytest.raises(InvalidArgument, match="config.json"):
        env.mgr.load(p)
    with pytest.raises(InvalidArgument, match="no such file"):
        env.mgr.load(os.path.join(env.src, "missing.sqfs"))
    with pytest.raises(InvalidArgument, match="not a regular file"):
        env.mgr.load(env.src)
    assert env.image_dirs() == [] and env.loops() == loops


def test_zstd_without_zstandard_validates_through_a_private_mount(env, monkeypatch):
    monkeypatch.setitem(sys.modules, "zstandard", None)
    rec = env.mgr.load(c_tool_sqfs(env.src))
    assert env.mgr.is_mounted(rec) and os.path.isfile(os.path.join(rec.rootfs, "bin", "busybox"))
    assert env.image_dirs() == [rec.id]
    assert len(loopdev.find_by_backing(rec.stored)) == 1
    # ... and a wrong-arch image is still refused, leaving nothing behind
    loops = env.loops()
    with pytest.raises(InvalidArgument, match="arm64"):
        env.mgr.load(c_tool_sqfs(env.src, arch="arm64"))
    assert env.image_dirs() == [rec.id] and env.loops() == loops


def test_remove_unmounts_and_frees_the_loop_device(env):
    rec = env.mgr.load(c_tool_sqfs(env.src))
    n = loopdev.number_of(rec.loop)
    env.mgr.remove("busybox")
    assert mountinfo.find(rec.mountpoint) is None
    assert loopdev.backing_file(n) is None
    assert env.image_dirs() == [] and not os.path.exists(os.path.join(env.root, "images", rec.id + ".json"))
    with pytest.raises(ImageNotFound):
        env.mgr.get(rec.id)


def test_remove_refuses_an_image_in_use(env):
    rec = env.mgr.load(c_tool_sqfs(env.src))
    env.daemon.containers = SimpleNamespace(uses_image=lambda iid: iid == rec.id)
    with pytest.raises(InUse) as ei:
        env.mgr.remove(rec.id)
    assert ei.value.code == IN_USE and "in use" in str(ei.value)
    assert env.mgr.is_mounted(rec)
    env.daemon.containers = None


def test_verify(env):
    rec = env.mgr.load(c_tool_sqfs(env.src, sidecar=True))
    assert len(env.mgr.verify(rec.id)) == 64
    with open(rec.sidecar, "w") as f:
        f.write("0" * 64 + "  x.sqfs\n")
    with pytest.raises(TcrError, match="MISMATCH"):
        env.mgr.verify(rec.id)
    os.unlink(rec.sidecar)
    # Without a sidecar the digest recorded at load still catches a change.
    assert env.mgr.verify(rec.id) == rec.stored_file.sha256
    with open(rec.stored, "r+b") as f:
        f.seek(rec.stored_file.size // 2)
        b = f.read(1)
        f.seek(rec.stored_file.size // 2)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(TcrError, match="MISMATCH.*recorded at load"):
        env.mgr.verify(rec.id)


def test_recover_keeps_mounted_images_without_new_loop_devices(env):
    rec = env.mgr.load(c_tool_sqfs(env.src))
    loops = env.loops()
    m2 = env.new_manager()
    assert m2.recover() == []
    assert m2.get(rec.id).loop == rec.loop and env.loops() == loops
    env.mgr = m2


def test_recover_remounts_an_unmounted_image(env):
    rec = env.mgr.load(c_tool_sqfs(env.src))
    kmount.umount(rec.mountpoint)
    assert loopdev.find_by_backing(rec.stored) == []
    m2 = env.new_manager()
    assert m2.recover() == []
    env.mgr = m2
    assert m2.is_mounted(m2.get(rec.id))
    assert len(loopdev.find_by_backing(rec.stored)) == 1
    assert os.path.isfile(os.path.join(rec.rootfs, "bin", "busybox"))


def test_recover_reuses_an_attached_loop_device(env):
    rec = env.mgr.load(c_tool_sqfs(env.src))
    kmount.umount(rec.mountpoint)
    held = loopdev.attach(rec.stored)  # e.g. a crash between attach and mount, fd still held elsewhere
    try:
        m2 = env.new_manager()
        m2.recover()
        env.mgr = m2
        assert m2.get(rec.id).loop == held.path
        assert loopdev.find_by_backing(rec.stored) == [held.number]
    finally:
        held.close()


def test_recover_drops_records_whose_file_is_gone_and_cleans_leftovers(env):
    rec = env.mgr.load(c_tool_sqfs(env.src))
    kmount.umount(rec.mountpoint)
    os.unlink(rec.stored)
    # a half-made load: staging dir with a mounted image and no record
    other = c_tool_sqfs(env.src, digest=variant_digest("half"))
    staging = os.path.join(env.root, "images", ".load-crashed")
    os.makedirs(os.path.join(staging, "mnt"))
    shutil.copyfile(other, os.path.join(staging, "image.sqfs"))
    dev = loopdev.attach(os.path.join(staging, "image.sqfs"))
    kmount.mount(dev.path, os.path.join(staging, "mnt"), "squashfs", kmount.MS_RDONLY)
    dev.close()
    # and a damaged record
    with open(os.path.join(env.root, "images", "feedfeedfeedfeed.json"), "w") as f:
        f.write("{broken")
    m2 = env.new_manager()
    problems = m2.recover()
    env.mgr = m2
    assert m2.records == {}
    text = "\n".join(problems)
    assert f"image {rec.id}: file {rec.stored} is gone" in text
    assert "leftover image directory" in text and ".load-crashed" in text
    assert "feedfeedfeedfeed.json: damaged" in text
    assert env.image_dirs() == [] and mountinfo.under(env.root) == []
    assert leak_report(env.base) == []


def test_copy_when_on_another_filesystem(env):
    shm = tempfile.mkdtemp(dir="/dev/shm")
    try:
        if os.stat(shm).st_dev == os.stat(env.base).st_dev:
            pytest.skip("/dev/shm and /tmp are the same filesystem here")
        src = c_tool_sqfs(shm, sidecar=True)
        rec = env.mgr.load(src)
        assert os.stat(rec.stored).st_ino != os.stat(src).st_ino
        assert env.mgr.verify(rec.id)
    finally:
        shutil.rmtree(shm)


def test_image_info_of_the_fixture_has_no_id():
    assert "id" not in image_info()["image"]


def test_record_of_an_older_tcr_gets_the_store_its_own_inode_at_recovery(env):
    """A v1 record's file was a hard link to the user's file: recovery copies it before mounting."""
    src = c_tool_sqfs(env.src)
    rec = env.mgr.load(src)
    kmount.umount(rec.mountpoint)  # a reboot
    os.unlink(rec.stored)
    os.link(src, rec.stored)  # what tcr before record v2 kept
    old = rec.to_dict()
    old["version"] = 1
    del old["storedFile"]
    env.mgr.store.save("images", rec.id, old)
    m2 = env.new_manager()
    assert m2.recover() == []
    env.mgr = m2
    now = m2.get(rec.id)
    assert now.version == 2 and now.stored_file is not None
    st = os.stat(now.stored)
    assert st.st_ino != os.stat(src).st_ino and st.st_nlink == 1 and st.st_mode & 0o777 == 0o444
    assert m2.is_mounted(now) and os.stat(src).st_nlink == 1
    m3 = env.new_manager()  # and the migrated record passes the boot check next time
    kmount.umount(now.mountpoint)
    assert m3.recover() == [] and m3.is_mounted(m3.get(rec.id))
    env.mgr = m3


def test_fsverity_where_the_filesystem_has_it_else_the_record(env):
    """ext4 -O verity: the stored file gets fs-verity when the kernel can; this kernel cannot
    (EOPNOTSUPP), so the load falls back to the size/mtime/digest record."""
    import subprocess

    from tcr.kernel import fsverity

    img = os.path.join(env.base, "verity.ext4")
    with open(img, "wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "verity", img], check=True)
    mnt = os.path.join(env.base, "vfs")
    os.makedirs(mnt)
    subprocess.run(["mount", "-o", "loop", img, mnt], check=True)
    try:
        probe = os.path.join(mnt, "probe")
        with open(probe, "wb") as f:
            f.write(b"p" * 8192)
        ok, why = fsverity.enable(probe)
        root = os.path.join(mnt, "root")
        mgr = ImageManager(root, StateStore(root), daemon=env.daemon)
        rec = mgr.load(c_tool_sqfs(env.src, sidecar=True))
        try:
            assert rec.stored_file.verity is ok
            if ok:
                assert fsverity.is_enabled(rec.stored) is True
                with pytest.raises(PermissionError):
                    open(rec.stored, "r+b").close()  # noqa: SIM115 - even root cannot write it
            else:
                assert why and "\n" not in why
            assert mgr.verify(rec.id) == rec.stored_file.sha256
            kmount.umount(rec.mountpoint)
            m2 = ImageManager(root, StateStore(root), daemon=env.daemon)
            assert m2.recover() == [] and m2.is_mounted(m2.get(rec.id))
            mgr = m2
        finally:
            for r in list(mgr.records.values()):
                mgr.remove(r.id)
    finally:
        subprocess.run(["umount", mnt], check=True)


def test_an_image_that_does_not_fit_is_refused_in_one_line_before_copying(env):
    """A full state root: one clear line naming the room needed and free, nothing left behind."""
    import subprocess

    small = os.path.join(env.base, "small")
    os.makedirs(small)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tcr-test-small", small], check=True)
    try:
        src = c_tool_sqfs(env.src, digest=variant_digest("too-big"), name="big.sqfs")
        with open(src, "ab") as f:
            f.write(os.urandom(24 << 20))
        root = os.path.join(small, "root")
        mgr = ImageManager(root, StateStore(root), daemon=env.daemon)
        with pytest.raises(TcrError) as ei:
            mgr.load(src)
        msg = str(ei.value)
        assert msg.startswith(f"image load: not enough space for the image in {root}: it needs 24 MiB")
        assert "MiB free" in msg and "\n" not in msg
        assert mgr.records == {} and os.listdir(os.path.join(root, "images")) == []
    finally:
        subprocess.run(["umount", small], check=True)


def test_a_load_mounts_and_fsyncs_only_in_workers_never_on_the_loop(env, monkeypatch):
    """The loop device, the mount and every fsync of a load (the stored file, the directories, the
    record) happen inside the worker functions; tcrd's loop only hands off and keeps its books
    (was: attach, mount and the fsync'd record ran on the loop, 30-75 ms for a 500 MB image on a
    busy disk: `tcr ps` waited). The worker is simulated in-process, its calls marked."""
    from tcr.common import atomic
    from tcr.daemon import worker
    from tcr.images import installer  # install()'s code (imported by the worker after the fork)
    from tcr.kernel import loopdev as kloop

    in_worker = []
    calls = []

    def spawn(loop, fn, args, what, on_done, **_kw):
        in_worker.append(fn.__name__)
        try:
            result = fn(*args)
        except TcrError as exc:
            result = exc
        finally:
            in_worker.pop()
        on_done(result)

    def traced(name, real):
        def f(*a, **kw):
            calls.append((name, tuple(in_worker)))
            return real(*a, **kw)
        return f

    monkeypatch.setattr(worker, "spawn", spawn)
    monkeypatch.setattr(os, "fsync", traced("fsync", os.fsync))
    monkeypatch.setattr(kmount, "mount", traced("mount", kmount.mount))
    monkeypatch.setattr(kloop, "attach", traced("attach", kloop.attach))
    monkeypatch.setattr(atomic, "fsync_dir", traced("fsync_dir", atomic.fsync_dir))
    monkeypatch.setattr(installer, "fsync_dir", traced("fsync_dir", installer.fsync_dir))
    env.daemon.loop = object()  # a daemon with a loop: the manager hands work to worker.spawn
    src = c_tool_sqfs(env.src, sidecar=True)
    box = []
    env.mgr.load_async(src, False, box.append)
    assert len(box) == 1 and not isinstance(box[0], TcrError), box
    assert {n for n, _w in calls} >= {"fsync", "mount", "attach"}, calls
    on_loop = [n for n, w in calls if not w]
    assert on_loop == [], f"blocking steps on the loop: {on_loop} (all: {calls})"
    assert any(w == ("install",) for _n, w in calls)
    assert ("fsync_dir", ("install",)) in calls  # the patches above reach install()'s code
    del env.daemon.loop
