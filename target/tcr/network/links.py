"""The few rtnetlink requests tcr needs, on a plain AF_NETLINK socket (stdlib only).

Why not pyroute2: with pyroute2 0.9 every submodule import first runs the package __init__, which
imports the whole library (asyncio, multiprocessing, ndb, ipdb, ...): +24 MB RSS and 150-280 ms
on first use, +16 MB even when the package __init__ is bypassed (numbers in docs/networking.md).
These ~250 lines cover bridges, veth pairs with the peer created directly inside a namespace,
addresses, routes and link/address/route dumps, at no import cost.
"""

from __future__ import annotations

import errno
import os
import struct

from tcr.kernel import sockets as socket

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Dict, Iterator, List, Optional, Tuple

# rtnetlink message types and flags (linux/rtnetlink.h, linux/netlink.h)
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
F_REQUEST, F_ACK, F_DUMP = 0x1, 0x4, 0x300
F_REPLACE, F_EXCL, F_CREATE = 0x100, 0x200, 0x400
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
IFF_UP = 0x1
RT_TABLE_MAIN = 254
NLA_F_NESTED = 0x8000

_HDR = struct.Struct("=LHHLL")
_IFI = struct.Struct("=BxHiII")
_IFA = struct.Struct("=BBBBi")
_RTM = struct.Struct("=BBBBBBBBI")
_RTA = struct.Struct("=HH")


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, data: bytes) -> bytes:
    n = _RTA.size + len(data)
    return _RTA.pack(n, kind) + data + b"\0" * (_align(n) - n)


def nest(kind: int, *children: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(children))


def _str(s: str) -> bytes:
    return s.encode() + b"\0"


def _u32(v: int) -> bytes:
    return struct.pack("=I", v)


def _ip(ip: str) -> bytes:
    return socket.inet_aton(ip)


