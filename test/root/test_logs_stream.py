"""`tcr logs` at any size and with docker's options (issue 13 §3). Each test failed on the code
that sent the whole log in one reply ("reply too large" past ~1 MiB) and mixed stdout and stderr."""

import hashlib
import os
import socket
import subprocess
import time

import pytest

from test.fixtures.process import wait_for
from test.root.test_containers import cli, d, inspect  # noqa: F401  (fixture)

pytestmark = pytest.mark.root

NONE = ("--network", "none")


def blob(size: int, seed: bytes) -> bytes:
    """Binary data (every byte value but newline) in lines of ~8000 bytes, last line unterminated."""
    out = bytearray()
    n = 0
    while len(out) < size:
        out += hashlib.sha512(seed + str(n).encode()).digest()
        n += 1
    data = bytes(out[:size]).replace(b"\n", b"\r")
    data = bytearray(data)
    for i in range(7999, size - 1, 8000):
        data[i] = 10
    return bytes(data)


def vm_hwm(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def logs_bytes(d, *args):  # noqa: F811
    return subprocess.run(d.cli_argv("logs", *args), env=d.cli_env(), capture_output=True, timeout=300)


def _roundtrip(d, tmp_path, size, extra):  # noqa: F811
    data = blob(size, str(size).encode())
    src = tmp_path / "data"
    src.write_bytes(data)
    try:
        return _check_roundtrip(d, src, data, extra)
    finally:
        src.unlink()  # 195 MiB: not left for pytest's kept temp dirs


def _check_roundtrip(d, src, data, extra):  # noqa: F811
    with open(f"/proc/{d.pid}/clear_refs", "w") as f:
        f.write("5")
    start = vm_hwm(d.pid)
    r = subprocess.run(d.cli_argv("run", "--name", "big", *NONE, "-v", f"{src}:/data:ro", *extra, "busybox",
                                  "cat", "/data"), env=d.cli_env(), capture_output=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data  # the attached client got it all too
    relay = vm_hwm(d.pid) - start
    with open(f"/proc/{d.pid}/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS: the peak below is the streaming's alone
    before = vm_hwm(d.pid)
    out = logs_bytes(d, "big")
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stderr == b""
    assert len(out.stdout) == len(data) and out.stdout == data
    return relay, vm_hwm(d.pid) - before


def test_a_2mib_log_comes_back_byte_exact(d, tmp_path):  # noqa: F811
    # 1m x 2 files is the default retention: ~1.9 MiB of output fills it past 1 MiB
    _roundtrip(d, tmp_path, 1900 * 1024, ())


def test_a_200mib_log_comes_back_byte_exact_with_bounded_daemon_memory(d, tmp_path):  # noqa: F811
    relay, grew = _roundtrip(d, tmp_path, 195 * 1024 * 1024, ("--log-opt", "max-size=100m"))
    print(f"tcrd peak RSS growth: relaying and logging 195 MiB {relay / 1048576:.1f} MiB, "
          f"streaming the log back {grew / 1048576:.1f} MiB")
    assert relay < 48 * 1024 * 1024, f"tcrd's peak RSS grew by {relay} bytes relaying the output"
    assert grew < 48 * 1024 * 1024, f"tcrd's peak RSS grew by {grew} bytes streaming the log"


def test_tail_timestamps_since_until_and_streams_apart(d):  # noqa: F811
    cli(d, "run", "--name", "lg", *NONE, "busybox", "sh", "-c",
        "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done; printf 'no newline'")
    r = cli(d, "logs", "lg")
    assert r.stdout == "out1\nout2\nout3\nout4\nout5\nno newline"
    assert r.stderr == "err1\nerr2\nerr3\nerr4\nerr5\n"
    # (between the two streams, the order is the one tcrd read them in)
    cli(d, "run", "--name", "tl", *NONE, "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo out$i; done; "
        "printf 'no newline'")
    assert cli(d, "logs", "-n", "3", "tl").stdout == "out4\nout5\nno newline"
    assert cli(d, "logs", "--tail", "0", "tl").stdout == ""
    r = cli(d, "logs", "-t", "-n", "2", "tl")
    lines = r.stdout.split("\n")
    assert [ln.partition(" ")[2] for ln in lines] == ["out5", "no newline"]
    ts = lines[0].partition(" ")[0]
    assert ts.endswith("Z") and ts.startswith(time.strftime("%Y-", time.gmtime()))
    assert cli(d, "logs", "--since", "10m", "lg").stdout.startswith("out1\n")
    assert cli(d, "logs", "--since", "2000-01-01T00:00:00Z", "lg").stdout.startswith("out1\n")
    assert cli(d, "logs", "--until", "10m", "lg").stdout == ""
    assert cli(d, "logs", "--since", str(int(time.time()) + 3600), "lg").stdout == ""
    r = d.cli("logs", "--since", "yesterday-ish", "lg")
    assert r.returncode != 0 and "--since" in r.stderr
    r = d.cli("logs", "nosuch")
    assert r.returncode != 0 and "no such container" in r.stderr


def test_follow_across_rotation(d):  # noqa: F811
    cli(d, "run", "-d", "--name", "rot", *NONE, "--log-opt", "max-size=4k", "--log-opt", "max-file=2",
        "busybox", "sh", "-c",
        "sleep 1; i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done; echo done >&2; sleep 1")
    p = subprocess.Popen(d.cli_argv("logs", "-f", "rot"), env=d.cli_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert out.decode().split() == [f"line-{i}" for i in range(400)]  # 16x the retention, no gaps
    assert err == b"done\n"
    assert inspect(d, "rot")["state"] == "exited"


def test_log_driver_none_and_syslog(d, tmp_path, monkeypatch):  # noqa: F811
    cli(d, "run", "--name", "quiet", "--log-driver", "none", *NONE, "busybox", "echo", "hi")
    r = d.cli("logs", "quiet")
    assert r.returncode != 0 and "none" in r.stderr
    path = str(tmp_path / "log.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(10)
    try:
        monkeypatch.setenv("TCR_SYSLOG_SOCKET", path)
        d.restart()
        r = d.cli("run", "--name", "sl", "--log-driver", "syslog", *NONE, "busybox", "sh", "-c",
                  "echo to-syslog; echo oops >&2")
        assert (r.returncode, r.stdout, r.stderr) == (0, "to-syslog\n", "oops\n")  # still attached
        got = sorted([s.recv(4096), s.recv(4096)])
        assert got == [b"<27>tcr/sl: oops", b"<30>tcr/sl: to-syslog"]
        r = d.cli("logs", "sl")
        assert r.returncode != 0 and "syslog" in r.stderr
    finally:
        s.close()
    wait_for(lambda: d.cli("ps").returncode == 0, what="tcrd")
    assert os.path.exists(path)
