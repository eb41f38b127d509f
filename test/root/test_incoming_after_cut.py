"""Found on the emulated board (make board-test): a power cut after an upload reached the board
but before its load ended left the copy in <root>/incoming; a board that boots again within
minutes kept it (a full image on a board with little flash) because only uploads untouched for
STALE_UPLOAD_SECONDS were removed. At start, tcrd now also removes uploads from before the current
boot: no client of an earlier boot can still be copying. An upload of this boot that is still
fresh (a client may be copying right now) is left alone."""

import os
import time

import pytest

from tcr.images import manager as imanager
from test.root.test_images import env  # noqa: F401 - fixture

pytestmark = pytest.mark.root


def test_uploads_from_before_this_boot_are_removed_at_start(env, monkeypatch):  # noqa: F811
    incoming = os.path.join(env.root, "incoming")
    os.makedirs(incoming, mode=0o700, exist_ok=True)
    now = time.time()
    monkeypatch.setattr(imanager, "_boot_time", lambda: now - 30, raising=False)  # the board came up 30 s ago
    old = os.path.join(incoming, "before-the-cut.sqfs")
    new = os.path.join(incoming, "being-copied.sqfs.part")
    for p in (old, old + ".sha256", new):
        with open(p, "wb") as f:
            f.write(b"x" * 4096)
    for p in (old, old + ".sha256"):
        os.utime(p, (now - 90, now - 90))  # written a minute before the cut: not stale yet
    problems = env.new_manager().recover()
    assert sorted(os.listdir(incoming)) == ["being-copied.sqfs.part"]
    assert any("from before this boot" in p for p in problems), problems


def test_boot_time_is_read_from_proc_stat():
    b = imanager._boot_time()
    assert b is not None and b < time.time()
