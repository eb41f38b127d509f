"""tcr.rpc.server: the real transport (real sockets, real EventLoop), with a dispatch double only."""

import json
import os
import socket
import stat

import pytest

from tcr.commands.base import Output, Pending
from tcr.common.errors import ContainerNotFound, TcrError
from tcr.daemon.loop import EventLoop
from tcr.rpc import protocol
from tcr.rpc.server import RpcServer, peer_groups


class Double:
    """Dispatch double: records calls, answers by method."""

    def __init__(self, loop):
        self.loop = loop
        self.calls = []
        self.pendings = []

    def __call__(self, method, args, pwd, pid, uid, gid, stream):
        self.calls.append((method, list(args), pwd, pid, uid, gid, stream is not None))
        if method == "echo":
            return Output(0, " ".join(args) + "\n", "err\n")
        if method == "exec":
            return Output(exec_args=list(args))
        if method == "notfound":
            raise ContainerNotFound("container not found: x", hint="see 'tcr ps -a'")
        if method == "crash":
            raise ZeroDivisionError("oops")
        if method == "none":
            return None
        if method == "big":
            return Output(0, "y" * int(args[0]))
        if method in ("later", "stream", "never", "failing"):
            p = Pending()
            self.pendings.append(p)
            if method == "later":
                self.loop.call_later(0.01, lambda: p.resolve(Output(3, "late\n")))
            elif method == "stream":

                def go():
                    if stream:
                        stream("stdout", "a")
                        stream("stderr", "b")
                    p.resolve(Output(0, "end"))

                self.loop.call_soon(go)
            elif method == "failing":
                self.loop.call_soon(lambda: p.fail(TcrError("went wrong", code=5)))
            return p
        raise TcrError(f"unknown command: {method}", code=1)


@pytest.fixture
def env(tmp_path):
    loop = EventLoop()
    double = Double(loop)
    path = str(tmp_path / "run" / "tcrd.sock")
    srv = RpcServer(loop, double, path, abstract_name=None, socket_group=None)
    srv.start()
    clients = []

    def connect():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(path)
        s.setblocking(False)
        clients.append(s)
        pump()  # accept
        return s

    def pump(n=3):
        for _ in range(n):
            loop.run_once(0.05)

    def recv(s, tries=50):
        for _ in range(tries):
            try:
                return s.recv(4 * protocol.MAX_MESSAGE)
            except BlockingIOError:
                loop.run_once(0.05)
        raise AssertionError("no reply")

    def ask(s, data):
        s.send(data if isinstance(data, bytes) else protocol.encode(data))
        return protocol.decode_reply(recv(s))

    e = type(
        "Env",
        (),
        dict(loop=loop, double=double, path=path, srv=srv, connect=connect, pump=pump, recv=recv, ask=ask),
    )
    yield e
    for s in clients:
        s.close()
    srv.close()
    loop.close()


def req(method, *args, rid=1, stream=False):
    return protocol.Request(rid, method, list(args), "/work", 4321, stream)


def test_socket_file_mode_and_parent(env):
    st = os.stat(env.path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert stat.S_IMODE(os.stat(os.path.dirname(env.path)).st_mode) == 0o755


def test_result_exec_and_error_replies(env):
    s = env.connect()
    assert env.ask(s, req("echo", "a", "b", rid=11)) == protocol.Result(11, 0, "a b\n", "err\n")
    assert env.ask(s, req("exec", "crun", "run", rid=12)) == protocol.ExecResult(12, ["crun", "run"])
    assert env.ask(s, req("notfound", rid=13)) == protocol.ErrorReply(
        13, 2, "container not found: x", "see 'tcr ps -a'"
    )
    r = env.ask(s, req("crash", rid=14))
    assert isinstance(r, protocol.ErrorReply) and r.code == 7 and "ZeroDivisionError" in r.message
    r = env.ask(s, req("none", rid=15))
    assert isinstance(r, protocol.ErrorReply) and r.code == 7
    # the dispatch double saw what the client sent, plus the peer's credentials
    assert env.double.calls[0] == ("echo", ["a", "b"], "/work", 4321, os.getuid(), os.getgid(), False)


def test_bad_input_gets_error_replies_and_server_keeps_serving(env):
    s = env.connect()
    r = env.ask(s, b"{nonsense")
    assert (r.id, r.code) == (0, 1)
    r = env.ask(s, b'{"id":9,"method":"ps","params":{"args":[1,2]}}')
    assert (r.id, r.code) == (9, 6)
    r = env.ask(s, b'{"id":10,"method":"nosuch","params":{"args":[]}}')
    assert (r.id, r.code) == (10, 1)
    # oversized: more than 1 MiB in one datagram
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * protocol.MAX_MESSAGE)
    if s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) > protocol.MAX_MESSAGE + 4096:
        r = env.ask(s, b"x" * (protocol.MAX_MESSAGE + 10))
        assert (r.id, r.code) == (0, 6) and "too large" in r.message
    assert env.ask(s, req("echo", "still", rid=3)).stdout == "still\n"


