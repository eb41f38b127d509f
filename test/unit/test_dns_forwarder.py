"""The forwarder's pure logic: packet helpers, local answers, forwarding, timeouts, limits, resolv.conf."""

import os

import pytest
from dnslib import EDNS0, QTYPE, RCODE, RR, A, DNSRecord

from tcr.network.dns import packet
from tcr.network.dns.forwarder import REPLY_CACHE_MAX, Forwarder, Pending, Zone, names_for_container
from tcr.network.dns.upstreams import Upstreams, parse_resolv_conf

UP1 = ("192.0.2.1", 53)
UP2 = ("192.0.2.2", 53)
CLIENT = ("10.88.0.7", 40000)


class Q(DNSRecord):
    def pack(self):
        return bytes(super().pack())  # sockets give bytes; dnslib gives bytearray


def q(name, qtype="A", qid=0x4242):
    r = DNSRecord.question(name, qtype)
    r.header.id = qid
    r.__class__ = Q
    return r


def mk(ups=(UP1, UP2), **kw):
    return Forwarder(lambda: list(ups), **kw), Zone({"web": "10.88.0.5", "tcr-web": "10.88.0.5"})


def answer_for(p, ip="198.51.100.1"):
    r = DNSRecord.parse(p.query)
    reply = r.reply()
    reply.add_answer(RR(r.q.qname, QTYPE.A, rdata=A(ip), ttl=30))
    return bytes(reply.pack())


# -- packet ------------------------------------------------------------------------------------

def test_encode_decode_name():
    assert packet.encode_name("Web.Example.") == b"\x03web\x07example\x00"
    assert packet.decode_name(b"\x03web\x07example\x00") == "web.example."
    assert packet.decode_name(b"\x00") == "."
    for bad in ("", "a..b", "x" * 64, ".".join(["abcdefgh"] * 40)):
        with pytest.raises(ValueError):
            packet.encode_name(bad)


def test_question_end_bounds():
    data = q("web").pack()
    assert packet.question_end(data) == len(data) - 4
    assert all(packet.question_end(data[:n]) == -1 for n in range(len(data)))
    longest = q(".".join(["a" * 63] * 3) + "." + "b" * 61).pack()  # 255-byte wire name
    assert packet.question_end(longest) == 12 + 255
    too_long = longest[:12] + b"\x3f" + b"a" * 63 + longest[12:]
    assert packet.question_end(too_long) == -1


def test_names_for_container():
    assert names_for_container("Web", "0123abcd", "10.88.0.5") == {
        "web": "10.88.0.5", "tcr-web": "10.88.0.5", "0123abcd": "10.88.0.5"}


def test_zone_rejects_bad_input():
    z = Zone({"web": "10.88.0.5"})
    with pytest.raises(ValueError):
        z.set_names({"ok": "10.0.0.1", "bad..name": "10.0.0.2"})
    with pytest.raises(ValueError):
        z.set_names({"ok": "not-an-ip"})
    assert z.table == {b"\x03web\x00": bytes([10, 88, 0, 5])}  # unchanged


# -- local answers -----------------------------------------------------------------------------

def test_local_a_and_cache():
    fwd, zone = mk()
    data = q("WEB").pack()
    first = fwd.handle_query(data, CLIENT, zone)
    r = DNSRecord.parse(first)
    assert r.header.id == 0x4242 and [str(a.rdata) for a in r.rr] == ["10.88.0.5"]
    assert str(r.q.qname) == "WEB."  # verbatim question
    again = fwd.handle_query(b"\x00\x07" + data[2:], CLIENT, zone)
    assert again == b"\x00\x07" + first[2:]
    assert len(zone.cache) == 1 and fwd.local == 2
    zone.set_names({"db": "10.88.0.9"})
    assert zone.cache == {}
    assert isinstance(fwd.handle_query(data, CLIENT, zone), Pending)


def test_cache_is_bounded():
    fwd, zone = mk()
    base = q("web").pack()
    for i in range(REPLY_CACHE_MAX + 10):
        # Different flag bits (CD/AD/RD) and case variants make distinct cache keys.
        name = "".join(c.upper() if (i >> k) & 1 else c for k, c in enumerate("tcr-web"))
        data = q(name, qid=i & 0xFFFF).pack()
        assert isinstance(fwd.handle_query(data, CLIENT, zone), bytes)
        assert len(zone.cache) <= REPLY_CACHE_MAX
    assert isinstance(fwd.handle_query(base, CLIENT, zone), bytes)


