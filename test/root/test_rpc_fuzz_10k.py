"""RPC fuzz, 10k+ messages at a real tcrd (complements test_rpc_fuzz.py, which covers fewer
messages, several clients and the credential checks).

Classes: random bytes (incl. invalid UTF-8), truncated valid requests, every field with every
wrong JSON type, out-of-range numbers (ids beyond 2^53, 1e400, NaN), strings with NUL, lone
surrogates and control characters, deep nesting, duplicate and unknown keys, near-limit and
over-limit sizes, and well-formed requests of the read-only commands with mutated arguments.

Every message gets exactly one reply, an error where the request is not valid, carrying the
request's id whenever the id could be read; no message makes the daemon report an internal error
(that would be a crash it happened to catch); afterwards the daemon answers correctly and its
state (a loaded image) is unchanged.
"""

import json
import os
import random
import socket

import pytest

from tcr.rpc import protocol

pytestmark = pytest.mark.root

N = 10_500
SEED = int(os.environ.get("TCR_FUZZ_SEED", "7007"))
_SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)

# Commands that change nothing whatever their arguments (the fuzzer must not remove the image).
READ_ONLY = [
    ("help", []), ("version", []), ("ps", ["-a"]), ("images", []), ("image", ["ls"]),
    ("image", ["inspect", "busybox"]), ("image", ["verify", "x"]), ("network", ["ls"]),
    ("network", ["inspect", "nope"]), ("networks", []), ("inspect", ["nope"]), ("logs", ["nope"]),
]
FLAGS = ["-a", "-q", "--format", "json", "--json", "--format=json", "--format=yaml", "-n", "-1", "--",
         "-", "", "--no-such-flag", "-zzz", "x" * 300, "\u0000", "\u00e9\u4e2d", "%s%n", "../../..", "-h",
         "--help", "9" * 40]
WRONG = [None, True, False, 0, -1, 1.5, 2**63, 1e300, "", "x", [], {}, [1], ["a", None], {"a": 1},
         [[["deep"]]]]


def _request(rid, method, args, **params):
    p = {"args": args, "pwd": "/", "pid": os.getpid()}
    p.update(params)
    return {"id": rid, "method": method, "params": p}


def _messages(rng):
    """Yields (bytes, expected id or None if the id cannot be read, read_only_valid)."""
    for i in range(N):
        rid = i + 1
        kind = i % 12
        if kind == 0:  # raw noise, including invalid UTF-8
            yield bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))), None, False
        elif kind == 1:  # a truncated valid request
            m, a = rng.choice(READ_ONLY)
            raw = json.dumps(_request(rid, m, a)).encode()
            yield raw[: rng.randint(1, len(raw) - 1)], None, False
        elif kind == 2:  # one field of the right shape replaced by a wrong type
            d = _request(rid, *rng.choice(READ_ONLY))
            where = rng.choice(["method", "params", "args", "pwd", "pid", "stream"])
            bad = rng.choice(WRONG)
            if where in ("method", "params"):
                d[where] = bad
            else:
                d["params"][where] = bad
            yield json.dumps(d).encode(), "maybe", False
        elif kind == 3:  # a wrong id
            d = _request(rng.choice(WRONG + [2**60, -2**60, "1"]), "help", [])
            yield json.dumps(d).encode(), None, False
        elif kind == 4:  # well-formed, read-only command, mutated arguments
            m, a = rng.choice(READ_ONLY)
            args = list(a) + [rng.choice(FLAGS) for _ in range(rng.randint(0, 4))]
            rng.shuffle(args)
            yield json.dumps(_request(rid, m, args)).encode(), rid, True
        elif kind == 5:  # deep nesting
            depth = rng.randint(50, 200_000)
            yield b'{"id":1,"method":' + b"[" * depth + b"]" * rng.choice((0, depth)) + b"}", None, False
        elif kind == 6:  # strings with NUL, lone surrogates, control characters (escaped in JSON)
            junk = rng.choice(['\\u0000', '\\u001b[2J', '\\n\\r\\t', '\\uffff', '\\u2028', '\\u00ff'])
            where = rng.choice(["method", "arg", "pwd"])
            if where == "method":
                raw = '{"id":' + str(rid) + ',"method":"he' + junk + 'lp","params":{"args":[]}}'
            elif where == "arg":
                raw = '{"id":' + str(rid) + ',"method":"image","params":{"args":["inspect","' + junk + '"]}}'
            else:
                raw = '{"id":' + str(rid) + ',"method":"ps","params":{"args":[],"pwd":"/' + junk + '"}}'
            yield raw.encode(), "maybe", False
        elif kind == 7:  # JSON edge numbers and literals
            raw = rng.choice([b'{"id":1e400,"method":"help"}', b'{"id":NaN,"method":"help"}',
                              b'{"id":Infinity,"method":"help"}', b'{"id":-0,"method":"help"}',
                              b'{"id":1,"method":"help","params":{"pid":1e400}}',
                              b'{"id":1,"method":"help","params":{"pid":-5}}',
                              b'{"id":1,"method":"help","params":{"pid":4294967296}}',
                              b'{"id":0.5,"method":"help"}', b"null", b"true", b"\"str\"", b"[]", b"{}",
                              b" ", b"\n"])
            yield raw, "maybe", False
        elif kind == 8:  # duplicate and unknown keys
            raw = ('{"id":' + str(rid) + ',"method":"help","method":"ps","params":{"args":[]},'
                   '"params":{"args":["-a"]},"extra":{"x":[1,2,3]},"jsonrpc":"2.0"}')
            yield raw.encode(), rid, True
        elif kind == 9:  # many arguments / long method names
            if rng.random() < 0.5:
                yield json.dumps(_request(rid, "ps", ["-a"] * rng.randint(100, 1000))).encode(), rid, True
            else:
                yield json.dumps(_request(rid, "x" * rng.randint(100, 100000), [])).encode(), rid, False
        elif kind == 10:  # valid JSON, not a request
            not_request = rng.choice(WRONG + [{"id": rid}, {"method": "help"}, {"params": {}}])
            yield json.dumps(not_request).encode(), "maybe", False
        else:  # a valid request in between: the daemon must still be doing real work correctly
            yield json.dumps(_request(rid, "image", ["ls", "-q"])).encode(), rid, True


