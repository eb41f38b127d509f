"""Recorded DNS packets (test/samples/dns, see record.py there): parse -> fields, reply -> recorded bytes."""

import json
import os

import pytest
from dnslib import QTYPE, DNSRecord

from tcr.network.dns import packet
from tcr.network.dns.forwarder import Forwarder, Pending, Zone

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples", "dns")
with open(os.path.join(HERE, "index.json")) as _f:
    INDEX = json.load(_f)
QUERIES = [e for e in INDEX if "action" in e]
NAMES = {"web": "10.88.0.5", "tcr-web": "10.88.0.5"}


def _read(name):
    with open(os.path.join(HERE, name), "rb") as f:
        return f.read()


def test_index_covers_the_required_kinds():
    files = {e["file"] for e in INDEX}
    for needed in ("q_busybox_a_local.bin", "q_busybox_aaaa_local.bin", "q_busybox_a_forward.bin",
                   "q_dnsperf_edns_a_local.bin", "bad_truncated_question.bin", "bad_short_header.bin"):
        assert needed in files
    for e in INDEX:
        assert os.path.exists(os.path.join(HERE, e["file"]))


@pytest.mark.parametrize("entry", QUERIES, ids=[e["file"] for e in QUERIES])
def test_parse_matches_recorded_fields(entry):
    data = _read(entry["file"])
    q = packet.parse_query(data)
    if entry["query"] is None:
        assert q is None
        assert packet.question_end(data) == -1
    else:
        assert q is not None and q.to_dict() == entry["query"]
        assert packet.Query.from_dict(q.to_dict()) == q
        # The fast parser agrees with dnslib on every real query.
        ref = DNSRecord.parse(data)
        assert str(ref.q.qname).lower() == q.name and ref.q.qtype == q.qtype and ref.header.id == q.id


@pytest.mark.parametrize("entry", QUERIES, ids=[e["file"] for e in QUERIES])
def test_action_and_reply_bytes(entry):
    data = _read(entry["file"])
    fwd = Forwarder(lambda: [("192.0.2.53", 53)])
    act = fwd.handle_query(data, ("127.0.0.1", 5353), Zone(NAMES))
    if entry["action"] == "drop":
        assert act is None
    elif entry["action"] == "forward":
        assert isinstance(act, Pending)
        assert act.query[2:] == data[2:] and act.upstream == ("192.0.2.53", 53)
    else:
        assert isinstance(act, bytes) and act == _read(entry["reply"])
        # A reply without an answer is never larger than the query (no amplification).
        r = DNSRecord.parse(act)
        if not r.rr:
            assert len(act) <= len(data)


def test_local_answers_are_what_they_claim():
    for e in QUERIES:
        if e["action"] != "reply" or e["query"]["opcode"] != 0:
            continue
        r = DNSRecord.parse(_read(e["reply"]))
        assert r.header.qr == 1 and r.header.aa == 1 and r.header.id == e["query"]["id"]
        if e["query"]["qtype"] == QTYPE.A:
            assert [str(a.rdata) for a in r.rr] == ["10.88.0.5"] and r.rr[0].ttl == 5
        else:
            assert r.rr == [] and r.header.rcode == 0
        if e["query"]["arcount"]:
            assert [rr.rtype for rr in r.ar] == [QTYPE.OPT]


def test_reply_equals_dnsmasq_for_the_same_query():
    ref = next(e for e in INDEX if "reference_for" in e)
    query = _read(ref["reference_for"])
    ours = Forwarder(lambda: []).handle_query(query, ("127.0.0.1", 1), Zone(NAMES))
    assert ours == _read(ref["file"])
