"""The forwarder's logic, without sockets: packets in, actions out.

`Forwarder.handle_query(data, client, zone, tcp)` returns one of
  None      drop the packet (malformed, a response sent to us, ...),
  bytes     send this reply to the client,
  Pending   send `pending.query` to `pending.upstream` (over TCP if `pending.tcp`) and arm a timer
            of `forwarder.timeout` seconds that calls `handle_timeout(pending)`.
`handle_upstream_reply(data, source)` matches an upstream answer by (transaction id, source
address, port) and returns (pending, reply-with-the-client's-id) or None (unknown: dropped).
`handle_timeout(pending)` returns the same Pending re-aimed at the next upstream with a fresh id,
or a SERVFAIL reply for the client once every upstream has been tried.

The pending table is bounded: when full, new forwarded queries get SERVFAIL (query-sized).
Transaction ids for upstream queries are random 16-bit values from os.urandom.
"""

from __future__ import annotations

import os
import struct

from tcr.network import ipaddr
from tcr.network.dns import packet

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple, Union

DEFAULT_TTL = 5
DEFAULT_TIMEOUT = 2.0
DEFAULT_MAX_PENDING = 1024
REPLY_CACHE_MAX = 1024
EDNS_UDP_SIZE = 1232  # what we advertise in our own EDNS answers (the DNS flag day 2020 value)

_A_TYPES = (packet.TYPE_A, packet.TYPE_ANY)
_LOCAL_CLASSES = (b"\x00\x01", b"\x00\xff")  # IN, ANY


def names_for_container(name: str, container_id: str, ip: str) -> Dict[str, str]:
    """The local names of one container: <name>, tcr-<name> and <id>, lowercased."""
    out = {}
    for n in (name, f"tcr-{name}", container_id):
        if n:
            out[n.lower()] = ip
    return out


class Zone:
    """The local names of one network (one gateway): wire name -> packed IPv4, and a reply cache.

    The cache maps a whole query minus its id (data[2:]) to the whole reply minus its id: for a
    plain query (one question, no other records) the reply depends on nothing else, so a repeated
    query costs one dict lookup. It holds only answers we built, is cleared when the names change,
    and is cleared when full (bounded, no eviction bookkeeping on the hot path).

    `peers`: for a client that is also on other networks (`network connect`), those networks'
    names by the client's address on this one — what docker's DNS answers a container for every
    network it is on. Looked up only after a miss in `table`, and never cached (the shared cache
    would hand them to every client).
    """

    __slots__ = ("table", "cache", "ttl", "peers")

    def __init__(self, names: Optional[Dict[str, str]] = None, ttl: int = DEFAULT_TTL):
        self.table: Dict[bytes, bytes] = {}
        self.cache: Dict[bytes, bytes] = {}
        self.peers: Dict[str, Dict[bytes, bytes]] = {}
        self.ttl = ttl
        if names:
            self.set_names(names)

    def set_names(self, names: Dict[str, str]) -> None:
        table = {}
        for name, ip in names.items():
            try:
                key = packet.encode_name(name)
            except (ValueError, UnicodeError):
                raise ValueError(f"invalid DNS name {name!r}")
            table[key] = ipaddr.IPv4Address(ip).packed
        self.table = table
        self.cache = {}

    def set_peers(self, peers: Dict[str, Dict[str, str]]) -> None:
        """client IPv4 -> {name: IPv4} of its other networks. Bad input raises ValueError."""
        out: Dict[str, Dict[bytes, bytes]] = {}
        for client, names in peers.items():
            ipaddr.IPv4Address(client)
            out[client] = Zone(names).table
        self.peers = out


def _client_ip(client: Any) -> str:
    """The asking container's address: a UDP (ip, port) tuple, or a TCP connection's `addr`."""
    if client.__class__ is tuple:
        return str(client[0])
    addr = getattr(client, "addr", None)
    return str(addr[0]) if addr else ""


