"""tcr.common.run.run() on posix_spawn: the behaviour subprocess gave (test_common covers the basics)."""

import os

import pytest

from tcr.common.errors import CommandError
from tcr.common.run import PIPE, cloexec_inherited, run


def test_large_input_and_output_do_not_deadlock():
    data = os.urandom(3 * 1024 * 1024)
    r = run(["cat"], input=data, timeout=30)
    assert r.stdout == data


def test_text_mode_universal_newlines_and_replacement():
    r = run(["printf", "a\\r\\nb\\rc\\377\\n"])
    assert r.stdout == "a\nb\nc\ufffd\n"


def test_timeout_without_pipes_still_kills(tmp_path):
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        with pytest.raises(CommandError) as ei:
            run(["sleep", "5"], stdout=fd, stderr=fd, timeout=0.3)
    finally:
        os.close(fd)
    assert ei.value.returncode == -9
    assert "timed out" in str(ei.value)


def test_stdout_to_a_file_and_stderr_piped(tmp_path):
    out = tmp_path / "out"
    with open(out, "w") as f:
        r = run(["sh", "-c", "echo to-out; echo to-err >&2; exit 3"], stdout=f, stderr=PIPE, check=False,
                capture=False)
    assert out.read_text() == "to-out\n"
    assert r.returncode == 3 and r.stderr == "to-err\n" and r.stdout == ""


def test_child_has_default_sigpipe_and_only_stdio(tmp_path):
    keep = os.open(os.devnull, os.O_RDONLY)  # close-on-exec like every fd Python opens
    leaked = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(leaked, True)  # as a parent could leave one to tcrd
    assert cloexec_inherited() >= 1  # what tcrd does at start
    try:
        r = run(["sh", "-c", "grep SigIgn /proc/self/status; ls /proc/self/fd"])
    finally:
        os.close(keep)
        os.close(leaked)
    sigign = int(r.stdout.split()[1], 16)
    assert not sigign & (1 << (13 - 1)), "SIGPIPE is still ignored in the child"
    fds = sorted(int(x) for x in r.stdout.split()[2:])
    assert fds[:3] == [0, 1, 2] and len(fds) <= 4  # 0-2 and ls's own directory fd


def test_env_and_cwd(tmp_path):
    assert run(["sh", "-c", "echo $FOO"], env={"FOO": "bar", "PATH": "/usr/bin:/bin"}).stdout == "bar\n"
    assert run(["pwd"], cwd=str(tmp_path)).stdout.strip() == str(tmp_path)


def test_stdin_is_dev_null_without_input():
    assert run(["cat"], timeout=5).stdout == ""
