"""Found on the emulated board (make board-test, power cut a few seconds after `image load`): the
image's record had reached the disk but its file had not, so after the cut the squashfs did not
mount ("Invalid argument") and the image was unusable (the load then hard-linked the upload, which
nobody had fsync'd). The stored file, its sidecar and the directories that name them must be
durable before the record is written: this test traces the calls."""

import os

import pytest

from test.fixtures.images import c_tool_sqfs
from test.root.test_images import env  # noqa: F401 - fixture

pytestmark = pytest.mark.root


def test_image_file_and_dirs_are_durable_before_the_record(env, monkeypatch):  # noqa: F811
    src = c_tool_sqfs(env.src, sidecar=True)
    events = []
    real_fsync = os.fsync

    def traced_fsync(fd):
        events.append(("fsync", (os.readlink(f"/proc/self/fd/{fd}"), os.fstat(fd).st_ino)))
        return real_fsync(fd)

    real_save = env.mgr.store.save

    def traced_save(kind, key, data):
        events.append(("save", (kind, 0)))
        return real_save(kind, key, data)

    monkeypatch.setattr(os, "fsync", traced_fsync)
    monkeypatch.setattr(env.mgr.store, "save", traced_save)
    rec = env.mgr.load(src)
    monkeypatch.undo()
    save_at = events.index(("save", ("images", 0)))
    before = [path for kind, (path, _ino) in events[:save_at] if kind == "fsync"]
    synced_inodes = {ino for kind, (_path, ino) in events[:save_at] if kind == "fsync"}
    assert os.stat(rec.stored).st_ino in synced_inodes, before  # the image data itself
    assert os.stat(rec.sidecar).st_ino in synced_inodes, before
    images_dir = os.path.join(env.root, "images")
    assert images_dir in before, before  # the rename of the staging dir into place
    assert os.stat(os.path.dirname(rec.stored)).st_ino in synced_inodes, before  # the file's entry
