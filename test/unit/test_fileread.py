"""tcr.common.fileread: bounded, non-blocking reads of client- or image-named files."""

import os

import pytest

from tcr.common import fileread
from tcr.common.errors import InvalidArgument


def test_reads_regular_file(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"A=1\n")
    assert fileread.read_bytes(str(p), 16) == b"A=1\n"
    assert fileread.read_text(str(p), 16) == "A=1\n"


def test_refuses_over_cap(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x" * 17)
    with pytest.raises(InvalidArgument, match="too large"):
        fileread.read_bytes(str(p), 16)


def test_fifo_is_refused_without_blocking(tmp_path):
    p = tmp_path / "fifo"
    os.mkfifo(p)
    with pytest.raises(InvalidArgument, match="not a regular file"):
        fileread.read_bytes(str(p), 16)


def test_char_device_is_refused():
    with pytest.raises(InvalidArgument, match="not a regular file"):
        fileread.read_bytes("/dev/zero", 16)


def test_directory_and_missing(tmp_path):
    with pytest.raises(InvalidArgument):
        fileread.read_bytes(str(tmp_path), 16)
    with pytest.raises(InvalidArgument, match="No such file"):
        fileread.read_bytes(str(tmp_path / "nope"), 16, what="env file")


def test_not_utf8(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"\xff\xfe")
    with pytest.raises(InvalidArgument, match="not UTF-8"):
        fileread.read_text(str(p), 16)
