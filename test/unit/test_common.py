"""The foundation: the subprocess door, errors, JSON fallback, durable writes."""

import os

import pytest

from tcr.common import atomic, jsonc
from tcr.common.errors import CommandError, ImageNotFound, InUse, TcrError, UsageError
from tcr.common.run import run, which


def test_run_captures_output_and_closes_stdin():
    r = run(["sh", "-c", "cat; echo out; echo err >&2"])
    assert r.returncode == 0
    assert r.stdout == "out\n"  # cat read nothing: stdin is /dev/null
    assert r.stderr == "err\n"


def test_run_failure_carries_argv_code_and_stderr():
    with pytest.raises(CommandError) as ei:
        run(["sh", "-c", "echo first >&2; echo 'the reason' >&2; exit 3"])
    err = ei.value
    assert err.argv[0] == "sh"
    assert err.returncode == 3
    assert "the reason" in err.stderr
    assert str(err) == "sh failed (exit code 3): the reason"
    assert "\n" not in str(err)


def test_run_unchecked_returns_code():
    assert run(["false"], check=False).returncode == 1


def test_run_refuses_shell_strings():
    with pytest.raises(TypeError):
        run("echo hi")  # type: ignore[arg-type]


def test_run_missing_tool_names_package():
    with pytest.raises(TcrError) as ei:
        run(["tcr-no-such-tool-xyz"])
    assert "command not found" in str(ei.value)


def test_run_missing_known_tool_has_install_hint(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(TcrError) as ei:
        run(["skopeo", "--version"], env={"PATH": "/nonexistent"})
    assert ei.value.hint == "install it: apt-get install skopeo"


def test_run_timeout_is_a_command_error():
    with pytest.raises(CommandError) as ei:
        run(["sleep", "5"], timeout=0.2)
    assert "timed out" in ei.value.stderr


def test_run_input_bytes_and_text():
    assert run(["cat"], input="abc").stdout == "abc"
    assert run(["cat"], input=b"\x00\x01").stdout == b"\x00\x01"


def test_which_finds_sh_and_not_missing():
    assert which("sh")
    assert which("tcr-no-such-tool-xyz") is None


def test_errors_are_one_line_with_codes():
    e = ImageNotFound("no such image: foo\nsecond line", hint="tcr image ls")
    assert str(e) == "no such image: foo"
    assert e.code == 3
    assert e.render() == "no such image: foo\nhint: tcr image ls"
    assert InUse("x").code == 5
    assert UsageError("x").code == 1
    assert TcrError("x", code=6).code == 6


def test_jsonc_compact_and_valueerror():
    s = jsonc.dumps({"a": [1, "é", "/"]})
    assert " " not in s and "é" in s and "\\/" not in s
    assert jsonc.loads(s.encode()) == {"a": [1, "é", "/"]}
    for bad in (b"{", b"\xff\xfe", "nul", b""):
        with pytest.raises(ValueError):
            jsonc.loads(bad)


def test_write_atomic_replaces_and_leaves_no_temp(tmp_path):
    p = str(tmp_path / "state.json")
    atomic.write_atomic(p, "one")
    atomic.write_atomic(p, b"two")
    with open(p) as f:
        assert f.read() == "two"
    assert os.listdir(tmp_path) == ["state.json"]


def test_write_atomic_failure_keeps_old_content(tmp_path, monkeypatch):
    p = str(tmp_path / "state.json")
    atomic.write_atomic(p, "old")

    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        atomic.write_atomic(p, "new")
    monkeypatch.undo()
    with open(p) as f:
        assert f.read() == "old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_remove_durable(tmp_path):
    p = tmp_path / "x"
    p.write_text("1")
    atomic.remove_durable(str(p))
    atomic.remove_durable(str(p))  # idempotent
    assert not p.exists()


def test_sink_streams_stdin_and_reports_failures(tmp_path):
    from tcr.common.run import Sink

    out = tmp_path / "out"
    s = Sink(["sh", "-c", f"cat > {out}"])
    s.stdin.write(b"x" * 100000)
    s.finish()
    assert out.read_bytes() == b"x" * 100000

    s = Sink(["sh", "-c", "cat >/dev/null; echo 'bad input' >&2; exit 4"])
    s.stdin.write(b"abc")
    with pytest.raises(CommandError) as ei:
        s.finish()
    assert ei.value.returncode == 4 and str(ei.value).endswith("bad input")


def test_sink_abort_kills_consumer():
    from tcr.common.run import Sink

    s = Sink(["sleep", "30"])
    s.abort()
    assert s.proc.returncode is not None


def test_builtin_sha256_matches_hashlib():
    import hashlib

    from tcr.common.digest import sha256

    for data in (b"", b"abc", b"x" * 100000):
        h = sha256()
        h.update(data)
        assert h.hexdigest() == hashlib.sha256(data).hexdigest()
        assert sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()


def test_spawn_returns_a_pid_to_watch_with_the_given_fds(tmp_path):
    import os

    from tcr.common.run import run, spawn

    r, w = os.pipe()
    pid = spawn(["/bin/sh", "-c", "echo out; exit 3"], stdout=w)
    os.close(w)
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3
    assert os.read(r, 100) == b"out\n"
    os.close(r)
    # run() of a command that writes nowhere waits on its pidfd and still gets its exit code
    with open(tmp_path / "o", "wb") as f:
        res = run(["/bin/sh", "-c", "echo hi; exit 4"], check=False, stdout=f.fileno(), stderr=f.fileno())
    assert res.returncode == 4 and (tmp_path / "o").read_bytes() == b"hi\n"