def test_several_requests_on_one_connection_keep_their_ids(env):
    s = env.connect()
    s.send(protocol.encode(req("later", rid=1)))
    s.send(protocol.encode(req("echo", "now", rid=2)))
    first = protocol.decode_reply(env.recv(s))
    second = protocol.decode_reply(env.recv(s))
    assert first == protocol.Result(2, 0, "now\n", "err\n")  # not blocked by the pending one
    assert second == protocol.Result(1, 3, "late\n", "")


def test_pending_failure_is_an_error_reply(env):
    s = env.connect()
    assert env.ask(s, req("failing", rid=4)) == protocol.ErrorReply(4, 5, "went wrong")


def test_stream_only_when_asked(env):
    s = env.connect()
    assert env.ask(s, req("stream", rid=5)) == protocol.Result(5, 0, "end", "")
    s.send(protocol.encode(req("stream", rid=6, stream=True)))
    got = [protocol.decode_reply(env.recv(s)) for _ in range(3)]
    assert got == [
        protocol.StreamChunk(6, stdout="a"),
        protocol.StreamChunk(6, stderr="b"),
        protocol.Result(6, 0, "end", ""),
    ]


def test_client_disconnect_cancels_pending(env):
    s = env.connect()
    s.send(protocol.encode(req("never", rid=1)))
    env.pump()
    (p,) = env.double.pendings
    cancelled = []
    p.on_cancel = lambda: cancelled.append(True)
    s.close()
    env.pump()
    assert cancelled == [True] and p.done
    p.resolve(Output(0, "too late"))  # harmless after the client left
    # others still served
    s2 = env.connect()
    assert env.ask(s2, req("echo", "x")).stdout == "x\n"


def test_reply_too_large_becomes_error(env):
    s = env.connect()
    r = env.ask(s, req("big", str(protocol.MAX_MESSAGE + 1)))
    assert isinstance(r, protocol.ErrorReply) and r.code == 7 and "too large" in r.message
    r = env.ask(s, req("big", str(protocol.MAX_MESSAGE - 200), rid=2))
    assert isinstance(r, protocol.Result) and len(r.stdout) == protocol.MAX_MESSAGE - 200


def test_stale_socket_replaced_live_socket_refused(env, tmp_path):
    loop2 = EventLoop()
    srv2 = RpcServer(loop2, env.double, env.path, abstract_name=None, socket_group=None)
    with pytest.raises(TcrError, match="already listening"):
        srv2.start()
    loop2.close()
    stale = str(tmp_path / "stale.sock")
    old = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old.bind(stale)
    old.close()  # a socket file nobody listens on, as after a crash
    loop3 = EventLoop()
    srv3 = RpcServer(loop3, env.double, stale, abstract_name=None, socket_group=None)
    srv3.start()
    assert stat.S_IMODE(os.stat(stale).st_mode) == 0o660
    srv3.close()
    loop3.close()
    assert not os.path.exists(stale)


def test_abstract_socket(env, tmp_path):
    name = f"tcr_test_{os.getpid()}_{id(env)}"
    loop = EventLoop()
    srv = RpcServer(loop, env.double, str(tmp_path / "a.sock"), abstract_name=name, socket_group=None)
    srv.start()
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect("\0" + name)
        s.send(protocol.encode(req("echo", "abs")))
        for _ in range(5):
            loop.run_once(0.05)
        assert protocol.decode_reply(s.recv(65536)).stdout == "abs\n"
        s.close()
    finally:
        srv.close()
        loop.close()


def test_each_socket_has_its_own_dispatcher(env, tmp_path):
    """The compat (abstract) socket is served by compat_dispatch, the filesystem socket by dispatch:
    the hook that lets the C client get the C dialect while tcr's own socket keeps docker's."""
    name = f"tcr_test_dialect_{os.getpid()}_{id(env)}"
    compat_calls = []

    def compat(method, args, pwd, pid, uid, gid, stream):
        compat_calls.append(method)
        return Output(0, "compat\n")

    loop = EventLoop()
    path = str(tmp_path / "d.sock")
    srv = RpcServer(loop, env.double, path, abstract_name=name, socket_group=None, compat_dispatch=compat)
    srv.start()
    socks = []
    try:
        for address in ("\0" + name, path):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            socks.append(s)
            s.connect(address)
            s.send(protocol.encode(req("echo", "own")))
        for _ in range(5):
            loop.run_once(0.05)
        assert protocol.decode_reply(socks[0].recv(65536)).stdout == "compat\n"
        assert protocol.decode_reply(socks[1].recv(65536)).stdout == "own\n"
        assert compat_calls == ["echo"] and [c[0] for c in env.double.calls] == ["echo"]
    finally:
        for s in socks:
            s.close()
        srv.close()
        loop.close()


