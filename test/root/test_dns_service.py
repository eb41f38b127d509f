"""DnsService end to end on loopback: a real EventLoop in a thread, stub upstream servers, real sockets.

Only loopback addresses (127.0.0.x) and high ports are used, so this runs without root too.
The stub upstream answers every A query with a fixed address (and TC over UDP for 'big.test').
"""

import concurrent.futures
import os
import random
import socket
import struct
import threading
import time

import pytest
from dnslib import EDNS0, QTYPE, RCODE, RR, A, DNSRecord

from tcr.daemon.loop import EventLoop
from tcr.network.dns.server import DnsService

SVC_IP = "127.0.0.2"
STUB1 = "127.0.0.3"
STUB2 = "127.0.0.4"
DEAD = "127.0.0.5"  # nothing listens there


class LoopThread:
    """An EventLoop running in a thread; call() runs a function on it and returns its result."""

    def __init__(self):
        self.loop = EventLoop()
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._calls = []
        self._lock = threading.Lock()
        self.loop.add_reader(self._r.fileno(), self._drain)
        self._thread = threading.Thread(target=self.loop.run, daemon=True)
        self._thread.start()

    def _drain(self):
        try:
            self._r.recv(4096)
        except BlockingIOError:
            pass
        with self._lock:
            calls, self._calls = self._calls, []
        for fn, fut in calls:
            try:
                fut.set_result(fn())
            except BaseException as e:  # noqa: B036 - handed to the caller
                fut.set_exception(e)

    def call(self, fn):
        fut = concurrent.futures.Future()
        with self._lock:
            self._calls.append((fn, fut))
        self._w.send(b"x")
        return fut.result(timeout=10)

    def close(self):
        self.call(self.loop.stop)
        self._thread.join(10)
        self.loop.remove_reader(self._r.fileno())
        self._r.close()
        self._w.close()
        self.loop.close()


class StubUpstream:
    """A tiny DNS server on ip:port (UDP and TCP) answering A queries with a fixed address."""

    def __init__(self, ip, port, answer):
        self.answer = answer
        self.queries = []
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((ip, port))
        self.udp.settimeout(0.1)
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((ip, port))
        self.tcp.listen(8)
        self.tcp.settimeout(0.1)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve_udp, daemon=True),
                         threading.Thread(target=self._serve_tcp, daemon=True)]
        for t in self._threads:
            t.start()

    def _reply(self, data, tcp):
        q = DNSRecord.parse(data)
        self.queries.append((str(q.q.qname), "tcp" if tcp else "udp"))
        r = q.reply()
        if str(q.q.qname) == "big.test." and not tcp:
            r.header.tc = 1
            return r.pack()
        if q.q.qtype == QTYPE.A:
            r.add_answer(RR(q.q.qname, QTYPE.A, ttl=60, rdata=A(self.answer)))
        return r.pack()

    def _serve_udp(self):
        while not self._stop.is_set():
            try:
                data, addr = self.udp.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.udp.sendto(self._reply(data, False), addr)

    def _serve_tcp(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    size = struct.unpack("!H", _recv_exact(conn, 2))[0]
                    reply = self._reply(_recv_exact(conn, size), True)
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
                except OSError:
                    pass

    def close(self):
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self.udp.close()
        self.tcp.close()


def _recv_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise OSError("closed")
        out += chunk
    return out


def _free_port():
    for _ in range(50):
        port = random.randint(20000, 60000)
        ok = True
        for ip in (SVC_IP, STUB1, STUB2):
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET, kind)
                try:
                    s.bind((ip, port))
                except OSError:
                    ok = False
                finally:
                    s.close()
        if ok:
            return port
    raise RuntimeError("no free port")


