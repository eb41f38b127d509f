"""tcr -H ssh://...: host parsing, ssh/scp argv construction and quoting (no network)."""

import shlex

import pytest

from tcr.cli import ssh
from tcr.common.errors import UsageError


@pytest.mark.parametrize(
    "spec,user,host,port",
    [
        ("ssh://root@192.168.1.5", "root", "192.168.1.5", None),
        ("ssh://pi@board.local:2222", "pi", "board.local", 2222),
        ("ssh://board", None, "board", None),
        ("ssh://u@[::1]:22", "u", "::1", 22),
        ("ssh://u@host/", "u", "host", None),
    ],
)
def test_parse_host(spec, user, host, port):
    t = ssh.parse_host(spec)
    assert (t.user, t.host, t.port) == (user, host, port)


@pytest.mark.parametrize(
    "spec",
    [
        "root@host",
        "tcp://h",
        "ssh://",
        "ssh://u@h:0",
        "ssh://u@h:99999",
        "ssh://-oProxyCommand=x",
        "ssh://u@h;rm",
        "ssh://u@h:22/extra",
    ],
)
def test_parse_host_rejects(spec):
    with pytest.raises(UsageError):
        ssh.parse_host(spec)


@pytest.mark.parametrize(
    "method,args,expected",
    [
        ("run", ["-it", "busybox", "sh"], True),
        ("run", ["-ti", "busybox"], True),
        ("run", ["--rm", "-i", "busybox"], True),
        ("exec", ["-t", "web", "sh"], True),
        ("run", ["--tty", "busybox"], True),
        ("run", ["-d", "busybox"], False),
        ("run", ["-d", "busybox", "--", "-it"], False),
        ("ps", ["-it"], False),
        ("run", ["--interactive=false", "busybox"], False),
    ],
)
def test_is_interactive(method, args, expected):
    assert ssh.is_interactive(method, args) is expected


def test_remote_command_quotes_everything():
    argv = ["tcr", "run", "-e", "A=$(reboot)", "busybox", "sh", "-c", "echo 'hi'; ls *", "", "a b"]
    cmd = ssh.remote_command(argv)
    assert shlex.split(cmd) == argv  # the remote shell sees exactly our argv
    assert "$(reboot)" in cmd and "'A=$(reboot)'" in cmd


def test_ssh_argv():
    t = ssh.parse_host("ssh://root@127.0.0.1:2200")
    argv = ssh.ssh_argv(t, "tcr ps", tty=True, batch=False, options=["-i", "/k"])
    assert argv == ["ssh", "-i", "/k", "-p", "2200", "-t", "root@127.0.0.1", "--", "tcr ps"]
    argv = ssh.ssh_argv(ssh.parse_host("ssh://h"), "tcr ps", batch=True)
    assert argv == ["ssh", "-o", "BatchMode=yes", "h", "--", "tcr ps"]


def test_scp_argv():
    t = ssh.parse_host("ssh://root@[::1]:2200")
    argv = ssh.scp_argv(
        t, "a:b.sqfs", "/var/lib/tcr/incoming/a_b.sqfs.part", batch=True, options=["-i", "/k"]
    )
    assert argv == [
        "scp",
        "-q",
        "-i",
        "/k",
        "-P",
        "2200",
        "-o",
        "BatchMode=yes",
        "./a:b.sqfs",
        "root@[::1]:/var/lib/tcr/incoming/a_b.sqfs.part",
    ]
    argv = ssh.scp_argv(ssh.parse_host("ssh://h"), "/abs/x.sqfs", "/in/x.part", batch=False)
    assert argv == ["scp", "-q", "/abs/x.sqfs", "h:/in/x.part"]


def test_extra_options():
    assert ssh.extra_options("-i '/a b/key' -o StrictHostKeyChecking=no") == [
        "-i",
        "/a b/key",
        "-o",
        "StrictHostKeyChecking=no",
    ]
    with pytest.raises(UsageError):
        ssh.extra_options("-i 'unterminated")


def test_safe_name_and_image_load_detection():
    assert ssh.safe_name("/x/my image;rm -rf.sqfs") == "my_image_rm_-rf.sqfs"
    assert ssh.safe_name("-evil") == "_-evil"
    assert ssh.safe_name(".hidden") == "_.hidden"
    assert ssh.image_load_file(["load", "./a.sqfs"]) == 1
    assert ssh.image_load_file(["load", "--quiet", "a.sqfs"]) == 2
    assert ssh.image_load_file(["ls"]) is None
    assert ssh.image_load_file(["load"]) is None


def test_remote_tcr_socket():
    assert ssh.remote_tcr(None) == ["tcr"]
    assert ssh.remote_tcr("/run/x.sock") == ["tcr", "--socket", "/run/x.sock"]


def test_attach_takes_the_terminal():
    from tcr.cli import ssh

    assert ssh.is_interactive("attach", ["web"])
    assert not ssh.is_interactive("attach", ["--no-stdin", "web"])
