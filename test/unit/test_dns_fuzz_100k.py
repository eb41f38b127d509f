"""DNS forwarder under 100k+ fuzzed packets: a seeded random mutator, no sockets.

What it shows, for the parser and the forwarder logic (tcr.network.dns.packet / forwarder):
- nothing raises on any input (random bytes, bit flips, truncations, splices, header games);
- responses sent to us (QR=1) are never answered (no reflection loop between two forwarders);
- a reply built by the forwarder without an answer record is never larger than the query
  (no amplification for anyone); a local A answer adds exactly one 16-byte record;
- a forwarded query is sent upstream unchanged except its id (same size: no amplification
  upstream either), the pending table stays bounded, and every pending query ends in exactly one
  reply no larger than the query (SERVFAIL) once the upstreams time out;
- random upstream replies from random sources never match a pending query (match = id, source
  address and port, and the echoed question);
- forwarding-loop guard: our own gateway addresses, however resolv.conf spells them, are never
  chosen as upstreams.
The seed is fixed (override with TCR_FUZZ_SEED) so a failure is reproducible.
"""

import ipaddress
import os
import random

from dnslib import EDNS0, DNSRecord

from tcr.network.dns import packet
from tcr.network.dns.forwarder import Forwarder, Pending, Zone
from tcr.network.dns.upstreams import Upstreams

SEED = int(os.environ.get("TCR_FUZZ_SEED", "20261123"))
N_PACKETS = 100_000
ZONE_NAMES = {"web": "10.88.0.5", "tcr-web": "10.88.0.5", "0123456789abcdef": "10.88.0.5",
              "db": "10.88.0.6"}
UPS = [("192.0.2.1", 53), ("192.0.2.2", 53), ("2001:db8::1", 53)]
SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples", "dns")


def _seeds():
    out = []
    for name in ("web", "WEB", "tcr-web", "db", "0123456789abcdef", "example.test", "a.b.c.d.example.org"):
        for qtype in ("A", "AAAA", "ANY", "MX", "TXT", "PTR"):
            q = DNSRecord.question(name, qtype)
            out.append(bytes(q.pack()))
            q.add_ar(EDNS0(udp_len=4096))
            out.append(bytes(q.pack()))
    for f in sorted(os.listdir(SAMPLES)):
        if f.endswith(".bin"):
            with open(os.path.join(SAMPLES, f), "rb") as fh:
                out.append(fh.read())
    return out


SEEDS = _seeds()


def mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(0, 5)):
        op = rng.randrange(9)
        if op == 0 and data:  # flip a bit
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1 and data:  # random byte
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 2:  # truncate
            data = data[:rng.randint(0, len(data))]
        elif op == 3:  # append junk
            data += rng.randbytes(rng.randint(1, 64)) if hasattr(rng, "randbytes") else \
                bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        elif op == 4:  # insert a few bytes
            i = rng.randint(0, len(data))
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 5 and len(data) >= 12:  # header games: counts, flags, opcode
            field = rng.choice((2, 3, 4, 6, 8, 10))
            data[field:field + 2] = rng.choice((b"\x00\x00", b"\x00\x01", b"\x00\x02", b"\xff\xff",
                                                bytes((rng.randrange(256), rng.randrange(256)))))
        elif op == 6 and len(data) > 13:  # a compression pointer or an oversized label in the name
            data[rng.randrange(12, len(data))] = rng.choice((0xC0, 0xC0 | rng.randrange(64), 64, 63, 0))
        elif op == 7 and data:  # delete a slice
            i = rng.randrange(len(data))
            del data[i:i + rng.randint(1, 8)]
        elif op == 8:  # splice with another seed
            other = rng.choice(SEEDS)
            cut = rng.randint(0, len(data))
            data = data[:cut] + other[rng.randint(0, len(other)):]
    return bytes(data)


def _packets(rng: random.Random, n: int):
    for _ in range(n):
        r = rng.random()
        if r < 0.05:
            yield bytes(rng.randrange(256) for _ in range(rng.randint(0, 80)))  # pure noise
        elif r < 0.15:
            yield rng.choice(SEEDS)  # valid (exercises the reply cache and the forward path)
        else:
            yield mutate(rng, rng.choice(SEEDS))


def _check_reply(query: bytes, reply: bytes) -> None:
    assert reply[:2] == query[:2], "reply must carry the client's id"
    assert reply[2] & 0x80, "reply must be a response"
    ancount = (reply[6] << 8) | reply[7]
    if ancount == 0:
        assert len(reply) <= len(query), (query.hex(), reply.hex())
    else:
        assert ancount == 1
        # One A record (2 pointer + 10 fixed + 4 address) over header+question, plus our OPT at most.
        assert len(reply) <= len(query) + 16 + 11, (query.hex(), reply.hex())
        assert len(reply) <= 512