class Pending:
    """One forwarded query waiting for an upstream answer. `timer` and `io` belong to the socket layer."""

    __slots__ = ("client", "client_id", "original", "name_end", "question", "query", "upstreams",
                 "index", "upstream", "txid", "tcp", "origin", "timer", "io", "done")

    def __init__(self, client: Any, original: bytes, name_end: int, upstreams: List[Upstream], tcp: bool):
        self.client = client
        self.client_id = original[:2]
        self.original = original
        self.name_end = name_end
        self.question = original[packet.HEADER_LEN:name_end + 4].lower()
        self.query = original
        self.upstreams = upstreams
        self.index = 0
        self.upstream: Upstream = upstreams[0]
        self.txid = 0
        self.tcp = tcp
        self.origin: Any = None
        self.timer: Any = None
        self.io: Any = None
        self.done = False


if TYPE_CHECKING:
    from tcr.network.dns.upstreams import Upstream

    Action = Union[None, bytes, Pending]


class Forwarder:
    def __init__(self, upstreams: Callable[[], List[Upstream]], *, timeout: float = DEFAULT_TIMEOUT,
                 max_pending: int = DEFAULT_MAX_PENDING, random_bytes: Callable[[int], bytes] = os.urandom):
        self._upstreams = upstreams
        self.timeout = timeout
        self.max_pending = max_pending
        self._random_bytes = random_bytes
        self._ids: List[int] = []
        self.pending: Dict[Tuple[int, str, int], Pending] = {}
        # Counters (see metrics()); plain attributes because they are bumped on the hot path.
        self.queries = 0
        self.local = 0
        self.forwarded = 0
        self.answered = 0
        self.timeouts = 0
        self.servfail = 0
        self.dropped = 0
        self.overflow = 0
        self.bogus_replies = 0
        self.tcp_queries = 0
        self.notimp = 0

    # -- client side ---------------------------------------------------------------------------

    def handle_query(self, data: bytes, client: Any, zone: Zone, tcp: bool = False) -> Action:
        self.queries += 1
        if tcp:
            self.tcp_queries += 1
        tail = zone.cache.get(data[2:])
        if tail is not None:
            self.local += 1
            return data[:2] + tail
        end = packet.question_end(data)
        if end < 0:
            self.dropped += 1
            return None
        if (data[2] >> 3) & 0x0F != packet.OPCODE_QUERY:
            self.notimp += 1
            return packet.empty_reply(data, end, packet.NOTIMP, aa=False)
        key = data[packet.HEADER_LEN:end].lower()
        ip4 = zone.table.get(key)
        if ip4 is not None and data[end + 2:end + 4] in _LOCAL_CLASSES:
            self.local += 1
            return self._local_answer(data, end, ip4, zone)
        if zone.peers and ip4 is None:
            own = zone.peers.get(_client_ip(client))
            ip4 = own.get(key) if own is not None else None
            if ip4 is not None and data[end + 2:end + 4] in _LOCAL_CLASSES:
                self.local += 1
                return self._local_answer(data, end, ip4, zone, cache=False)
        return self._forward(data, end, client, tcp)

    def _local_answer(self, data: bytes, end: int, ip4: bytes, zone: Zone,
                      cache: bool = True) -> Optional[bytes]:
        qtype = (data[end] << 8) | data[end + 1]
        if packet.has_extra_sections(data):
            return self._local_answer_slow(data, end, ip4, qtype, zone.ttl)
        if qtype in _A_TYPES:
            reply = packet.a_reply(data, end, ip4, zone.ttl)
        else:
            reply = packet.empty_reply(data, end)  # the name exists, just not with this type
        if cache and end + 4 == len(data):
            replies = zone.cache
            if len(replies) >= REPLY_CACHE_MAX:
                replies.clear()
            replies[data[2:]] = reply[2:]
        return reply

    def _local_answer_slow(self, data: bytes, end: int, ip4: bytes, qtype: int, ttl: int) -> Optional[bytes]:
        """A local name in a query with more records (EDNS OPT, ...): dnslib checks it, we answer.

        The answer is still built by hand (exact question bytes); with an EDNS query it carries
        one OPT record of our own (RFC 6891 6.1.1); an EDNS version other than 0 gets BADVERS.
        """
        from tcr.common.siteimport import import_module

        import_module("dnslib")  # lazy: rare path (also beside an installed tcrd run without site)
        from dnslib import QTYPE, DNSError, DNSRecord

        try:
            query = DNSRecord.parse(data)
        except (DNSError, ValueError, IndexError, KeyError, TypeError, UnicodeError, struct.error):
            return packet.empty_reply(data, end, packet.FORMERR, aa=False)
        opts = [rr for rr in query.ar if rr.rtype == QTYPE.OPT]
        if len(opts) > 1:
            return packet.empty_reply(data, end, packet.FORMERR, aa=False)
        answer = packet.a_reply(data, end, ip4, ttl) if qtype in _A_TYPES else packet.empty_reply(data, end)
        if not opts:
            return answer
        if (opts[0].ttl >> 16) & 0xFF != 0:
            # BADVERS = extended rcode 16: header + question + OPT(ext_rcode=1), no answer.
            bad = packet.empty_reply(data, end, packet.NOERROR, aa=False)
            return bad[:10] + b"\x00\x01" + bad[12:] + packet.opt_record(EDNS_UDP_SIZE, ext_rcode=1)
        return answer[:10] + b"\x00\x01" + answer[12:] + packet.opt_record(EDNS_UDP_SIZE)

    def _forward(self, data: bytes, end: int, client: Any, tcp: bool) -> Action:
        ups = self._upstreams()
        if not ups or len(self.pending) >= self.max_pending:
            if ups:
                self.overflow += 1
            self.servfail += 1
            return packet.empty_reply(data, end, packet.SERVFAIL, aa=False)
        p = Pending(client, data, end, ups, tcp)
        self._aim(p)
        self.forwarded += 1
        return p

    def _fresh_id(self) -> int:
        if not self._ids:
            # not the array module: it imports collections (docs/profile.md)
            self._ids = list(struct.unpack("=256H", self._random_bytes(512)))
        return self._ids.pop()

    def _aim(self, p: Pending) -> None:
        """Give p a fresh id that is free for its current upstream and register it."""
        host, port = p.upstream
        pending = self.pending
        txid = self._fresh_id()
        while (txid, host, port) in pending:
            txid = self._fresh_id()
        p.txid = txid
        p.query = bytes((txid >> 8, txid & 0xFF)) + p.original[2:]
        pending[(txid, host, port)] = p

    def _unregister(self, p: Pending) -> None:
        host, port = p.upstream
        if self.pending.get((p.txid, host, port)) is p:
            del self.pending[(p.txid, host, port)]

    # -- upstream side -------------------------------------------------------------------------

    def handle_upstream_reply(self, data: bytes, source: Tuple[Any, ...],
                              via: Any = None) -> Optional[Tuple[Pending, bytes]]:
        """Match an upstream answer; `via` (if given) must be the p.io it was sent through."""
        if len(data) < packet.HEADER_LEN or not data[2] & 0x80:
            self.bogus_replies += 1
            return None
        key = ((data[0] << 8) | data[1], source[0], source[1])
        p = self.pending.get(key)
        if p is None or (via is not None and p.io is not via):
            self.bogus_replies += 1
            return None
        # The answer must carry our question (an upstream echoes it; a blind spoofer must guess it).
        qend = packet.HEADER_LEN + len(p.question)
        if data[4:6] == b"\x00\x01" and data[packet.HEADER_LEN:qend].lower() != p.question:
            self.bogus_replies += 1
            return None
        del self.pending[key]
        p.done = True
        self.answered += 1
        return p, p.client_id + data[2:]

    def handle_timeout(self, p: Pending) -> Action:
        """The current upstream did not answer (or failed): try the next one, or give up."""
        if p.done:
            return None
        self._unregister(p)
        p.index += 1
        if p.index < len(p.upstreams):
            p.upstream = p.upstreams[p.index]
            self._aim(p)
            return p
        p.done = True
        self.timeouts += 1
        self.servfail += 1
        return packet.empty_reply(p.original, p.name_end, packet.SERVFAIL, aa=False)

    def cancel(self, p: Pending) -> None:
        """Forget p (its client went away)."""
        if not p.done:
            p.done = True
            self._unregister(p)

    def metrics(self) -> Dict[str, int]:
        return {
            "queries": self.queries, "local": self.local, "forwarded": self.forwarded,
            "answered": self.answered, "timeouts": self.timeouts, "servfail": self.servfail,
            "dropped": self.dropped, "overflow": self.overflow, "bogus_replies": self.bogus_replies,
            "tcp_queries": self.tcp_queries, "notimp": self.notimp, "pending": len(self.pending),
        }
