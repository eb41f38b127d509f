"""The `tcr` client: global flags, reply handling, exit codes, execArgs, against a real server."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tcr.cli import main as cli
from tcr.rpc import client

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ECHO_TCRD = os.path.join(ROOT, "test", "samples", "rpc", "echo_tcrd.py")


# ---- pure parts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv,host,sock,debug,method,args",
    [
        (["ps", "-a"], None, None, False, "ps", ["-a"]),
        (["-H", "ssh://r@h", "ps"], "ssh://r@h", None, False, "ps", []),
        (["-Hssh://r@h:2", "ps"], "ssh://r@h:2", None, False, "ps", []),
        (
            ["--host=ssh://h", "--socket", "/s", "--debug", "image", "ls", "--debug"],
            "ssh://h",
            "/s",
            True,
            "image",
            ["ls", "--debug"],
        ),
        (
            ["--socket=@abs", "run", "-it", "--socket", "x"],
            None,
            "@abs",
            False,
            "run",
            ["-it", "--socket", "x"],
        ),
        (["--", "-weird"], None, None, False, "-weird", []),
    ],
)
def test_parse_global(argv, host, sock, debug, method, args):
    opts, m, a = cli.parse_global(argv)
    assert (opts.host, opts.socket, opts.debug, m, a) == (host, sock, debug, method, args)


@pytest.mark.parametrize("argv", [["--bogus", "ps"], ["--socket"], ["-H"]])
def test_parse_global_errors(argv):
    with pytest.raises(cli.UsageExit):
        cli.parse_global(argv)


@pytest.mark.parametrize(
    "method,code,expected",
    [
        ("ps", 1, 125),
        ("ps", 2, 1),
        ("image", 3, 1),
        ("rm", 5, 1),
        ("logs", 7, 125),
        ("stop", 6, 1),
        ("network", 4, 1),
        ("run", 1, 125),
        ("run", 3, 125),
        ("create", 6, 125),
        ("start", 2, 125),
        ("exec", 7, 125),
    ],
)
def test_error_exit_codes(method, code, expected):
    assert cli.error_exit_code(method, code) == expected


def test_connect_exit_codes():
    assert cli.connect_exit_code("ps") == 125
    assert cli.connect_exit_code("run") == 125


def test_no_args_is_usage(capsys):
    assert cli.main([]) == 125
    assert "Usage: tcr" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0
    assert "Usage: tcr" in capsys.readouterr().out
    assert cli.main(["--frob"]) == 125


def test_handle_result_reply(capfd):
    assert cli.handle_reply({"kind": "result", "exit_code": 4, "stdout": "out é\n", "stderr": "err\n"}) == 4
    out, err = capfd.readouterr()
    assert (out, err) == ("out é\n", "err\n")
    assert cli.handle_reply({"kind": "result", "exit_code": 999, "stdout": "", "stderr": ""}) == 1


def test_fork_exec_codes(capfd):
    assert cli.fork_exec(["sh", "-c", "echo hi; exit 3"]) == 3
    assert capfd.readouterr().out == "hi\n"
    assert cli.fork_exec(["sh", "-c", "kill -TERM $$"]) == 128 + signal.SIGTERM
    assert cli.fork_exec(["/nonexistent/crun"]) == 127
    assert "cannot run /nonexistent/crun" in capfd.readouterr().err
    # the parent's signal dispositions are restored afterwards
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_resolve_socket(monkeypatch):
    monkeypatch.delenv("TCR_SOCKET", raising=False)
    assert client.resolve_socket("/x.sock") == "/x.sock"
    monkeypatch.setenv("TCR_SOCKET", "/env.sock")
    assert client.resolve_socket() == "/env.sock"
    monkeypatch.delenv("TCR_SOCKET")
    expected = client.DEFAULT_SOCKET if os.path.exists(client.DEFAULT_SOCKET) else "@" + client.ABSTRACT_NAME
    assert client.resolve_socket() == expected


def test_parse_reply_tolerates_c_daemon_quirks():
    assert client.parse_reply({"id": 1, "result": None})["kind"] == "result"
    assert client.parse_reply({"id": 1, "result": {"exitCode": 2.0}})["exit_code"] == 2
    e = client.parse_reply({"id": 1, "error": {"code": -1}})
    assert (e["code"], e["message"]) == (-1, "unknown error")
    with pytest.raises(client.RpcError):
        client.parse_reply({"id": 1, "result": {"execArgs": [1]}})


# ---- end to end against a real server (real EventLoop + RpcServer, scripted dispatch) ----------


@pytest.fixture(scope="module")
def echo_tcrd(tmp_path_factory):
    d = tmp_path_factory.mktemp("tcrd")
    sock = str(d / "tcrd.sock")
    proc = subprocess.Popen([sys.executable, ECHO_TCRD, sock, "-"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield sock
    finally:
        proc.terminate()
        proc.wait(10)


def tcr(sock, *args, env=None, **kw):
    e = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "target"))
    e.pop("TCR_HOST", None)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tcr.cli.main", "--socket", sock, *args],
        capture_output=True,
        text=True,
        env=e,
        timeout=30,
        **kw,
    )


def test_e2e_args_pwd_pid_untouched(echo_tcrd, tmp_path):
    r = tcr(echo_tcrd, "echo", "--format", "json", "a b", "", "-it", "é", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["args"] == ["--format", "json", "a b", "", "-it", "é"]
    assert info["pwd"] == str(tmp_path)
    assert info["uid"] == os.getuid() and isinstance(info["pid"], int) and info["stream"] is True


def test_e2e_output_and_exit_code(echo_tcrd):
    r = tcr(echo_tcrd, "exit", "42", "to stdout\n", "to stderr\n")
    assert (r.returncode, r.stdout, r.stderr) == (42, "to stdout\n", "to stderr\n")


@pytest.mark.parametrize("method,code,rc", [("ps", 2, 1), ("ps", 1, 125), ("run", 3, 125), ("image", 7, 125)])
def test_e2e_error_replies(echo_tcrd, method, code, rc):
    # the double's "fail" takes the method to impersonate from TCR_TEST_METHOD-less argv: use fail
    r = tcr(echo_tcrd, "fail", str(code), "it broke")
    assert r.stderr == "tcr: it broke\nhint: a hint\n"
    assert r.returncode == cli.error_exit_code("fail", code)
    assert cli.error_exit_code(method, code) == rc


def test_e2e_unknown_command_and_internal_error(echo_tcrd):
    r = tcr(echo_tcrd, "nosuch")
    assert r.returncode == 125 and r.stderr.startswith("tcr: unknown command")
    r = tcr(echo_tcrd, "crash")
    assert r.returncode == 125 and "internal error" in r.stderr and "Traceback" not in r.stderr


def test_e2e_exec_args_fork_exec(echo_tcrd):
    r = tcr(echo_tcrd, "exec", "sh", "-c", "echo from child; exit 7")
    assert (r.returncode, r.stdout) == (7, "from child\n")


def test_e2e_stream_and_pending(echo_tcrd):
    r = tcr(echo_tcrd, "stream", "5")
    assert r.returncode == 0
    assert r.stdout == "".join(f"chunk {i}\n" for i in range(5)) + "done\n"
    r = tcr(echo_tcrd, "later", "0.05", "waited\n")
    assert (r.returncode, r.stdout) == (0, "waited\n")


def test_e2e_big_reply(echo_tcrd):
    r = tcr(echo_tcrd, "big", str(900_000))
    assert r.returncode == 0 and len(r.stdout) == 900_000


def test_e2e_cannot_connect(tmp_path):
    missing = str(tmp_path / "none.sock")
    r = tcr(missing, "ps")
    assert r.returncode == 125  # docker/podman: tcr itself failed
    assert r.stderr == (
        f"tcr: cannot connect to tcrd at {missing}: No such file or directory\n"
        "hint: is tcrd running? (systemctl start tcrd)\n"
    )
    assert tcr(missing, "run", "x").returncode == 125
    r = tcr(missing, "--debug", "ps")
    assert "Traceback" in r.stderr and r.returncode == 125


def test_e2e_version_without_daemon(tmp_path):
    r = tcr(str(tmp_path / "none.sock"), "--version")
    assert r.stdout.startswith("Client: tcr ") and r.returncode == 125


def test_e2e_client_disconnect_cancels_pending(echo_tcrd):
    e = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "target"))
    p = subprocess.Popen(
        [sys.executable, "-m", "tcr.cli.main", "--socket", echo_tcrd, "cancelled"],
        env=e,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)  # let it connect and send (not a timing assertion: only ordering)
    p.kill()
    p.wait(10)
    r = tcr(echo_tcrd, "exit", "0", "alive\n")  # the server survived and serves others
    assert r.stdout == "alive\n"


def test_client_fast_path_imports():
    """The RPC path must not import argparse/logging/dataclasses/typing/json/socket/re."""
    code = (
        "import sys\n"
        "from tcr.cli import main\n"
        "try:\n    main.main(['--socket', '/nonexistent/x.sock', 'ps'])\n"
        "except SystemExit:\n    pass\n"
        "heavy = {'argparse', 'logging', 'dataclasses', 'typing', 'json', 'socket', 're', 'subprocess',"
        " 'tcr.commands.base', 'tcr.rpc.protocol'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    e = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "target"))
    r = subprocess.run(
        ["/usr/bin/python3", "-S", "-c", code], capture_output=True, text=True, env=e, timeout=30
    )
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_e2e_the_command_skips_the_interpreter_teardown(echo_tcrd):
    """As the process's own main, the client flushes and leaves with os._exit (the teardown is
    ~2 ms of a `tcr ps`): all output and the exit code arrive, atexit handlers do not run."""
    code = (f"import atexit, sys; sys.path.insert(0, {os.path.join(ROOT, 'target')!r})\n"
            "atexit.register(lambda: print('teardown ran'))\n"
            f"sys.argv = ['tcr', '--socket', {echo_tcrd!r}, 'exit', '3', 'x' * 70000, 'to stderr']\n"
            "from tcr.cli.main import main\n"
            "sys.exit(main())\n")
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=30)
    assert r.returncode == 3 and r.stdout == "x" * 70000 and r.stderr == "to stderr", r.stderr[-300:]
    code = code.replace("main())", "main(sys.argv[1:]))")  # called with argv (tests, tools): returns
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=30)
    assert r.returncode == 3 and r.stdout.endswith("teardown ran\n")
