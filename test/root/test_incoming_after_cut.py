"""Found on the emulated board (make board-test): a power cut after an upload reached the board
but before its load ended left the copy in <root>/incoming for ever (a full image on a board with
little flash). At start, tcrd now removes uploads from before the current boot: no client of an
earlier boot can still be copying. An upload of this boot (a client may be copying right now)
is left alone."""

import os

import pytest

pytestmark = pytest.mark.root


def _btime():
    with open("/proc/stat") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("btime "))


def test_uploads_from_an_earlier_boot_are_removed_at_start(tcrd):
    incoming = os.path.join(tcrd.root, "incoming")
    os.makedirs(incoming, mode=0o700, exist_ok=True)
    old = os.path.join(incoming, "before-the-cut.sqfs")
    new = os.path.join(incoming, "being-copied.sqfs.part")
    for p in (old, old + ".sha256", new):
        with open(p, "wb") as f:
            f.write(b"x" * 4096)
    before_boot = _btime() - 60
    os.utime(old, (before_boot, before_boot))
    os.utime(old + ".sha256", (before_boot, before_boot))
    tcrd.restart()
    assert sorted(os.listdir(incoming)) == ["being-copied.sqfs.part"]
    assert "removed an upload from before this boot" in tcrd.log()
    os.unlink(new)