def test_local_other_types_are_empty_noerror():
    fwd, zone = mk()
    for t in ("AAAA", "MX", "TXT"):
        data = q("web", t).pack()
        r = DNSRecord.parse(fwd.handle_query(data, CLIENT, zone))
        assert r.header.rcode == RCODE.NOERROR and r.rr == [] and r.header.aa == 1
        assert len(r.pack()) <= len(data)


def test_local_edns_badvers_and_formerr():
    fwd, zone = mk()
    query = q("web")
    query.add_ar(EDNS0(udp_len=4096, version=1))
    r = DNSRecord.parse(fwd.handle_query(query.pack(), CLIENT, zone))
    assert r.rr == [] and r.ar[0].rtype == QTYPE.OPT and (r.ar[0].ttl >> 24) == 1  # BADVERS
    junk = bytearray(q("web").pack())
    junk[11] = 1  # ARCOUNT=1 but nothing follows
    out = fwd.handle_query(bytes(junk), CLIENT, zone)
    assert DNSRecord.parse(out).header.rcode == RCODE.FORMERR and len(out) <= len(junk)


def test_notimp_for_other_opcodes():
    fwd, zone = mk()
    data = bytearray(q("web").pack())
    data[2] = (data[2] & 0x87) | (4 << 3)  # NOTIFY
    out = fwd.handle_query(bytes(data), CLIENT, zone)
    assert out[3] & 0x0F == packet.NOTIMP and len(out) <= len(data)


def test_garbage_dropped():
    fwd, zone = mk()
    for junk in (b"", b"\x01", os.urandom(11), bytes(q("web").reply().pack())):
        assert fwd.handle_query(junk, CLIENT, zone) is None
    assert fwd.dropped == 4


# -- forwarding --------------------------------------------------------------------------------

def test_forward_fresh_id_and_reply_restores_client_id():
    ids = iter([b"\x11\x11" * 256])
    fwd, zone = mk(random_bytes=lambda n: next(ids))
    data = q("example.test", qid=0xBEEF).pack()
    p = fwd.handle_query(data, CLIENT, zone)
    assert isinstance(p, Pending) and p.upstream == UP1 and p.txid == 0x1111
    assert p.query[:2] == b"\x11\x11" and p.query[2:] == data[2:]
    ans = answer_for(p)
    assert fwd.handle_upstream_reply(ans, ("192.0.2.99", 53)) is None  # wrong source
    assert fwd.handle_upstream_reply(ans, (UP1[0], 5353)) is None  # wrong port
    assert fwd.handle_upstream_reply(b"\x00\x01" + ans[2:], UP1) is None  # wrong id
    got = fwd.handle_upstream_reply(ans, UP1)
    assert got is not None and got[0] is p and got[1][:2] == b"\xbe\xef" and got[1][2:] == ans[2:]
    assert fwd.handle_upstream_reply(ans, UP1) is None  # only once
    assert fwd.pending == {} and fwd.bogus_replies == 4 and fwd.answered == 1


def test_spoofed_answer_with_other_question_is_dropped():
    fwd, zone = mk()
    p = fwd.handle_query(q("example.test").pack(), CLIENT, zone)
    other = DNSRecord.question("evil.test").reply()
    other.header.id = p.txid
    assert fwd.handle_upstream_reply(other.pack(), UP1) is None
    assert p.txid in [k[0] for k in fwd.pending]


def test_timeout_moves_to_next_upstream_then_servfail():
    fwd, zone = mk()
    data = q("example.test", qid=77).pack()
    p = fwd.handle_query(data, CLIENT, zone)
    old = p.txid
    assert fwd.handle_timeout(p) is p and p.upstream == UP2
    assert (old, *UP1) not in fwd.pending and (p.txid, *UP2) in fwd.pending
    out = fwd.handle_timeout(p)
    assert isinstance(out, bytes)
    r = DNSRecord.parse(out)
    assert r.header.id == 77 and r.header.rcode == RCODE.SERVFAIL and len(out) <= len(data)
    assert fwd.pending == {} and fwd.timeouts == 1
    assert fwd.handle_timeout(p) is None  # late timer: nothing


