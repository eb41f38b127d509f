"""tcr.common.leanos: the client's os subset behaves like os and does not import it."""

import os
import subprocess
import sys

import pytest

from tcr.common import leanos

TARGET = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "target")


def test_getenv_like_os(monkeypatch):
    monkeypatch.setenv("TCR_LEANOS_T", "v\u00e9")
    assert leanos.getenv("TCR_LEANOS_T") == os.getenv("TCR_LEANOS_T") == "v\u00e9"
    assert leanos.getenv("TCR_LEANOS_MISSING", "d") == "d"


def test_other_names_come_from_os():
    assert leanos.path is os.path and leanos.sep == "/"
    assert leanos.getpid() == os.getpid() and leanos.devnull == os.devnull


def test_execvp_searches_path(tmp_path):
    code = (f"import sys; sys.path.insert(0, {TARGET!r}); from tcr.common import leanos; "
            "leanos.execvp('printf', ['printf', 'hi'])")
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=30,
                       env={"PATH": f"{tmp_path}:/nonexistent:/usr/bin:/bin"})
    assert r.stdout == "hi"
    code = (f"import sys; sys.path.insert(0, {TARGET!r}); from tcr.common import leanos\n"
            "try:\n    leanos.execvp('tcr-no-such-tool', ['x'])\n"
            "except FileNotFoundError:\n    print('enoent')")
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == "enoent"


@pytest.mark.parametrize("args", [["ps"], ["exec", "c", "/bin/true"], ["run", "--rm", "-e", "A=1", "img"]])
def test_client_fast_path_does_not_import_os(args):
    code = (f"import sys; sys.path.insert(0, {TARGET!r})\n"
            f"sys.argv = ['tcr', '--socket', '/nonexistent', *{args!r}]\n"
            "from tcr.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"  # with argv: no fast exit
            "print(sorted({'os', 'posixpath', 'stat', '_collections_abc'} & set(sys.modules)))")
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=30)
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout + r.stderr
