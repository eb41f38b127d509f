"""A real tcrd under fire: thousands of random, truncated, oversized and wrongly typed messages,
several clients at once; plus the peer-credential check on both sockets."""

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

from tcr.rpc import protocol
from test.fixtures.process import in_child

pytestmark = pytest.mark.root

HERE = os.path.dirname(os.path.abspath(__file__))
ECHO_TCRD = os.path.join(os.path.dirname(HERE), "samples", "rpc", "echo_tcrd.py")
_SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)


def _connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(10)
    s.connect(path)
    return s


def _valid(rid):
    return protocol.encode(protocol.Request(rid, "version", ["--format", "json"], "/", os.getpid()))


def _messages(rng, n):
    """Random junk of every kind: bytes, truncated valid requests, wrong types, deep nesting."""
    good = b'{"id":1,"method":"image","params":{"args":["ls"],"pwd":"/","pid":1}}'
    values = [None, True, 1, -1, 2.5, 1e308, "x", "", [], {}, ["a", 1], {"a": None}, 2**70]
    for i in range(n):
        kind = i % 8
        if kind == 0:
            yield bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
        elif kind == 1:
            yield good[: rng.randint(1, len(good) - 1)]
        elif kind == 2:
            d = {
                "id": rng.choice(values + [i]),
                "method": rng.choice(values + ["ps", "image", "help"]),
                "params": rng.choice(
                    values
                    + [
                        {"args": rng.choice(values)},
                        {"pwd": rng.choice(values)},
                        {"pid": rng.choice(values)},
                        {"stream": rng.choice(values)},
                    ]
                ),
            }
            yield json.dumps(d).encode()
        elif kind == 3:
            depth = rng.randint(100, 100000)
            yield b"[" * depth + b"]" * rng.choice([0, depth])
        elif kind == 4:
            yield json.dumps(
                {
                    "id": i,
                    "method": "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(20)),
                    "params": {"args": []},
                }
            ).encode()
        elif kind == 5:
            yield good.replace(b"ls", bytes([rng.getrandbits(8)]))
        elif kind == 6:
            yield json.dumps(
                {"id": i, "method": "help", "params": {"args": ["x" * rng.randint(0, 5000)]}}
            ).encode()
        else:
            yield json.dumps(rng.choice(values)).encode()


def test_fuzz_daemon_survives_and_stays_correct(tcrd):
    rng = random.Random(1234)
    clients = [_connect(tcrd.socket) for _ in range(4)]
    sent = 0
    replies = 0
    for i, data in enumerate(_messages(rng, 2400)):
        c = clients[i % len(clients)]
        c.send(data)
        sent += 1
        reply = protocol.decode_reply(
            c.recv(2 * protocol.MAX_MESSAGE)
        )  # every message gets exactly one reply
        assert isinstance(reply, (protocol.ErrorReply, protocol.Result)), reply
        replies += 1
    assert replies == sent >= 2000

    # oversized: more than 1 MiB in one datagram (root may force a big enough send buffer)
    big = clients[0]
    big.setsockopt(socket.SOL_SOCKET, _SO_SNDBUFFORCE, 4 * protocol.MAX_MESSAGE)
    for size in (protocol.MAX_MESSAGE + 1, 3 * protocol.MAX_MESSAGE):
        big.send(b"{" * size)
        r = protocol.decode_reply(big.recv(65536))
        assert isinstance(r, protocol.ErrorReply) and (r.id, r.code) == (0, 6)

    # a client that vanishes mid-way, and one that never reads, do not disturb the others
    ghost = _connect(tcrd.socket)
    ghost.send(_valid(1))
    ghost.close()
    deaf = _connect(tcrd.socket)
    for _ in range(50):
        deaf.send(_valid(2))

    for j, c in enumerate(clients):
        c.send(_valid(100 + j))
        r = protocol.decode_reply(c.recv(65536))
        assert isinstance(r, protocol.Result) and r.id == 100 + j
        assert json.loads(r.stdout)["pid"] == tcrd.pid
    for c in clients + [deaf]:
        c.close()
    assert tcrd.running()
    r = tcrd.cli("version")
    assert r.returncode == 0 and "Server: tcrd" in r.stdout


def _as_nobody(fn):
    """Run fn() in a forked child as uid/gid 65534 with no groups; return what it printed."""
    return in_child(fn)


def _try(address):
    def attempt():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(10)
        try:
            s.connect(address)
        except OSError as exc:
            return f"connect refused: {exc.strerror}"
        try:
            s.send(_valid(5))
        except OSError:
            pass
        try:
            data = s.recv(65536)
        except ConnectionResetError:  # reported before the queued reply; read it now
            data = s.recv(65536)
        return data.decode() if data else "closed"

    return attempt


@pytest.fixture
def compat_daemon():
    """The real transport with the abstract name enabled (the tcrd fixture disables it)."""
    name = f"tcr_test_{os.getpid()}_{random.getrandbits(32):08x}"
    base = tempfile.mkdtemp(prefix=f"tcr-rpc-{os.getpid()}-")
    os.chmod(base, 0o755)  # others may reach the socket file: only its own mode and SO_PEERCRED guard it
    sock = os.path.join(base, "run", "tcrd.sock")
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(os.path.dirname(HERE)), "target"))
    proc = subprocess.Popen(
        [sys.executable, ECHO_TCRD, sock, name], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield sock, name
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(base, ignore_errors=True)


def test_non_root_refused_on_both_sockets(compat_daemon):
    sock, name = compat_daemon
    # filesystem socket: the file mode (0660 root) already refuses
    assert _as_nobody(_try(sock)).startswith("connect refused: Permission denied")
    # abstract socket: no file mode; SO_PEERCRED does it, with an error reply
    out = _as_nobody(_try("\0" + name))
    reply = protocol.decode_reply(out.encode())
    assert isinstance(reply, protocol.ErrorReply) and (reply.id, reply.code) == (0, 7)
    assert reply.message == "permission denied"
    # filesystem socket opened up by mistake: SO_PEERCRED still refuses
    os.chmod(sock, 0o666)
    try:
        reply = protocol.decode_reply(_as_nobody(_try(sock)).encode())
        assert isinstance(reply, protocol.ErrorReply) and reply.message == "permission denied"
    finally:
        os.chmod(sock, 0o660)
    # root is still welcome on both
    for addr in (sock, "\0" + name):
        s = _connect(addr)
        s.send(protocol.encode(protocol.Request(1, "exit", ["0", "ok"])))
        assert protocol.decode_reply(s.recv(65536)) == protocol.Result(1, 0, "ok", "")
        s.close()


def test_non_root_cli_message(compat_daemon):
    sock, name = compat_daemon
    target = os.path.join(os.path.dirname(os.path.dirname(HERE)), "target")

    def run_cli():
        import io
        import sys as _sys

        _sys.path.insert(0, target)
        from tcr.cli import main as cli

        err = io.StringIO()
        _sys.stderr = type("E", (), {"buffer": io.BytesIO(), "flush": lambda self: None})()
        code = cli.main(["--socket", "@" + name, "ps"])
        err.write(_sys.stderr.buffer.getvalue().decode())
        return f"{code}\n{err.getvalue()}"

    out = _as_nobody(run_cli)
    code, _, text = out.partition("\n")
    assert code == "125"  # cannot use the daemon: tcr itself failed
    assert text.startswith("tcr: permission denied\nhint: run as root or add the user to group")
