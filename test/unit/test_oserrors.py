"""tcr.common.oserrors and the echo helpers: host failures as one clear line, bounded warnings."""

import errno
import logging
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcr.common import oserrors
from tcr.common.errors import ECHO_MAX, HostError, InvalidArgument, echo, shorten_echoes
from tcr.containers import logs as clogs


def test_space_error_names_the_filesystem_and_free_space(tmp_path):
    exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "x" / ".rec.json.tmp1"))
    line = oserrors.describe(exc)
    assert line.startswith(f"no space left on {tmp_path}/x/.rec.json.tmp1 (")
    assert "mounted at " in line and " free of " in line and "\n" not in line
    err = oserrors.to_error(exc)
    assert isinstance(err, HostError) and err.message == line


def test_write_without_a_file_name_blames_the_state_root(tmp_path, monkeypatch):
    monkeypatch.setattr(oserrors, "default_path", str(tmp_path))
    line = oserrors.describe(OSError(errno.ENOSPC, "No space left on device"))
    assert line.startswith(f"no space left on {tmp_path} (")


@pytest.mark.parametrize("code, words", [
    (errno.EMFILE, "out of file descriptors"),
    (errno.ENFILE, "out of file descriptors"),
    (errno.EIO, "I/O error on /x"),
    (errno.EROFS, "read-only file system: /x"),
    (errno.EACCES, "(EACCES): /x"),
])
def test_other_host_errors(code, words):
    line = oserrors.describe(OSError(code, os.strerror(code), "/x"))
    assert words in line and "\n" not in line and "OSError" not in line


def test_tcr_errors_pass_through():
    e = InvalidArgument("bad")
    assert oserrors.to_error(e) is e
    assert oserrors.describe(ValueError("x\ny")) == "internal error: ValueError: x"


def test_rate_limit_counts_what_it_suppressed():
    rl = oserrors.RateLimit(60.0)
    assert rl.allow("k", now=0.0) == (True, 0)
    assert rl.allow("k", now=1.0) == (False, 0)
    assert rl.allow("k", now=59.0) == (False, 0)
    assert rl.allow("other", now=59.0) == (True, 0)
    assert rl.allow("k", now=60.0) == (True, 2)
    assert rl.allow("k", now=61.0) == (False, 0)


def test_rate_limit_memory_is_bounded():
    rl = oserrors.RateLimit(60.0, max_keys=8)
    for i in range(1000):
        rl.allow(f"k{i}", now=0.0)
    assert len(rl._last) <= 8


def test_rate_limited_log(caplog):
    rl = oserrors.RateLimit(3600.0)
    log = logging.getLogger("tcr.test.ratelimit")
    with caplog.at_level(logging.WARNING, logger="tcr.test.ratelimit"):
        for _ in range(100):
            rl.log(log, logging.WARNING, "disk", "disk full")
    assert [r.getMessage() for r in caplog.records] == ["disk full"]


def test_echo_cuts_input():
    assert echo("abc") == "'abc'"
    assert echo("a" * 100) == repr("a" * ECHO_MAX) + "..."
    assert echo("web\n") == "'web\\n'"


@given(st.text(min_size=ECHO_MAX + 1, max_size=300), st.text(max_size=20), st.text(max_size=20))
def test_shorten_echoes_property(text, before, after):
    for shown in (text, repr(text), repr(text)[1:-1], text[:80]):
        msg = shorten_echoes(f"{before}{shown}{after}", [text])
        assert text not in msg
        form = repr(text)[1:-1]
        if len(form) > ECHO_MAX:
            # the cut's own "..." may equal the next character of the input ('.'): not a repeat
            assert form[: ECHO_MAX + 1] not in msg.replace(form[:ECHO_MAX] + "...", "")


def test_shorten_echoes_keeps_short_inputs():
    assert shorten_echoes("invalid name 'abc'", ["abc", "x" * 10]) == "invalid name 'abc'"


# ---- logs on a full filesystem ------------------------------------------------------------------


class _FullAfter:
    """os.write that accepts `room` bytes in total, then fails with ENOSPC (a filling disk)."""

    def __init__(self, room: int):
        self.room = room
        self.real = os.write

    def __call__(self, fd, data):
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = min(len(data), self.room)
        self.room -= n
        return self.real(fd, bytes(data[:n]))


def test_rotating_log_never_keeps_half_a_record(tmp_path, monkeypatch):
    path = str(tmp_path / "container.log")
    rl = clogs.RotatingLog(path, max_size=10_000, max_files=2)
    rl.write_record(b"one\n")
    monkeypatch.setattr(clogs.os, "write", _FullAfter(3))
    with pytest.raises(OSError):
        rl.write_record(b"second record\n")
    monkeypatch.undo()
    rl.write_record(b"three\n")
    rl.close()
    with open(path, "rb") as f:
        assert f.read() == b"one\nthree\n"


class _Loop:
    def add_reader(self, fd, cb):
        pass

    def remove_reader(self, fd):
        pass


def test_log_pump_drops_lines_on_a_full_disk_and_writes_again(tmp_path, monkeypatch):
    path = str(tmp_path / "container.log")
    pump = clogs.LogPump(_Loop(), str(tmp_path / "fifo"), clogs.RotatingLog(path, 10_000, 2))
    got = []
    pump.followers.append(got.append)
    monkeypatch.setattr(clogs.os, "write", _FullAfter(0))
    pump._write([b"a\n", b"b\n"])  # no exception: the lines are dropped, followers still get them
    assert pump.dropped == 0 or pump.dropped == 2
    monkeypatch.undo()
    pump._write([b"c\n"])
    pump.log.close()
    with open(path, "rb") as f:
        assert f.read() == b"c\n"
    assert got == [b"a\nb\n", b"c\n"]
