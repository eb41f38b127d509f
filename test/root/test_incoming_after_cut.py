"""Found on the emulated board (make board-test): a power cut during `tcr -H ... image load` left
the upload in <root>/incoming for ever (a full image on a board with little flash). tcrd's start-up
rule removed only uploads older than 10 minutes or with an mtime before the boot time; a board that
boots again within a second (btime has whole seconds, the RTC too) or has no battery-backed clock
(every boot starts at the same date) gives a file of the last boot an mtime after this boot's
start, so it stayed. No load runs before tcrd does: at start-up every upload that no live process
holds open is left over, whatever its times say, and one that a client is still copying is kept."""

import os
import time

import pytest

from tcr.kernel import openfiles
from test.root.test_images import env  # noqa: F401 - fixture

pytestmark = pytest.mark.root


def _write(path: str, mtime: float) -> None:
    with open(path, "wb") as f:
        f.write(b"x" * 4096)
    os.utime(path, (mtime, mtime))


def test_uploads_nobody_holds_are_removed_at_start_whatever_their_times(env):  # noqa: F811
    incoming = os.path.join(env.root, "incoming")
    os.makedirs(incoming, mode=0o700, exist_ok=True)
    now = time.time()
    cut = os.path.join(incoming, "board-second.sqfs.part")  # written the instant before the cut
    _write(cut, now)
    skewed = os.path.join(incoming, "board-latest.sqfs")  # a clock that went back at boot
    _write(skewed, now + 3600)
    _write(skewed + ".sha256", now + 3600)
    copying = os.path.join(incoming, "being-copied.sqfs.part")
    _write(copying, now - 7200)  # old, but a client is still writing it
    with open(copying, "ab") as held:
        problems = env.new_manager().recover()
        assert os.listdir(incoming) == ["being-copied.sqfs.part"]
        held.write(b"y")
    assert sum("left-over upload" in p for p in problems) == 3, problems


def test_holders_finds_the_process_holding_a_file(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x")
    st = os.stat(p)
    key = (st.st_dev, st.st_ino)
    assert openfiles.holders([key]) == {}
    with open(p, "rb"):
        assert openfiles.holders([key]) == {key: os.getpid()}
    assert openfiles.holders([]) == {}
    assert openfiles.holders([key], proc=str(tmp_path / "no-proc")) == {}