@pytest.fixture
def env(tmp_path):
    port = _free_port()
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"# test\nnameserver {STUB1}\n")
    stub1 = StubUpstream(STUB1, port, "192.0.2.10")
    stub2 = StubUpstream(STUB2, port, "192.0.2.20")
    lt = LoopThread()
    svc = lt.call(lambda: DnsService(lt.loop, str(resolv), upstream_port=port, timeout=0.3,
                                     resolv_check_interval=0.0))
    lt.call(lambda: svc.listen(SVC_IP, port))
    lt.call(lambda: svc.set_names(SVC_IP, {"web": "10.88.0.5", "tcr-web": "10.88.0.5",
                                           "0123456789ab": "10.88.0.5"}))

    class Env:
        pass

    e = Env()
    e.port, e.resolv, e.stub1, e.stub2, e.lt, e.svc = port, resolv, stub1, stub2, lt, svc
    yield e
    lt.call(svc.close)
    lt.close()
    stub1.close()
    stub2.close()


def udp_query(port, packet, ip=SVC_IP, timeout=5.0):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((ip, port))
        s.send(packet)
        return s.recv(65535)


def tcp_query(port, packet, ip=SVC_IP):
    with socket.create_connection((ip, port), timeout=5) as s:
        s.sendall(struct.pack("!H", len(packet)) + packet)
        size = struct.unpack("!H", _recv_exact(s, 2))[0]
        return _recv_exact(s, size)


def q(name, qtype="A", qid=None):
    r = DNSRecord.question(name, qtype)
    r.header.id = qid if qid is not None else random.randint(0, 0xFFFF)
    return r


def test_local_names_answer(env):
    for name in ("web", "WeB", "tcr-web", "0123456789ab", "web."):
        query = q(name, qid=0x1234)
        r = DNSRecord.parse(udp_query(env.port, query.pack()))
        assert r.header.id == 0x1234
        assert r.header.rcode == RCODE.NOERROR and r.header.aa == 1 and r.header.qr == 1
        assert [str(a.rdata) for a in r.rr] == ["10.88.0.5"]
        assert r.rr[0].ttl == 5
        assert str(r.q.qname) == str(query.q.qname)  # question copied verbatim (case kept)


def test_local_aaaa_is_empty_noerror(env):
    r = DNSRecord.parse(udp_query(env.port, q("web", "AAAA").pack()))
    assert r.header.rcode == RCODE.NOERROR and r.rr == []


def test_local_with_edns_gets_opt(env):
    query = q("web")
    query.add_ar(EDNS0(udp_len=4096))
    r = DNSRecord.parse(udp_query(env.port, query.pack()))
    assert [str(a.rdata) for a in r.rr] == ["10.88.0.5"]
    assert [rr.rtype for rr in r.ar] == [QTYPE.OPT]


def test_forwarded_name_keeps_client_id(env):
    for qid in (0, 7, 0xFFFF):
        r = DNSRecord.parse(udp_query(env.port, q("example.test", qid=qid).pack()))
        assert r.header.id == qid
        assert [str(a.rdata) for a in r.rr] == ["192.0.2.10"]
    m = env.lt.call(env.svc.metrics)
    assert m["forwarded"] == 3 and m["answered"] == 3 and m["pending"] == 0


def test_upstream_down_gives_servfail(env):
    env.resolv.write_text(f"nameserver {DEAD}\n")
    r = DNSRecord.parse(udp_query(env.port, q("example.test", qid=99).pack()))
    assert r.header.id == 99 and r.header.rcode == RCODE.SERVFAIL and r.rr == []
    m = env.lt.call(env.svc.metrics)
    assert m["timeouts"] == 1 and m["pending"] == 0


def test_next_upstream_after_timeout(env):
    env.resolv.write_text(f"nameserver {DEAD}\nnameserver {STUB2}\n")
    r = DNSRecord.parse(udp_query(env.port, q("example.test").pack()))
    assert [str(a.rdata) for a in r.rr] == ["192.0.2.20"]