def test_100k_fuzzed_queries_no_crash_no_amplification_bounded_pending():
    rng = random.Random(SEED)
    fwd = Forwarder(lambda: UPS, max_pending=64, random_bytes=rng.randbytes if hasattr(rng, "randbytes")
                    else os.urandom)
    zone = Zone(ZONE_NAMES)
    counts = {"dropped": 0, "reply": 0, "forward": 0, "finished": 0}
    origin = {}
    for i, data in enumerate(_packets(rng, N_PACKETS)):
        act = fwd.handle_query(data, ("10.88.0.7", 1000 + i % 50000), zone)
        if len(data) >= 3 and data[2] & 0x80:
            assert act is None, "a response sent to us must never be answered (reflection loop)"
        if act is None:
            counts["dropped"] += 1
        elif isinstance(act, bytes):
            counts["reply"] += 1
            _check_reply(data, act)
        else:
            assert isinstance(act, Pending)
            counts["forward"] += 1
            assert act.upstream in UPS
            assert len(act.query) == len(data) and act.query[2:] == data[2:]
            origin[id(act)] = data
        assert len(fwd.pending) <= fwd.max_pending
        if len(fwd.pending) >= fwd.max_pending or i % 97 == 0:
            # Drain: some get a fuzzed upstream reply (never matches), then all time out.
            for p in list(fwd.pending.values()):
                for _ in range(3):
                    junk = mutate(rng, p.query)
                    src = rng.choice(UPS + [("192.0.2.99", 53), (p.upstream[0], 5353)])
                    got = fwd.handle_upstream_reply(junk, src)
                    if got is not None:  # only a true echo from the right source may match
                        q, reply = got
                        assert q is p and src == p.upstream and junk[:2] == p.query[:2]
                        assert reply[:2] == p.client_id
                        counts["finished"] += 1
                        break
                while not p.done:
                    out = fwd.handle_timeout(p)
                    if isinstance(out, bytes):
                        _check_reply(origin[id(p)], out)
                        assert out[3] & 0x0F == packet.SERVFAIL
                        counts["finished"] += 1
            assert fwd.pending == {}
    assert sum(counts[k] for k in ("dropped", "reply", "forward")) == N_PACKETS
    # The mix must really exercise every path (guards against a mutator that only makes junk).
    assert counts["dropped"] > 10_000 and counts["reply"] > 10_000 and counts["forward"] > 5_000, counts
    assert counts["finished"] >= counts["forward"] - fwd.max_pending


def test_10k_random_upstream_replies_never_match_a_stranger():
    rng = random.Random(SEED + 1)
    fwd = Forwarder(lambda: UPS, max_pending=256)
    zone = Zone(ZONE_NAMES)
    pend = []
    for s in SEEDS:
        act = fwd.handle_query(s, ("10.88.0.9", 53000), zone)
        if isinstance(act, Pending):
            pend.append(act)
    assert pend
    for _ in range(10_000):
        p = rng.choice(pend)
        r = rng.random()
        if r < 0.5:  # noise from a random address
            data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
            src = (f"198.51.100.{rng.randrange(256)}", rng.randrange(65536))
        else:  # a guessed id with the right question, from the wrong address or port
            data = bytes((rng.randrange(256), rng.randrange(256), 0x81, 0x80)) + p.query[4:]
            src = rng.choice([("198.51.100.1", 53), (p.upstream[0], 54)])
        assert fwd.handle_upstream_reply(data, src) is None
    assert len(fwd.pending) == len(pend)


# -- forwarding-loop guard ---------------------------------------------------------------------

GATEWAYS = ["10.88.0.1", "10.89.0.1", "fd00:88::1"]


def _spellings(ip: str):
    a = ipaddress.ip_address(ip)
    out = {str(a)}
    if a.version == 6:
        out.add(a.exploded)
        out.add(a.exploded.upper())
        out.add(f"{a}%br0")  # with a scope id
    return sorted(out)


def test_own_gateway_addresses_are_never_upstreams(tmp_path):
    rng = random.Random(SEED + 2)
    conf = tmp_path / "resolv.conf"
    outside = ["192.0.2.53", "2001:db8::53", "127.0.0.53"]
    for round_ in range(200):
        lines = []
        for ip in GATEWAYS:
            lines += [f"nameserver {s}" for s in _spellings(ip)]
        lines += [f"nameserver {ip}" for ip in outside]
        rng.shuffle(lines)
        lines.insert(rng.randint(0, len(lines)), "search example.test  # comment")
        conf.write_text("\n".join(lines) + "\n")
        ups = Upstreams(str(conf), clock=lambda r=round_: float(r), min_interval=0)
        ups.exclude(GATEWAYS)
        got = ups.get()
        hosts = {ipaddress.ip_address(h.split("%", 1)[0]) for h, _port in got}
        assert not hosts & {ipaddress.ip_address(g) for g in GATEWAYS}, got
        # Real upstreams survive (up to the cap on the list length).
        assert hosts <= {ipaddress.ip_address(o) for o in outside}
        assert hosts, got


def test_forwarder_with_only_own_addresses_configured_answers_servfail_not_loops(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("".join(f"nameserver {g}\n" for g in GATEWAYS))
    ups = Upstreams(str(conf), clock=lambda: 0.0, min_interval=0)
    ups.exclude(GATEWAYS)
    fwd = Forwarder(ups.get)
    q = bytes(DNSRecord.question("example.test", "A").pack())
    act = fwd.handle_query(q, ("10.88.0.7", 4000), Zone(ZONE_NAMES))
    assert isinstance(act, bytes) and act[3] & 0x0F == packet.SERVFAIL and len(act) <= len(q)
    assert fwd.pending == {}
