"""`-p` parsing and port-conflict checks (pure).

Accepted forms (IPv4 only):  CTR   HOST:CTR   IP:HOST:CTR   IP::CTR   with optional /tcp or /udp,
and equal-length ranges such as 8000-8002:80-82. A host port of 0 (CTR alone or IP::CTR) means
"pick a free one" and is resolved by the network manager.
"""

from __future__ import annotations

from tcr.common.errors import InUse, InvalidArgument
from tcr.network.records import PortMapping

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Iterable, List, Optional, Tuple

MAX_RANGE = 1024  # a typo like 1-65535 must not create 65k rules


def _ipv4(text: str, spec: str) -> str:
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts):
        raise InvalidArgument(f"invalid host IP {text!r} in -p {spec!r}", hint="use an IPv4 address")
    return ".".join(str(int(p)) for p in parts)


def _range(text: str, what: str, spec: str, allow_zero: bool = False) -> Tuple[int, int]:
    lo_s, sep, hi_s = text.partition("-")
    if not sep:
        hi_s = lo_s
    if not (lo_s.isdigit() and hi_s.isdigit()):
        raise InvalidArgument(f"invalid {what} port {text!r} in -p {spec!r}")
    lo, hi = int(lo_s), int(hi_s)
    low_ok = 0 if allow_zero and not sep else 1
    if not (low_ok <= lo <= 65535 and low_ok <= hi <= 65535) or hi < lo:
        raise InvalidArgument(f"{what} port {text!r} out of range 1-65535 in -p {spec!r}")
    if hi - lo + 1 > MAX_RANGE:
        raise InvalidArgument(f"port range {text!r} is larger than {MAX_RANGE} in -p {spec!r}")
    return lo, hi


def parse_publish(spec: str) -> List[PortMapping]:
    """One -p value -> its mappings (several for a range). Raises InvalidArgument."""
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidArgument("empty -p value", hint="use -p [IP:]HOSTPORT:CONTAINERPORT[/tcp|udp]")
    s = spec.strip()
    proto = "tcp"
    if "/" in s:
        s, _, proto = s.rpartition("/")
        proto = proto.lower()
        if proto not in ("tcp", "udp"):
            raise InvalidArgument(f"invalid protocol {proto!r} in -p {spec!r}", hint="use tcp or udp")
    if s.startswith("["):
        raise InvalidArgument(f"IPv6 host addresses are not supported in -p {spec!r}")
    parts = s.split(":")
    host_ip = ""
    if len(parts) == 1:
        host_s, ctr_s = "0", parts[0]
    elif len(parts) == 2:
        host_s, ctr_s = parts
    elif len(parts) == 3:
        host_ip = _ipv4(parts[0], spec)
        host_s, ctr_s = (parts[1] or "0"), parts[2]
    else:
        raise InvalidArgument(f"invalid -p {spec!r}", hint="use -p [IP:]HOSTPORT:CONTAINERPORT[/tcp|udp]")
    if host_ip == "0.0.0.0":
        host_ip = ""
    clo, chi = _range(ctr_s, "container", spec)
    hlo, hhi = _range(host_s, "host", spec, allow_zero=True)
    if hlo == 0:
        if chi != clo:
            raise InvalidArgument(f"a container port range needs a host port range in -p {spec!r}")
        return [PortMapping(host_port=0, container_port=clo, proto=proto, host_ip=host_ip)]
    if hhi - hlo != chi - clo:
        raise InvalidArgument(f"host and container port ranges differ in length in -p {spec!r}")
    return [PortMapping(host_port=hlo + i, container_port=clo + i, proto=proto, host_ip=host_ip)
            for i in range(chi - clo + 1)]


def parse_all(specs: Iterable[str]) -> List[PortMapping]:
    out: List[PortMapping] = []
    for s in specs:
        out.extend(parse_publish(s))
    check_conflicts([], out)
    return out


def clash(a: PortMapping, b: PortMapping) -> bool:
    """Same protocol and port on overlapping host addresses ("" overlaps everything)."""
    if a.proto != b.proto or a.host_port != b.host_port or a.host_port == 0:
        return False
    return not a.host_ip or not b.host_ip or a.host_ip == b.host_ip


def check_conflicts(existing: Iterable[Tuple[str, PortMapping]], new: List[PortMapping],
                    owner: Optional[str] = None) -> None:
    """Raise InUse if a new mapping clashes with a published one (or with another new one)."""
    seen = list(existing)
    for i, m in enumerate(new):
        for who, old in seen:
            if who != owner and clash(m, old):
                raise InUse(f"host port {m.host_ip or '0.0.0.0'}:{m.host_port}/{m.proto} is already "
                            f"published by container {who[:12]}")
        for other in new[:i]:
            if clash(m, other):
                raise InvalidArgument(f"host port {m.host_port}/{m.proto} is published twice")
