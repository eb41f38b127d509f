"""`tcr image load` from stdin or `-i FILE`: the client-side argument rewrite and the spool (pure)."""

import io
import os

import pytest

from tcr.cli import loadinput
from tcr.common.errors import UsageError


@pytest.mark.parametrize("args,want,path", [
    (["load", "f.sqfs"], ["load", "f.sqfs"], "f.sqfs"),
    (["load", "-q", "f.sqfs"], ["load", "-q", "f.sqfs"], "f.sqfs"),
    (["load", "-i", "f.sqfs"], ["load", "f.sqfs"], "f.sqfs"),
    (["load", "-q", "--input", "f.sqfs", "--move"], ["load", "-q", "--move", "f.sqfs"], "f.sqfs"),
    (["load", "--input=f.sqfs"], ["load", "f.sqfs"], "f.sqfs"),
    (["load", "-q"], ["load", "-q"], None),
    (["load", "--", "-odd.sqfs"], ["load", "-odd.sqfs"], "-odd.sqfs"),
])
def test_split(args, want, path):
    assert loadinput.split(args) == (want, path)


def test_input_flag_needs_a_value():
    with pytest.raises(UsageError):
        loadinput.split(["load", "-i"])


def test_spool_writes_the_whole_stream_then_renames(tmp_path):
    data = os.urandom(3 * loadinput.CHUNK + 17)
    path = loadinput.spool(str(tmp_path), io.BytesIO(data).read)
    with open(path, "rb") as f:
        assert path.endswith(".sqfs") and f.read() == data
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert os.listdir(tmp_path) == [os.path.basename(path)]


def test_empty_stdin_leaves_nothing(tmp_path):
    with pytest.raises(UsageError, match="empty"):
        loadinput.spool(str(tmp_path), io.BytesIO(b"").read)
    assert os.listdir(tmp_path) == []


def test_a_broken_stream_leaves_nothing(tmp_path):
    def read(_n):
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError):
        loadinput.spool(str(tmp_path), read)
    assert os.listdir(tmp_path) == []
