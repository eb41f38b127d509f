"""DNS wire format, the fast part: the header and the first question, parsed and built by hand.

Only what the hot path needs lives here (no dnslib): find where the question ends with bounds
checks, read qtype/qclass, and build the few replies the forwarder makes itself (one A answer,
an empty answer, an error code). Every reply built here copies the query's question verbatim, so a
reply without an answer is never larger than the query that caused it (no amplification).

Names are handled as lowercased wire bytes (b"\\x03web\\x00"): DNS names compare
case-insensitively in ASCII, which is exactly what bytes.lower() does, and no decoding is needed.
"""

from __future__ import annotations

import struct

from tcr.common.record import dataclass

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

HEADER_LEN = 12
MAX_NAME_LEN = 255  # wire length, RFC 1035 2.3.4
MAX_LABEL_LEN = 63

# Types and classes the forwarder looks at.
TYPE_A = 1
TYPE_AAAA = 28
TYPE_OPT = 41
TYPE_ANY = 255
CLASS_IN = 1

# Response codes.
NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5

OPCODE_QUERY = 0

_QD1_AN1 = b"\x00\x01\x00\x01\x00\x00\x00\x00"  # QDCOUNT=1 ANCOUNT=1 NSCOUNT=0 ARCOUNT=0
_QD1_AN0 = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_PACK_TTL = struct.Struct("!I").pack


def question_end(data: bytes) -> int:
    """Offset just past the first question's QNAME (its root label), or -1 if not a query we take.

    A query we take: at least a header and one question, QR=0, QDCOUNT=1, labels of at most 63
    bytes (no compression pointers or extended labels in the question), a name of at most 255
    bytes, and room for QTYPE and QCLASS. The counts of the other sections are not checked here.
    """
    n = len(data)
    if n < HEADER_LEN + 5 or data[2] & 0x80 or data[4] or data[5] != 1:
        return -1
    i = HEADER_LEN
    limit = min(n - 4, HEADER_LEN + MAX_NAME_LEN) - 1  # the root label must sit at i <= limit
    while i <= limit:
        length = data[i]
        if length == 0:
            return i + 1
        if length > MAX_LABEL_LEN:
            return -1
        i += length + 1
    return -1


def qtype_at(data: bytes, name_end: int) -> int:
    return (data[name_end] << 8) | data[name_end + 1]


def qclass_at(data: bytes, name_end: int) -> int:
    return (data[name_end + 2] << 8) | data[name_end + 3]


def opcode(data: bytes) -> int:
    return (data[2] >> 3) & 0x0F


def has_extra_sections(data: bytes) -> bool:
    """True if ANCOUNT, NSCOUNT or ARCOUNT is non-zero (e.g. an EDNS OPT record)."""
    return data[6:12] != b"\x00\x00\x00\x00\x00\x00"


def _flags(data: bytes, aa: int, rcode: int) -> bytes:
    # QR=1, opcode copied, AA as given, TC=0, RD copied; RA=1, Z=0, AD=0, CD copied.
    return bytes(((0x80 | (data[2] & 0x79) | aa), (0x80 | (data[3] & 0x10) | rcode)))


def a_reply(data: bytes, name_end: int, ip4: bytes, ttl: int) -> bytes:
    """Authoritative answer with one A record; the owner name is a pointer to the question (0xC00C)."""
    return b"".join((
        data[:2], _flags(data, 0x04, NOERROR), _QD1_AN1, data[HEADER_LEN:name_end + 4],
        b"\xc0\x0c\x00\x01\x00\x01", _PACK_TTL(ttl), b"\x00\x04", ip4,
    ))


def empty_reply(data: bytes, name_end: int, rcode: int = NOERROR, aa: bool = True) -> bytes:
    """Header and question only, with rcode. Never larger than the query it answers."""
    flags = _flags(data, 0x04 if aa else 0, rcode)
    return b"".join((data[:2], flags, _QD1_AN0, data[HEADER_LEN:name_end + 4]))


def with_id(data: bytes, txid: int) -> bytes:
    return bytes(((txid >> 8) & 0xFF, txid & 0xFF)) + data[2:]


def encode_name(name: str) -> bytes:
    """'Web.example.' -> b'\\x03web\\x07example\\x00' (lowercased). ValueError if not a valid name."""
    name = name.strip().rstrip(".").lower()
    if not name:
        raise ValueError("empty name")
    out = bytearray()
    for label in name.split("."):
        raw = label.encode("ascii")
        if not raw or len(raw) > MAX_LABEL_LEN:
            raise ValueError(f"bad label in name {name!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > MAX_NAME_LEN:
        raise ValueError(f"name too long: {name!r}")
    return bytes(out)


def decode_name(wire: bytes) -> str:
    """b'\\x03web\\x00' -> 'web' (labels joined with dots; non-printable bytes escaped)."""
    labels = []
    i = 0
    while i < len(wire) and wire[i]:
        length = wire[i]
        label = wire[i + 1:i + 1 + length]
        labels.append("".join(chr(c) if 0x21 <= c < 0x7F and c not in (0x2E, 0x5C) else f"\\{c:03d}"
                              for c in label))
        i += length + 1
    return ".".join(labels) + "." if labels else "."


@dataclass(frozen=True)
class Query:
    """What the fast parser reads from a query: header fields and the first question."""

    id: int
    opcode: int
    rd: bool
    name: str
    qtype: int
    qclass: int
    ancount: int
    nscount: int
    arcount: int

    def to_dict(self) -> Dict[str, Any]:
        return {
            "id": self.id, "opcode": self.opcode, "rd": self.rd, "name": self.name,
            "qtype": self.qtype, "qclass": self.qclass,
            "ancount": self.ancount, "nscount": self.nscount, "arcount": self.arcount,
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> Query:
        return cls(
            id=int(d["id"]), opcode=int(d["opcode"]), rd=bool(d["rd"]), name=str(d["name"]),
            qtype=int(d["qtype"]), qclass=int(d["qclass"]),
            ancount=int(d["ancount"]), nscount=int(d["nscount"]), arcount=int(d["arcount"]),
        )


def parse_query(data: bytes) -> Optional[Query]:
    """The fast parser's view of a packet as a record, or None if it is not a query we take."""
    end = question_end(data)
    if end < 0:
        return None
    return Query(
        id=(data[0] << 8) | data[1], opcode=opcode(data), rd=bool(data[2] & 0x01),
        name=decode_name(data[HEADER_LEN:end]), qtype=qtype_at(data, end), qclass=qclass_at(data, end),
        ancount=(data[6] << 8) | data[7], nscount=(data[8] << 8) | data[9],
        arcount=(data[10] << 8) | data[11],
    )


def opt_record(udp_size: int, ext_rcode: int = 0, version: int = 0) -> bytes:
    """An EDNS OPT pseudo-record: root owner, type 41, class = UDP size, no options, DO clear."""
    return b"\x00\x00\x29" + struct.pack("!HBBHH", udp_size, ext_rcode, version, 0, 0)