def test_resolv_conf_change_is_picked_up(env):
    r = DNSRecord.parse(udp_query(env.port, q("a.test").pack()))
    assert str(r.rr[0].rdata) == "192.0.2.10"
    tmp = str(env.resolv) + ".new"
    with open(tmp, "w") as f:
        f.write(f"nameserver {STUB2}\n")
    os.rename(tmp, env.resolv)  # the usual atomic replacement
    r = DNSRecord.parse(udp_query(env.port, q("b.test").pack()))
    assert str(r.rr[0].rdata) == "192.0.2.20"


def test_own_address_is_never_an_upstream(env):
    env.resolv.write_text(f"nameserver {SVC_IP}\nnameserver {STUB2}\n")
    r = DNSRecord.parse(udp_query(env.port, q("loop.test").pack()))
    assert str(r.rr[0].rdata) == "192.0.2.20"
    assert env.lt.call(env.svc.metrics)["upstreams"] == [STUB2]


def test_tcp_local_and_forwarded(env):
    r = DNSRecord.parse(tcp_query(env.port, q("web", qid=5).pack()))
    assert r.header.id == 5 and str(r.rr[0].rdata) == "10.88.0.5"
    r = DNSRecord.parse(tcp_query(env.port, q("example.test", qid=6).pack()))
    assert r.header.id == 6 and str(r.rr[0].rdata) == "192.0.2.10"
    assert ("example.test.", "tcp") in env.stub1.queries


def test_truncated_answer_passes_through_then_tcp(env):
    r = DNSRecord.parse(udp_query(env.port, q("big.test").pack()))
    assert r.header.tc == 1
    r = DNSRecord.parse(tcp_query(env.port, q("big.test").pack()))
    assert r.header.tc == 0 and str(r.rr[0].rdata) == "192.0.2.10"


def test_tcp_upstream_down_gives_servfail(env):
    env.resolv.write_text(f"nameserver {DEAD}\n")
    r = DNSRecord.parse(tcp_query(env.port, q("example.test", qid=8).pack()))
    assert r.header.id == 8 and r.header.rcode == RCODE.SERVFAIL


def test_garbage_is_dropped_and_service_survives(env):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for junk in (b"", b"\x00", os.urandom(11), os.urandom(300), q("web").pack()[:20]):
            s.sendto(junk, (SVC_IP, env.port))
        response = q("web").reply().pack()  # a response sent to us
        s.sendto(response, (SVC_IP, env.port))
    r = DNSRecord.parse(udp_query(env.port, q("web").pack()))
    assert str(r.rr[0].rdata) == "10.88.0.5"
    m = env.lt.call(env.svc.metrics)
    assert m["dropped"] >= 5


def test_listens_only_on_the_gateway_address(env):
    with pytest.raises(ConnectionRefusedError):
        udp_query(env.port, q("web").pack(), ip="127.0.0.1")
    with pytest.raises(ConnectionRefusedError):
        tcp_query(env.port, q("web").pack(), ip="127.0.0.1")


def test_unlisten_and_names_update(env):
    env.lt.call(lambda: env.svc.set_names(SVC_IP, {"db": "10.88.0.9"}))
    r = DNSRecord.parse(udp_query(env.port, q("db").pack()))
    assert str(r.rr[0].rdata) == "10.88.0.9"
    r = DNSRecord.parse(udp_query(env.port, q("web").pack()))  # no longer local: forwarded
    assert str(r.rr[0].rdata) == "192.0.2.10"
    env.lt.call(lambda: env.svc.unlisten(SVC_IP))
    with pytest.raises(ConnectionRefusedError):
        udp_query(env.port, q("db").pack())


def test_tcp_idle_connection_is_closed(env):
    svc = env.svc
    env.lt.call(lambda: setattr(svc, "tcp_idle", 0.2))
    with socket.create_connection((SVC_IP, env.port), timeout=5) as s:
        assert s.recv(10) == b""  # the server closes it
    deadline = time.monotonic() + 5
    while env.lt.call(svc.metrics)["tcp_connections"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert env.lt.call(svc.metrics)["tcp_connections"] == 0