def test_no_upstreams_servfail():
    fwd, zone = mk(ups=())
    out = fwd.handle_query(q("example.test").pack(), CLIENT, zone)
    assert DNSRecord.parse(out).header.rcode == RCODE.SERVFAIL


def test_pending_table_is_bounded():
    fwd, zone = mk(max_pending=8)
    outs = [fwd.handle_query(q(f"n{i}.test").pack(), CLIENT, zone) for i in range(20)]
    assert sum(isinstance(o, Pending) for o in outs) == 8
    assert all(DNSRecord.parse(o).header.rcode == RCODE.SERVFAIL for o in outs if isinstance(o, bytes))
    assert len(fwd.pending) == 8 and fwd.overflow == 12
    fwd.cancel(outs[0])
    assert len(fwd.pending) == 7


def test_ids_do_not_collide_per_upstream():
    same = iter([b"\x05\x05" * 256, os.urandom(512)])
    fwd, zone = mk(random_bytes=lambda n: next(same))
    a = fwd.handle_query(q("a.test").pack(), CLIENT, zone)
    b = fwd.handle_query(q("b.test").pack(), CLIENT, zone)
    assert a.txid == 0x0505 and b.txid != 0x0505


def test_tc_answers_pass_through():
    fwd, zone = mk()
    p = fwd.handle_query(q("big.test").pack(), CLIENT, zone)
    r = DNSRecord.parse(p.query).reply()
    r.header.tc = 1
    _p, out = fwd.handle_upstream_reply(r.pack(), UP1)
    assert DNSRecord.parse(out).header.tc == 1


# -- resolv.conf -------------------------------------------------------------------------------

def test_parse_resolv_conf():
    text = """# comment
nameserver 192.0.2.1
nameserver 192.0.2.1   # dup
nameserver   fe80::1%eth0
nameserver 0.0.0.0
nameserver bogus
search example.com
;nameserver 192.0.2.9
nameserver 2001:DB8::53
options ndots:2
"""
    assert parse_resolv_conf(text) == ["192.0.2.1", "fe80::1%eth0", "2001:db8::53"]


def test_upstreams_reload_on_change_and_rate_limit(tmp_path):
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 192.0.2.1\n")
    now = [100.0]
    ups = Upstreams(str(path), clock=lambda: now[0])
    assert ups.get() == [("192.0.2.1", 53)]
    path.write_text("nameserver 192.0.2.2\nnameserver 10.88.0.1\n")
    assert ups.get() == [("192.0.2.1", 53)]  # checked less than a second ago
    now[0] += 1.0
    assert ups.get() == [("192.0.2.2", 53), ("10.88.0.1", 53)]
    ups.exclude(["10.88.0.1"])  # our own gateway: never an upstream
    assert ups.get() == [("192.0.2.2", 53)]
    reloads = ups.reloads
    now[0] += 5
    ups.get()
    assert ups.reloads == reloads  # unchanged file: not re-read
    path.unlink()
    now[0] += 5
    assert ups.get() == []


def test_a_multi_network_client_gets_its_other_networks_names_only():
    """network connect: a container on two networks asks its primary forwarder; the names of its
    other network answer for it alone, and never enter the shared reply cache."""
    fwd, zone = mk()
    zone.set_peers({CLIENT[0]: {"db": "10.89.0.3", "web": "10.89.0.9"}})
    r = DNSRecord.parse(fwd.handle_query(q("DB").pack(), CLIENT, zone))
    assert [str(a.rdata) for a in r.rr] == ["10.89.0.3"] and zone.cache == {}
    # this network's own names win over the other network's
    r = DNSRecord.parse(fwd.handle_query(q("web").pack(), CLIENT, zone))
    assert [str(a.rdata) for a in r.rr] == ["10.88.0.5"]
    # another client of this network does not see them: forwarded upstream
    assert isinstance(fwd.handle_query(q("db").pack(), ("10.88.0.8", 4000), zone), Pending)

    class Tcp:
        addr = CLIENT

    assert isinstance(fwd.handle_query(q("db").pack(), Tcp(), zone, tcp=True), bytes)
    with pytest.raises(ValueError):
        zone.set_peers({"not-an-ip": {"x": "10.0.0.1"}})
    with pytest.raises(ValueError):
        zone.set_peers({"10.0.0.2": {"bad..name": "10.0.0.1"}})
