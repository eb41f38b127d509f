"""`tcr exec` behaves as docker's (issue 13 §4): -e adds to the container's environment, -u takes
names from the image's /etc/passwd, the default working directory is the container's, a missing or
non-executable command gives 127/126, and the command's exit code passes through."""

import pytest

from test.root.test_containers import cli, d  # noqa: F401  (fixture)

pytestmark = pytest.mark.root


@pytest.fixture
def box(d):  # noqa: F811
    cli(d, "run", "-d", "--name", "ex", "--network", "none", "-w", "/tmp", "-e", "FOO=from-run",
        "busybox", "sleep", "600")
    yield d
    d.cli("rm", "-f", "ex")


def test_exec_env_adds_to_the_containers_environment(box):
    r = cli(box, "exec", "-e", "BAR=1", "ex", "sh", "-c", 'echo "$PATH|$FOO|$BAR"')
    assert r.stdout.strip() == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|from-run|1"
    r = cli(box, "exec", "-e", "FOO=override", "ex", "sh", "-c", 'echo "$FOO"')
    assert r.stdout.strip() == "override"


def test_exec_user_by_name_from_the_image(box):
    r = cli(box, "exec", "-u", "nobody", "ex", "id")
    assert "uid=65534" in r.stdout and "gid=65534" in r.stdout
    r = box.cli("exec", "-u", "nosuchuser", "ex", "id")
    assert r.returncode == 125 and "nosuchuser" in r.stderr


def test_exec_default_workdir_is_the_containers(box):
    assert cli(box, "exec", "ex", "sh", "-c", "pwd").stdout.strip() == "/tmp"
    assert cli(box, "exec", "-w", "/etc", "ex", "sh", "-c", "pwd").stdout.strip() == "/etc"


def test_exec_exit_codes(box):
    r = box.cli("exec", "ex", "no-such-command")
    assert r.returncode == 127, (r.returncode, r.stderr)
    assert "not found" in r.stderr
    r = box.cli("exec", "ex", "/etc/passwd")
    assert r.returncode == 126, (r.returncode, r.stderr)
    assert box.cli("exec", "ex", "sh", "-c", "exit 7").returncode == 7
    assert box.cli("exec", "ex", "true").returncode == 0
