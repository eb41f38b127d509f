"""crun argv builders, error classification, and the in-rootfs command check (126/127)."""

import os

from tcr.containers import bundle, crun


def test_argv_builders_use_own_root():
    R, B = "/run/tcr/crun", "/var/lib/tcr/containers/abc/bundle"
    c = crun.crun_path()
    assert crun.run_argv(R, B, "abc") == [c, "--root", R, "run", "--bundle", B, "abc"]
    assert crun.run_detached_argv(R, B, "abc", "/p") == [
        c, "--root", R, "run", "--detach", "--pid-file", "/p", "--bundle", B, "abc"]
    assert crun.kill_argv(R, "abc", "SIGTERM") == [c, "--root", R, "kill", "abc", "SIGTERM"]
    assert crun.delete_argv(R, "abc") == [c, "--root", R, "delete", "--force", "abc"]
    assert crun.exec_argv(R, "abc", ["sh", "-c", "id"], tty=True, env=["A=1"], user="1:2", cwd="/tmp") == [
        c, "--root", R, "exec", "--tty", "--env", "A=1", "--user", "1:2", "--cwd", "/tmp", "abc",
        "sh", "-c", "id"]
    assert crun.exec_argv(R, "abc", ["true"], detach=True)[-3:] == ["--detach", "abc", "true"]


def test_classify_start_error():
    assert crun.classify_start_error("executable file `x` not found in $PATH: No such file") == 127
    assert crun.classify_start_error("open executable: Operation not permitted") == 126
    assert crun.classify_start_error("cannot allocate memory") == 125


def test_list_ids_and_state_without_dir(tmp_path):
    assert crun.list_ids(str(tmp_path / "none")) == []
    (tmp_path / "aaaa").mkdir()
    (tmp_path / "f").write_text("")
    assert crun.list_ids(str(tmp_path)) == ["aaaa"]
    assert crun.state(str(tmp_path), "missing") is None


def _rootfs(tmp_path):
    r = tmp_path / "rootfs"
    (r / "bin").mkdir(parents=True)
    (r / "usr" / "bin").mkdir(parents=True)
    (r / "etc").mkdir()
    busybox = r / "bin" / "busybox"
    busybox.write_text("#!")
    busybox.chmod(0o755)
    os.symlink("busybox", r / "bin" / "sh")
    os.symlink("/bin/busybox", r / "usr" / "bin" / "env")  # absolute: must resolve inside the root
    os.symlink("/etc/passwd-escape", r / "bin" / "dangling")
    (r / "etc" / "data").write_text("x")
    return str(r)


def test_check_command(tmp_path):
    r = _rootfs(tmp_path)
    env = ["PATH=/usr/bin:/bin"]
    assert bundle.check_command(r, ["sh", "-c", "true"], env) is None
    assert bundle.check_command(r, ["env"], env) is None
    assert bundle.check_command(r, ["/bin/sh"], []) is None
    assert bundle.check_command(r, ["nonexist"], env) == 127
    assert bundle.check_command(r, ["/nope/x"], env) == 127
    assert bundle.check_command(r, ["dangling"], env) == 127
    assert bundle.check_command(r, ["/etc"], env) == 126
    assert bundle.check_command(r, ["/etc/data"], env) == 126
    assert bundle.check_command(r, ["../bin/sh"], env, cwd="/etc") is None
    assert bundle.check_command(r, [], env) == 127


def test_resolve_stays_inside_root(tmp_path):
    r = _rootfs(tmp_path)
    os.symlink("../../../../../..", os.path.join(r, "up"))
    got = bundle.resolve_in_root(r, "/up/etc/data")
    assert got == os.path.join(r, "etc", "data")


def test_resolve_missing_or_looping_is_none(tmp_path):
    r = _rootfs(tmp_path)
    os.symlink("loop2", os.path.join(r, "loop1"))
    os.symlink("loop1", os.path.join(r, "loop2"))
    assert bundle.resolve_in_root(r, "/loop1/x") is None
    assert bundle.resolve_in_root(r, "/missing/../etc/data") is None  # like the kernel: x/.. needs x
    assert bundle.resolve_in_root(r, "/etc/../etc/data") == os.path.join(r, "etc", "data")


def test_overlay_options_and_paths():
    p = bundle.ContainerPaths.of("/var/lib/tcr", "0123456789abcdef")
    assert p.config == "/var/lib/tcr/containers/0123456789abcdef/bundle/config.json"
    assert bundle.overlay_options("/l", p.upper, p.work).startswith("lowerdir=/l,upperdir=")
