"""Property tests: the parser and the forwarder never raise on any input and never amplify.

Default run: 6,000 + 4,000 + 2,000 examples (> 10k), a few seconds in all.
"""

import os

from dnslib import DNSRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcr.network.dns import packet
from tcr.network.dns.forwarder import Forwarder, Pending, Zone

ZONE_NAMES = {"web": "10.88.0.5", "tcr-web": "10.88.0.5", "a": "10.88.0.6"}
UPS = [("192.0.2.1", 53), ("192.0.2.2", 53)]


def fast(n):
    return settings(max_examples=n, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                    database=None)


def _seeds():
    out = []
    for name, qtype in (("web", "A"), ("WEB", "AAAA"), ("tcr-web", "ANY"), ("example.test", "A"),
                        ("a", "MX"), ("x.y.z.example", "TXT")):
        r = DNSRecord.question(name, qtype)
        out.append(bytes(r.pack()))
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples", "dns")
    for f in sorted(os.listdir(here)):
        if f.endswith(".bin"):
            with open(os.path.join(here, f), "rb") as fh:
                out.append(fh.read())
    return out


SEEDS = _seeds()


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.integers(0, 3))
        if op == 0 and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        elif op == 1:
            data = data[:draw(st.integers(0, len(data)))]
        elif op == 2:
            data += draw(st.binary(max_size=40))
        else:
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


def _check_action(data, act, fwd):
    if act is None:
        return
    if isinstance(act, Pending):
        assert act.query[2:] == data[2:] and len(act.query) == len(data)
        assert len(fwd.pending) <= fwd.max_pending
        return
    assert isinstance(act, bytes)
    assert act[:2] == data[:2] and act[2] & 0x80  # a response with the client's id
    ancount = (act[6] << 8) | act[7]
    if ancount == 0:
        assert len(act) <= len(data) + 11  # an error/empty reply: query-sized (+ our OPT at most)
    else:
        assert ancount == 1 and len(act) <= len(data) + 16 + 11
    assert len(act) <= 512


@fast(6000)
@given(st.one_of(st.binary(max_size=600), mutated()))
def test_parser_never_raises(data):
    end = packet.question_end(data)
    assert end == -1 or 12 < end <= len(data) - 4
    q = packet.parse_query(data)
    assert (q is None) == (end < 0)
    if q is not None:
        assert 12 < end <= 12 + 255


@fast(4000)
@given(mutated())
def test_forwarder_never_raises_and_never_amplifies(data):
    fwd = Forwarder(lambda: UPS, max_pending=4)
    zone = Zone(ZONE_NAMES)
    for _ in range(2):  # the second round hits the reply cache
        act = fwd.handle_query(data, ("10.88.0.7", 1234), zone)
        _check_action(data, act, fwd)
    for p in list(fwd.pending.values()):
        while True:
            out = fwd.handle_timeout(p)
            if not isinstance(out, Pending):
                break
        assert out is None or len(out) <= len(data)
    assert fwd.pending == {}


@fast(2000)
@given(mutated(), st.binary(max_size=64))
def test_upstream_replies_never_raise(query, junk):
    fwd = Forwarder(lambda: UPS)
    p = fwd.handle_query(query, ("10.88.0.7", 1234), Zone(ZONE_NAMES))
    echo = (p.query[:2] + bytes([0x81]) + p.query[3:]) if isinstance(p, Pending) else junk
    for reply in (junk, query, echo):
        got = fwd.handle_upstream_reply(reply, UPS[0])
        if got is not None:
            assert got[0] is p and got[1][:2] == query[:2] and len(got[1]) == len(reply)
