"""tcr -H ssh://...: host parsing, ssh/scp argv construction and quoting (no network)."""

import os
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
    opts = ssh.connection_options(t, ["-i", "/k"], None)
    argv = ssh.ssh_argv(t, "tcr ps", tty=True, batch=False, options=opts)
    assert argv == ["ssh", "-o", "Port=2200", "-o", "IdentityFile=/k", "-t", "root@127.0.0.1", "--", "tcr ps"]
    argv = ssh.ssh_argv(ssh.parse_host("ssh://h"), "tcr ps", batch=True)
    assert argv == ["ssh", "-o", "BatchMode=yes", "h", "--", "tcr ps"]


def test_scp_argv():
    t = ssh.parse_host("ssh://root@[::1]:2200")
    opts = ssh.connection_options(t, ["-i", "/k"], None)
    argv = ssh.scp_argv(t, "a:b.sqfs", "/var/lib/tcr/incoming/a_b.sqfs.part", batch=True, options=opts)
    assert argv == [
        "scp",
        "-q",
        "-o",
        "Port=2200",
        "-o",
        "IdentityFile=/k",
        "-o",
        "BatchMode=yes",
        "./a:b.sqfs",
        "root@[::1]:/var/lib/tcr/incoming/a_b.sqfs.part",
    ]
    argv = ssh.scp_argv(ssh.parse_host("ssh://h"), "/abs/x.sqfs", "/in/x.part", batch=False)
    assert argv == ["scp", "-q", "/abs/x.sqfs", "h:/in/x.part"]


def test_port_in_tcr_ssh_opts_does_not_reach_scp_as_preserve_flag():
    """`-p PORT` is ssh's port but scp's "preserve times": it used to be passed to scp as is,
    so `image load` with TCR_SSH_OPTS="-p 2222" tried to copy a file named 2222."""
    t = ssh.parse_host("ssh://root@board")
    opts = ssh.connection_options(t, ssh.extra_options("-p 2222 -i /k"), None)
    argv = ssh.scp_argv(t, "/a.sqfs", "/in/a.part", batch=True, options=opts)
    assert "-p" not in argv and "2222" not in argv
    assert argv[argv.index("Port=2222") - 1] == "-o"
    assert ssh.ssh_argv(t, "tcr ps", options=opts)[:3] == ["ssh", "-o", "Port=2222"]


def test_url_port_wins_over_tcr_ssh_opts():
    t = ssh.parse_host("ssh://root@board:2200")
    opts = ssh.connection_options(t, ["-p", "2222"], None)
    # ssh and scp take the first value given for an option: the URL's comes first
    assert opts[:4] == ["-o", "Port=2200", "-o", "Port=2222"]


@pytest.mark.parametrize(
    "given,expected",
    [
        (["-p", "2222"], ["-o", "Port=2222"]),
        (["-p2222"], ["-o", "Port=2222"]),
        (["-l", "pi"], ["-o", "User=pi"]),  # scp -l is a bandwidth limit
        (["-S", "/s"], ["-o", "ControlPath=/s"]),  # scp -S is the ssh program
        (["-B", "eth1"], ["-o", "BindInterface=eth1"]),  # scp -B is batch mode
        (["-oStrictHostKeyChecking=no"], ["-o", "StrictHostKeyChecking=no"]),
        (["-o", "Port 1"], ["-o", "Port 1"]),
        (["-F", "/cfg"], ["-F", "/cfg"]),
        (["-4C"], ["-o", "AddressFamily=inet", "-o", "Compression=yes"]),
        (["-Ci", "/k"], ["-o", "Compression=yes", "-o", "IdentityFile=/k"]),
        (["-J", "jump@gw"], ["-o", "ProxyJump=jump@gw"]),
        (["-v"], ["-v"]),
        ([], []),
    ],
)
def test_translate_options(given, expected):
    assert ssh.translate_options(given) == expected


@pytest.mark.parametrize(
    "given,message",
    [
        (["-p"], "-p needs a value"),
        (["-t"], "-t is not supported"),
        (["-L", "80:h:80"], "-L is not supported"),
        (["-Z"], "unknown ssh option -Z"),
        (["root@h"], "is not an ssh option"),
        (["--help"], "is not an ssh option"),
    ],
)
def test_translate_options_rejects(given, message):
    with pytest.raises(UsageError, match=message):
        ssh.translate_options(given)


def test_connection_sharing_options(tmp_path):
    d = ssh.control_dir(str(tmp_path))
    assert d == str(tmp_path / "tcr-ssh")
    assert os.stat(d).st_mode & 0o777 == 0o700
    t = ssh.parse_host("ssh://root@board")
    opts = ssh.connection_options(t, ["-o", "ControlMaster=no"], d)
    # the user's choice comes first, so ssh's "first value wins" lets it turn sharing off
    assert opts.index("ControlMaster=no") < opts.index("ControlMaster=auto")
    assert f"ControlPath={d}/%C" in opts and "ControlPersist=60" in opts
    assert ssh.control_options(None) == []


def test_control_dir_refuses_unsafe_directories(tmp_path):
    (tmp_path / "tcr-ssh").mkdir(mode=0o755)
    os.chmod(tmp_path / "tcr-ssh", 0o755)
    assert ssh.control_dir(str(tmp_path)) is None  # group/other could reach the sockets
    other = tmp_path / "other"
    other.mkdir()
    (other / "real").mkdir(mode=0o700)
    os.symlink(other / "real", other / "tcr-ssh")
    assert ssh.control_dir(str(other)) is None  # a symlink someone planted


def test_control_dir_refuses_a_directory_owned_by_someone_else(tmp_path):
    if os.getuid() != 0:
        pytest.skip("needs root to chown")
    d = tmp_path / "tcr-ssh"
    d.mkdir(mode=0o700)
    os.chown(d, 1000, 1000)
    assert ssh.control_dir(str(tmp_path)) is None


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