def test_close_unlinks_and_disconnects(env):
    s = env.connect()
    env.srv.close()
    assert not os.path.exists(env.path)
    s.setblocking(True)
    s.settimeout(2)
    assert s.recv(100) == b""  # connection closed


def test_permission_rules(env):
    srv = env.srv
    assert srv.allowed(os.getpid(), 0, 0)
    assert srv.allowed(os.getpid(), os.geteuid(), 12345)
    other = 54321 if os.geteuid() != 54321 else 54322
    assert not srv.allowed(os.getpid(), other, 54321)  # no socket group configured
    srv._group_gid = 54321
    assert srv.allowed(os.getpid(), other, 54321)  # primary group
    mine = peer_groups(os.getpid())
    if mine:
        srv._group_gid = mine[0]
        assert srv.allowed(os.getpid(), other, 1)  # supplementary group from /proc
    srv._group_gid = None


def test_echo_double_via_json(env):
    s = env.connect()
    r = env.ask(s, b'{"id":1,"method":"echo","params":{"args":["\\u00e9"]}}')
    assert r.stdout == "\u00e9\n"
    assert env.double.calls[-1][2] == "/"  # no pwd: "/" as the C daemon does
    json.dumps(env.double.calls)


def test_peers_from_another_pid_namespace_are_refused():
    import os

    from tcr.rpc.server import same_pid_namespace

    assert same_pid_namespace(os.getpid())
    assert not same_pid_namespace(2**22 + 7)  # no such process: cannot tell who it is


def test_group_id_reads_etc_group(tmp_path):
    from tcr.rpc.listen import group_id

    f = tmp_path / "group"
    f.write_text("root:x:0:\ntcr:x:997:alice,bob\nbad:x:notanumber:\n")
    assert group_id("tcr", str(f)) == 997
    assert group_id("root", str(f)) == 0
    assert group_id("bad", str(f)) is None
    assert group_id("nope", str(f)) is None
    assert group_id("tcr", str(tmp_path / "missing")) is None
    assert group_id(None, str(f)) is None


def test_at_the_fd_limit_listening_pauses_and_resumes_when_a_client_leaves(env, monkeypatch):
    from tcr.rpc import server as srvmod

    # A limit of 8 makes every fd number "high" (counted); free fds = limit - open_fds().
    free = {"n": 100}
    monkeypatch.setattr(srvmod, "fd_limit", lambda: 8)
    monkeypatch.setattr(srvmod, "open_fds", lambda: 8 - free["n"])
    first = [env.connect() for _ in range(srvmod.MIN_CLIENTS)]
    free["n"] = srvmod.FD_RESERVE - 1  # one short of the reserve
    busy = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    busy.connect(env.path)
    env.pump()
    reply = protocol.decode_reply(env.recv(busy))  # told to try again, then closed
    assert isinstance(reply, protocol.ErrorReply) and "file descriptor limit" in reply.message
    busy.close()
    assert env.srv._paused and not any(s.fileno() in env.loop._readers for s in env.srv._listeners)
    for s in first:  # the served clients still get answers
        assert env.ask(s, req("echo", "hi")).stdout == "hi\n"
    free["n"] = 100
    first[0].close()
    env.pump()  # the client left: its fd is free, listening resumes
    assert not env.srv._paused and all(s.fileno() in env.loop._readers for s in env.srv._listeners)
    again = env.connect()
    assert env.ask(again, req("echo", "back")).stdout == "back\n"


def test_a_client_paused_by_flow_control_is_not_read_further_in_the_same_batch(tmp_path):
    """A channel that pauses its client (a stdin backlog, a cp worker that stopped reading) must
    get no more frames: the server used to finish its batch of 32 messages first (2 MiB more of
    64 KiB frames in tcrd's memory)."""
    loop = EventLoop()
    got = []
    chans = []

    def dispatch(method, args, pwd, pid, uid, gid, stream, channel=None):
        channel.open(stdin=True)
        chans.append(channel)

        def on_input(data):
            got.append(data)
            channel.pause_input()  # as attach/cp do when their writer is backed up

        channel.on_input = on_input
        return Pending()

    path = str(tmp_path / "s.sock")
    srv = RpcServer(loop, dispatch, path, abstract_name=None, socket_group=None)
    srv.start()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.connect(path)
        for _ in range(3):
            loop.run_once(0.05)
        s.send(protocol.encode(protocol.Request(1, "cp", [], "/", 1, True, attach=True)))
        for _ in range(3):
            loop.run_once(0.05)
        assert chans, "no channel"
        for i in range(10):
            s.send(b"\x00" + bytes([i]) * 1000)
        for _ in range(5):
            loop.run_once(0.05)
        assert got == [b"\x00" * 1000]
        chans[0].resume_input()
        loop.run_once(0.05)
        assert got[1] == b"\x01" * 1000
    finally:
        s.close()
        srv.close()
        loop.close()
