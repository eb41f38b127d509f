"""The part of the ipaddress module tcr uses, on ints and inet_pton.

ipaddress costs tcrd ~0.4 MB resident (docs/profile.md) for subnet arithmetic on IPv4 /8../29
networks and address validation. Same names and meanings as ipaddress for what is here:
IPv4Network(text, strict=True) with prefixlen, network_address, broadcast_address, overlaps(),
is_loopback/is_multicast/is_link_local/is_reserved/is_unspecified; IPv4Address (int(), str(),
packed, + int); ip_address(text) for IPv4 or IPv6 (is_unspecified, is_multicast, str() in the
canonical form). Parsing is as strict as ipaddress: four decimal octets without leading zeros;
IPv6 scope ids (`%eth0`) are not accepted here: callers split them off first.
"""

from __future__ import annotations

from _socket import AF_INET6, inet_ntop, inet_pton

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Union

_ALL = 0xFFFFFFFF


def _parse_v4(text: str) -> int:
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not an IPv4 address")
    parts = text.split(".")
    if len(parts) != 4:
        raise ValueError(f"Expected 4 octets in {text!r}")
    n = 0
    for p in parts:
        if not p:
            raise ValueError(f"Empty octet not permitted in {text!r}")
        if not (p.isascii() and p.isdigit()) or len(p) > 3:
            raise ValueError(f"Only decimal digits permitted in {p!r} in {text!r}")
        if len(p) > 1 and p[0] == "0":
            raise ValueError(f"Leading zeros are not permitted in {p!r} in {text!r}")
        v = int(p)
        if v > 255:
            raise ValueError(f"Octet {v} (> 255) not permitted in {text!r}")
        n = n << 8 | v
    return n


def _in(n: int, net: int, plen: int) -> bool:
    mask = (_ALL << (32 - plen)) & _ALL
    return n & mask == net


class IPv4Address:
    __slots__ = ("_n",)
    version = 4
    max_prefixlen = 32

    def __init__(self, value: Union[str, int]) -> None:
        if isinstance(value, int):
            if not 0 <= value <= _ALL:
                raise ValueError(f"{value} does not appear to be an IPv4 address")
            self._n = value
        else:
            self._n = _parse_v4(value)

    def __int__(self) -> int:
        return self._n

    def __str__(self) -> str:
        n = self._n
        return f"{n >> 24}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"

    def __repr__(self) -> str:
        return f"IPv4Address('{self}')"

    def __eq__(self, other: object) -> bool:
        return getattr(other, "version", None) == 4 and int(other) == self._n  # type: ignore[call-overload]

    def __hash__(self) -> int:
        return hash(self._n)

    def __add__(self, k: int) -> IPv4Address:
        return IPv4Address(self._n + k)

    @property
    def packed(self) -> bytes:
        return self._n.to_bytes(4, "big")

    @property
    def is_unspecified(self) -> bool:
        return self._n == 0

    @property
    def is_multicast(self) -> bool:
        return _in(self._n, 0xE0000000, 4)

    @property
    def is_loopback(self) -> bool:
        return _in(self._n, 0x7F000000, 8)

    @property
    def is_link_local(self) -> bool:
        return _in(self._n, 0xA9FE0000, 16)

    @property
    def is_reserved(self) -> bool:
        return _in(self._n, 0xF0000000, 4)


class IPv4Network:
    __slots__ = ("_net", "prefixlen")
    version = 4

    def __init__(self, text: str, strict: bool = True) -> None:
        addr, slash, plen = str(text).partition("/")
        n = _parse_v4(addr)
        if slash:
            if not (plen.isascii() and plen.isdigit()) or len(plen) > 2 or int(plen) > 32:
                raise ValueError(f"{plen!r} is not a valid netmask")
            p = int(plen)
        else:
            p = 32
        mask = (_ALL << (32 - p)) & _ALL
        if n & ~mask & _ALL:
            if strict:
                raise ValueError(f"{text} has host bits set")
            n &= mask
        self._net = n
        self.prefixlen = p

    @property
    def network_address(self) -> IPv4Address:
        return IPv4Address(self._net)

    @property
    def broadcast_address(self) -> IPv4Address:
        return IPv4Address(self._net | (_ALL >> self.prefixlen))

    def __str__(self) -> str:
        return f"{self.network_address}/{self.prefixlen}"

    def __repr__(self) -> str:
        return f"IPv4Network('{self}')"

    def __eq__(self, other: object) -> bool:
        try:
            return (int(other.network_address) == self._net  # type: ignore[attr-defined]
                    and other.prefixlen == self.prefixlen)  # type: ignore[attr-defined]
        except AttributeError:
            return NotImplemented

    def __hash__(self) -> int:
        return hash((self._net, self.prefixlen))

    def __contains__(self, addr: Any) -> bool:
        if hasattr(addr, "prefixlen"):  # a network is never "in" another, as in ipaddress
            return False
        return getattr(addr, "version", 4) == 4 and self._net <= int(addr) <= int(self.broadcast_address)

    def overlaps(self, other: Any) -> bool:
        """As ipaddress: either network contains the other's first or last address."""
        o_first = int(other.network_address)
        o_last = int(other.broadcast_address)
        first, last = self._net, int(self.broadcast_address)
        return first <= o_first <= last or first <= o_last <= last or o_first <= first <= o_last

    def _both(self, test: str) -> bool:
        return getattr(self.network_address, test) and getattr(self.broadcast_address, test)

    @property
    def is_loopback(self) -> bool:
        return self._both("is_loopback")

    @property
    def is_multicast(self) -> bool:
        return self._both("is_multicast")

    @property
    def is_link_local(self) -> bool:
        return self._both("is_link_local")

    @property
    def is_reserved(self) -> bool:
        return self._both("is_reserved")

    @property
    def is_unspecified(self) -> bool:
        return self._both("is_unspecified")


class IPv6Address:
    __slots__ = ("_b",)
    version = 6

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or "%" in text or "/" in text:
            raise ValueError(f"{text!r} does not appear to be an IPv6 address")
        try:
            self._b = inet_pton(AF_INET6, text)
        except OSError:
            raise ValueError(f"{text!r} does not appear to be an IPv6 address")

    def __str__(self) -> str:
        return inet_ntop(AF_INET6, self._b)

    def __int__(self) -> int:
        return int.from_bytes(self._b, "big")

    def __eq__(self, other: object) -> bool:
        return getattr(other, "version", None) == 6 and int(other) == int(self)  # type: ignore[call-overload]

    def __hash__(self) -> int:
        return hash(self._b)

    @property
    def packed(self) -> bytes:
        return self._b

    @property
    def is_unspecified(self) -> bool:
        return self._b == bytes(16)

    @property
    def is_multicast(self) -> bool:
        return self._b[0] == 0xFF


def ip_address(text: str) -> Union[IPv4Address, IPv6Address]:
    """An IPv4 or IPv6 address; ValueError for anything else."""
    try:
        return IPv4Address(text)
    except ValueError:
        pass
    try:
        return IPv6Address(text)
    except ValueError:
        raise ValueError(f"{text!r} does not appear to be an IPv4 or IPv6 address")
