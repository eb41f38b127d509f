"""`tcr cp` on a real tcrd + crun: both directions, running and stopped containers, `-` tar
streams, permissions and mtimes, docker's path rules, errors, a hostile container (planted
symlinks, device nodes) and hostile archives, and a big file with bounded daemon memory.
"""

import io
import os
import stat
import subprocess
import tarfile
import time

import pytest

from test.fixtures.process import wait_for
from test.root.test_containers import cli, d, inspect  # noqa: F401  (d: the image-loaded daemon)

pytestmark = pytest.mark.root

SLEEPER = ["busybox", "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]


def run_d(d, name, *extra, setup=""):
    script = (setup + "; " if setup else "") + "trap 'exit 0' TERM; touch /tmp/.ready; while true; do sleep 0.1; done"
    cli(d, "run", "-d", "--name", name, "--network", "none", *extra, "busybox", "sh", "-c", script)
    wait_for(lambda: d.cli("exec", name, "test", "-e", "/tmp/.ready").returncode == 0, what=f"{name} ready")


def sh(d, name, script):
    return cli(d, "exec", name, "sh", "-c", script).stdout


def raw(d, *args, input=None, cwd=None):
    """The client with bytes in and out (tar streams)."""
    return subprocess.run(d.cli_argv(*args), env=d.cli_env(), input=input, capture_output=True,
                          cwd=cwd or d.base, timeout=300, stdin=None if input is not None else subprocess.DEVNULL)


def stopped(d, name, setup):
    """A container that ran `setup` and exited."""
    cli(d, "run", "-d", "--name", name, "--network", "none", "busybox", "sh", "-c", setup)
    wait_for(lambda: inspect(d, name)["state"] == "exited", what=f"{name} exits")


def test_cp_from_container_docker_rules(d, tmp_path):
    run_d(d, "cpf", setup="busybox mkdir -p /data/dir/sub && echo hello > /data/dir/a && "
          "busybox chmod 640 /data/dir/a && echo deep > /data/dir/sub/b && busybox chmod 750 /data/dir/sub && "
          "busybox ln -s a /data/dir/link && busybox touch -d '2020-01-02 03:04:05' /data/dir/a && "
          "echo file > /data/f && busybox chmod 604 /data/f && busybox ln -s /data/f /data/flink")
    out = tmp_path / "out"
    out.mkdir()
    # file -> new name; file -> into an existing dir; file -> over an existing file
    cli(d, "cp", "cpf:/data/f", str(out / "g"))
    assert (out / "g").read_text() == "file\n" and stat.S_IMODE((out / "g").stat().st_mode) == 0o604
    cli(d, "cp", "cpf:/data/f", str(out))
    assert (out / "f").read_text() == "file\n"
    (out / "over").write_text("old content, longer than the new one\n")
    cli(d, "cp", "cpf:/data/f", str(out / "over"))
    assert (out / "over").read_text() == "file\n"
    # dir -> new name (its contents), dir -> into an existing dir, dir/. -> contents into a dir
    cli(d, "cp", "cpf:/data/dir", str(out / "newdir"))
    assert (out / "newdir" / "a").read_text() == "hello\n"
    assert (out / "newdir" / "sub" / "b").read_text() == "deep\n"
    assert stat.S_IMODE((out / "newdir" / "a").stat().st_mode) == 0o640
    assert stat.S_IMODE((out / "newdir" / "sub").stat().st_mode) == 0o750
    assert (out / "newdir" / "a").stat().st_mtime == time.mktime((2020, 1, 2, 3, 4, 5, 0, 0, -1))
    assert os.readlink(out / "newdir" / "link") == "a"
    (out / "exists").mkdir()
    cli(d, "cp", "cpf:/data/dir", str(out / "exists"))
    assert (out / "exists" / "dir" / "sub" / "b").read_text() == "deep\n"
    (out / "contents").mkdir()
    cli(d, "cp", "cpf:/data/dir/.", str(out / "contents"))
    assert (out / "contents" / "a").read_text() == "hello\n" and not (out / "contents" / "dir").exists()
    # a symlink is copied as a link; -L copies what it points to, under the link's name
    cli(d, "cp", "cpf:/data/flink", str(out / "l1"))
    assert os.readlink(out / "l1") == "/data/f"
    cli(d, "cp", "-L", "cpf:/data/flink", str(out / "l2"))
    assert (out / "l2").read_text() == "file\n" and not (out / "l2").is_symlink()
    cli(d, "cp", "-L", "cpf:/data/flink", str(out / "exists"))
    assert (out / "exists" / "flink").read_text() == "file\n"
    # relative local paths are the client's
    assert d.cli("cp", "cpf:/data/f", "rel-copy", cwd=str(out)).returncode == 0
    assert (out / "rel-copy").read_text() == "file\n"
    # errors, one line, exit 1
    r = cli(d, "cp", "cpf:/data/dir", str(out / "g"), ok=False)
    assert r.returncode == 1 and "cannot copy a directory to a file" in r.stderr
    r = cli(d, "cp", "cpf:/data/f", str(out / "nodir") + "/", ok=False)
    assert r.returncode == 1 and "no such directory" in r.stderr and not (out / "nodir").exists()
    r = cli(d, "cp", "cpf:/data/f", str(out / "missing" / "x"), ok=False)
    assert r.returncode == 1 and "no such directory" in r.stderr
    r = cli(d, "cp", "cpf:/nosuch", str(out), ok=False)
    assert r.returncode == 1 and r.stderr.strip() == "tcr: Could not find the file /nosuch in container cpf"
    r = cli(d, "cp", "nosuchctr:/data/f", str(out), ok=False)
    assert r.returncode == 1 and "no such container: nosuchctr" in r.stderr
    r = cli(d, "cp", "--bogus", "cpf:/data/f", str(out), ok=False)
    assert r.returncode == 125
    r = cli(d, "cp", "cpf:/data/f/", str(out / "t"), ok=False)
    assert r.returncode == 1 and "not a directory" in r.stderr
    r = cli(d, "cp", str(out), str(out / "y"), ok=False)
    assert r.returncode == 1 and "must specify at least one container" in r.stderr