def _mac(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFI.pack(socket.AF_UNSPEC, 0, index, flags, change)


def parse_attrs(data: bytes, offset: int = 0) -> Dict[int, bytes]:
    out: Dict[int, bytes] = {}
    while offset + _RTA.size <= len(data):
        n, kind = _RTA.unpack_from(data, offset)
        if n < _RTA.size:
            break
        out[kind & 0x3FFF] = data[offset + _RTA.size: offset + n]
        offset += _align(n)
    return out


def _cstr(b: Optional[bytes]) -> str:
    return b.split(b"\0", 1)[0].decode(errors="replace") if b else ""


class Link:
    __slots__ = ("index", "name", "kind", "master", "up")

    def __init__(self, index: int, name: str, kind: str, master: int, up: bool):
        self.index, self.name, self.kind, self.master, self.up = index, name, kind, master, up

    def __repr__(self) -> str:
        return f"Link({self.index}, {self.name!r}, {self.kind!r}, master={self.master})"


class Netlink:
    """A NETLINK_ROUTE socket in the namespace of the thread that created it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _send(self, mtype: int, flags: int, payload: bytes) -> int:
        self.seq += 1
        hdr = _HDR.pack(_HDR.size + len(payload), mtype, flags | F_REQUEST, self.seq, 0)
        self.sock.sendall(hdr + payload)
        return self.seq

    def _replies(self, seq: int) -> Iterator[Tuple[int, bytes]]:
        while True:
            data = self.sock.recv(1 << 16)
            off = 0
            while off + _HDR.size <= len(data):
                n, mtype, _flags, mseq, _pid = _HDR.unpack_from(data, off)
                body = data[off + _HDR.size: off + n]
                off += _align(n)
                if mseq != seq:
                    continue  # a late reply to an earlier request
                if mtype == NLMSG_DONE:
                    return
                if mtype == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", body)[0]
                    if err:
                        raise OSError(err, os.strerror(err))
                    return
                yield mtype, body

    def request(self, mtype: int, flags: int, payload: bytes) -> None:
        """Send one request and wait for its ACK; a kernel refusal raises OSError(errno)."""
        for _ in self._replies(self._send(mtype, flags | F_ACK, payload)):
            pass

    def dump(self, mtype: int, payload: bytes) -> List[bytes]:
        return [body for _t, body in self._replies(self._send(mtype, F_DUMP, payload))]

    # -- links ---------------------------------------------------------------------------------

    def links(self) -> List[Link]:
        out = []
        for body in self.dump(RTM_GETLINK, ifinfo()):
            _fam, _type, index, flags, _ch = _IFI.unpack_from(body)
            a = parse_attrs(body, _IFI.size)
            kind = _cstr(parse_attrs(a[IFLA_LINKINFO]).get(IFLA_INFO_KIND)) if IFLA_LINKINFO in a else ""
            master = struct.unpack("=I", a[IFLA_MASTER])[0] if IFLA_MASTER in a else 0
            out.append(Link(index, _cstr(a.get(IFLA_IFNAME)), kind, master, bool(flags & IFF_UP)))
        return out

    def index(self, name: str) -> Optional[int]:
        self._send(RTM_GETLINK, 0, ifinfo() + attr(IFLA_IFNAME, _str(name)))
        try:
            for _t, body in self._replies(self.seq):
                return _IFI.unpack_from(body)[2]
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return None

    def add_bridge(self, name: str) -> int:
        li = nest(IFLA_LINKINFO, attr(IFLA_INFO_KIND, _str("bridge")))
        self.request(RTM_NEWLINK, F_CREATE | F_EXCL, ifinfo() + attr(IFLA_IFNAME, _str(name)) + li)
        idx = self.index(name)
        if idx is None:
            raise OSError(errno.ENODEV, f"bridge {name} vanished after creation")
        return idx

    def add_veth(self, name: str, master: int, peer: str, peer_netns_fd: int,
                 peer_mac: Optional[str] = None) -> None:
        """A veth pair whose peer is born inside the namespace peer_netns_fd (no slow move),
        host end enslaved to master and up, in one request. The peer cannot be brought up in the
        same request (the kernel opens it before the pair is linked: ENOTCONN); set_up() it from
        inside its namespace."""
        peer_attrs = attr(IFLA_IFNAME, _str(peer)) + attr(IFLA_NET_NS_FD, _u32(peer_netns_fd))
        if peer_mac:
            peer_attrs += attr(IFLA_ADDRESS, _mac(peer_mac))
        info = nest(IFLA_LINKINFO, attr(IFLA_INFO_KIND, _str("veth")),
                    nest(IFLA_INFO_DATA, nest(VETH_INFO_PEER, ifinfo() + peer_attrs)))
        msg = ifinfo(0, IFF_UP, IFF_UP) + attr(IFLA_IFNAME, _str(name))
        if master:
            msg += attr(IFLA_MASTER, _u32(master))
        msg += info
        self.request(RTM_NEWLINK, F_CREATE | F_EXCL, msg)

    def set_master(self, index: int, master: int) -> None:
        self.request(RTM_NEWLINK, 0, ifinfo(index, IFF_UP, IFF_UP) + attr(IFLA_MASTER, _u32(master)))

    def set_mac(self, index: int, mac: str) -> None:
        self.request(RTM_NEWLINK, 0, ifinfo(index) + attr(IFLA_ADDRESS, _mac(mac)))

    def set_up(self, index: int) -> None:
        self.request(RTM_NEWLINK, 0, ifinfo(index, IFF_UP, IFF_UP))

    def delete(self, name: Optional[str] = None, index: int = 0) -> bool:
        """Delete a link by name or index; False if it did not exist."""
        payload = ifinfo(index) + (attr(IFLA_IFNAME, _str(name)) if name and not index else b"")
        try:
            self.request(RTM_DELLINK, 0, payload)
            return True
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise

    # -- addresses and routes ------------------------------------------------------------------

    def add_addr(self, index: int, ip: str, prefixlen: int) -> None:
        msg = _IFA.pack(socket.AF_INET, prefixlen, 0, 0, index)
        msg += attr(IFA_LOCAL, _ip(ip)) + attr(IFA_ADDRESS, _ip(ip))
        self.request(RTM_NEWADDR, F_CREATE | F_REPLACE, msg)

    def addrs(self) -> List[Tuple[int, str, int]]:
        """(ifindex, ip, prefixlen) of every IPv4 address."""
        out = []
        for body in self.dump(RTM_GETADDR, _IFA.pack(socket.AF_INET, 0, 0, 0, 0)):
            fam, plen, _fl, _sc, idx = _IFA.unpack_from(body)
            if fam != socket.AF_INET:
                continue
            a = parse_attrs(body, _IFA.size)
            raw = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
            if raw:
                out.append((idx, socket.inet_ntoa(raw), plen))
        return out

    def add_default_route(self, gateway: str, oif: int) -> None:
        # family, dst_len, src_len, tos, table, protocol=boot, scope=universe, type=unicast, flags
        msg = _RTM.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, 3, 0, 1, 0)
        msg += attr(RTA_GATEWAY, _ip(gateway)) + attr(RTA_OIF, _u32(oif))
        self.request(RTM_NEWROUTE, F_CREATE | F_REPLACE, msg)

    def routes(self) -> List[Tuple[str, int, int]]:
        """(dst, dst_len, oif) of IPv4 routes in every table (local/broadcast ones skipped)."""
        out = []
        for body in self.dump(RTM_GETROUTE, _RTM.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)):
            fam, dlen, _sl, _tos, _table, _proto, _scope, rtype, _fl = _RTM.unpack_from(body)
            if fam != socket.AF_INET or rtype != 1:  # unicast only
                continue
            a = parse_attrs(body, _RTM.size)
            dst = socket.inet_ntoa(a[RTA_DST]) if RTA_DST in a else "0.0.0.0"
            oif = struct.unpack("=I", a[RTA_OIF])[0] if RTA_OIF in a else 0
            out.append((dst, dlen, oif))
        return out