def _recv(sock):
    return protocol.decode_reply(sock.recv(2 * protocol.MAX_MESSAGE))


def test_10k_fuzzed_messages_each_get_one_reply_and_tcrd_stays_correct(tcrd, tmp_path):
    from test.fixtures.images import tiny_sqfs
    from test.root.test_bad_images import good_info

    img = tiny_sqfs(tmp_path, good_info(), name="fuzz.sqfs")
    r = tcrd.cli("image", "load", "-q", img)
    assert r.returncode == 0, r.stderr
    iid = r.stdout.strip()
    rng = random.Random(SEED)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(30)
    s.connect(tcrd.socket)
    s.setsockopt(socket.SOL_SOCKET, _SO_SNDBUFFORCE, 4 * protocol.MAX_MESSAGE)
    counts = {"error": 0, "result": 0}
    internal = []
    for data, rid, _read_only in _messages(rng):
        s.send(data)
        reply = _recv(s)
        if isinstance(reply, protocol.ErrorReply):
            counts["error"] += 1
            if reply.code == 7:
                internal.append(f"{data[:120]!r} -> {reply.message}")
        else:
            assert isinstance(reply, protocol.Result), reply
            counts["result"] += 1
        if isinstance(rid, int):
            assert reply.id == rid, (data[:200], reply)
        if rid is not None and rid != "maybe" and data.startswith(b'{"id": %d, "method": "image", "params": '
                                                                  b'{"args": ["ls", "-q"]' % rid):
            assert isinstance(reply, protocol.Result) and reply.stdout.split() == [iid], reply
    # Sizes at and beyond the limit.
    near = json.dumps(_request(1, "ps", ["a" * (protocol.MAX_MESSAGE - 200)])).encode()
    assert len(near) <= protocol.MAX_MESSAGE
    for data in (near, b"{" * (protocol.MAX_MESSAGE + 1), b" " * (3 * protocol.MAX_MESSAGE)):
        s.send(data)
        reply = _recv(s)
        assert isinstance(reply, (protocol.ErrorReply, protocol.Result))
        if len(data) > protocol.MAX_MESSAGE:
            assert isinstance(reply, protocol.ErrorReply) and reply.code == 6, reply
        counts["error" if isinstance(reply, protocol.ErrorReply) else "result"] += 1
    s.close()
    total = counts["error"] + counts["result"]
    assert total >= 10_000 and counts["error"] > 3000 and counts["result"] > 1500, counts
    assert not internal, f"{len(internal)} internal errors, e.g.:\n" + "\n".join(internal[:10])
    # Alive and correct afterwards, with its state unchanged.
    assert tcrd.running()
    r = tcrd.cli("image", "ls", "-q")
    assert r.returncode == 0 and r.stdout.split() == [iid]
    r = tcrd.cli("image", "inspect", iid)
    assert r.returncode == 0 and json.loads(r.stdout)[0]["mounted"] is True
    assert "Traceback" not in tcrd.log()


def test_empty_datagram_ends_only_that_connection(tcrd):
    """An empty SEQPACKET datagram reads as end-of-connection (recv() == 0 either way): the daemon
    closes that connection without a reply and serves the next one."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(30)
    s.connect(tcrd.socket)
    s.send(b"")
    assert s.recv(65536) == b""
    s.close()
    assert tcrd.cli("image", "ls").returncode == 0


def test_lone_surrogate_escapes_get_an_error_reply(tcrd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(3)  # the reply is immediate when there is one
    s.connect(tcrd.socket)
    try:
        for i, raw in enumerate(('{"id":%d,"method":"image","params":{"args":["inspect","\\udfff"]}}',
                                 '{"id":%d,"method":"he\\ud800lp","params":{"args":[]}}')):
            s.send((raw % (i + 1)).encode())
            reply = _recv(s)
            assert isinstance(reply, protocol.ErrorReply) and reply.id == i + 1, reply
    finally:
        s.close()
    assert tcrd.cli("image", "ls").returncode == 0
