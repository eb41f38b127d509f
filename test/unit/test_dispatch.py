"""make_dispatch with the real command modules (system commands need no managers)."""

import json
import os
import stat
import types

import pytest

from tcr.commands import base
from tcr.commands.base import Output
from tcr.commands.dispatch import make_dispatch
from tcr.common.errors import InvalidArgument, UsageError


@pytest.fixture
def dispatch(tmp_path):
    return make_dispatch(types.SimpleNamespace(root=str(tmp_path)))


def call(dispatch, method, *args, uid=0):
    return dispatch(method, list(args), "/", 1, uid, 0, None)


def test_help_lists_public_commands(dispatch):
    out = call(dispatch, "help")
    assert isinstance(out, Output) and out.exit_code == 0
    assert "version" in out.stdout and "check" in out.stdout
    assert "_incoming" not in out.stdout
    for name in base.COMMANDS:
        if not name.startswith("_"):
            assert name in out.stdout


def test_help_of_a_command_and_dash_help(dispatch):
    assert "usage: tcr version" in call(dispatch, "help", "version").stdout
    assert "usage: tcr version" in call(dispatch, "version", "--help").stdout
    with pytest.raises(UsageError):
        call(dispatch, "help", "nosuch")


def test_unknown_method(dispatch):
    with pytest.raises(UsageError) as ei:
        call(dispatch, "frobnicate")
    assert ei.value.code == 1 and "unknown command" in ei.value.message


def test_usage_errors_are_code_1(dispatch):
    with pytest.raises(UsageError):
        call(dispatch, "version", "--bogus")


def test_version(dispatch, tmp_path):
    out = call(dispatch, "version", "--format", "json")
    info = json.loads(out.stdout)
    assert info["root"] == str(tmp_path) and info["pid"] == os.getpid() and info["api"] == 1
    assert call(dispatch, "version").stdout.startswith("Server: tcrd ")


def test_incoming_dir(dispatch, tmp_path):
    out = call(dispatch, "_incoming")
    path = out.stdout.strip()
    assert path == str(tmp_path / "incoming")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    other = 65534 if os.geteuid() != 65534 else 65533
    with pytest.raises(InvalidArgument):
        call(dispatch, "_incoming", uid=other)


def test_image_load_move_is_for_root_only(tmp_path):
    """A member of group tcr may not have the root daemon move files away (copy is fine)."""
    called = []
    images = types.SimpleNamespace(load_async=lambda *a: called.append(a))
    d = make_dispatch(types.SimpleNamespace(root=str(tmp_path), images=images))
    with pytest.raises(InvalidArgument, match="only root may move"):
        call(d, "image", "load", "--move", "/x.sqfs", uid=1000)
    assert called == []
    call(d, "image", "load", "/x.sqfs", uid=1000)
    assert called and called[0][:2] == ("/x.sqfs", False)
