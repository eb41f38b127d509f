"""The DNS forwarder's sockets: a thin layer over forwarder.Forwarder, driven by the daemon's loop.

Per gateway address: one UDP socket and one TCP listening socket bound to that address only (never
0.0.0.0: we are not an open resolver). Upstream UDP queries leave through a small pool of sockets
with kernel-chosen random ports (so a spoofer must guess port and id); TCP client queries are
forwarded over a fresh TCP connection to the upstream.

The loop only offers readers, so writability (a TCP connect finishing, a client's send buffer
draining) comes from a private epoll fd registered as one reader: no polling anywhere.
Hot path (UDP, local name): recvfrom -> Forwarder.handle_query (reply-cache dict lookup, or parse
question + table lookup + build reply) -> sendto, repeated until EAGAIN (at most BATCH per wakeup).
"""

from __future__ import annotations

import sys
from _functools import partial  # not `functools` (~0.2 MB in tcrd: docs/profile.md)

from tcr.common.errors import InternalError, InvalidArgument
from tcr.common.log import get_logger
from tcr.kernel import sockets as socket
from tcr.network import ipaddr
from tcr.network.dns.forwarder import (
    DEFAULT_MAX_PENDING,
    DEFAULT_TIMEOUT,
    DEFAULT_TTL,
    Forwarder,
    Pending,
    Zone,
)
from tcr.network.dns.upstreams import Upstreams

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Set

    from tcr.network.dns.tcp import TcpClient, Writability

log = get_logger("tcr.dns")

BATCH = 64  # datagrams handled per wakeup before yielding to other fds
QUERY_BUF = 4096  # client queries (a query is small; EDNS answers are what get big)
ANSWER_BUF = 65535  # upstream answers
UPSTREAM_POOL = 4  # UDP sockets (random source ports) used for upstream queries, per family
MAX_TCP_CONNS = 64  # client TCP connections over all gateways
MAX_TCP_PENDING = 16  # forwarded queries in flight per client TCP connection
MAX_TCP_OUT = 256 * 1024  # unsent reply bytes per client TCP connection before we give up on it
TCP_IDLE = 10.0  # seconds a client TCP connection may stay idle (RFC 7766 suggests seconds)
RCVBUF = 1 << 20


class _Listener:
    __slots__ = ("ip", "port", "zone", "udp", "tcp", "conns", "closed")

    def __init__(self, ip: str, port: int, zone: Zone, udp: socket.socket, tcp: socket.socket):
        self.ip = ip
        self.port = port
        self.zone = zone
        self.udp = udp
        self.tcp = tcp
        self.conns: Set[TcpClient] = set()
        self.closed = False


class DnsService:
    def __init__(self, loop: Any, resolv_conf: str = "/etc/resolv.conf", *, upstream_port: int = 53,
                 timeout: float = DEFAULT_TIMEOUT, max_pending: int = DEFAULT_MAX_PENDING,
                 ttl: int = DEFAULT_TTL, tcp_idle: float = TCP_IDLE, resolv_check_interval: float = 1.0):
        self.loop = loop
        self.upstreams = Upstreams(resolv_conf, port=upstream_port, clock=loop.time,
                                   min_interval=resolv_check_interval)
        self.fwd = Forwarder(self.upstreams.get, timeout=timeout, max_pending=max_pending)
        self.ttl = ttl
        self.tcp_idle = tcp_idle
        self._listeners: Dict[str, _Listener] = {}
        self._zones: Dict[str, Zone] = {}
        self._pool: Dict[int, List[socket.socket]] = {}  # family -> upstream UDP sockets
        self._writable: Optional[Writability] = None
        self.tcp_conns = 0

    # -- public interface ----------------------------------------------------------------------

    def listen(self, gateway_ip: str, port: int = 53) -> None:
        """Serve DNS (UDP and TCP) on gateway_ip:port only. Idempotent for the same address and port."""
        ip = _check_ip(gateway_ip)
        old = self._listeners.get(ip)
        if old is not None:
            if old.port == port:
                return
            self.unlisten(ip)
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            udp.setblocking(False)
            tcp.setblocking(False)
            try:
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            except OSError:
                pass
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp.bind((ip, port))
            tcp.bind((ip, port))
            tcp.listen(32)
        except OSError as e:
            udp.close()
            tcp.close()
            raise InternalError(f"dns: cannot listen on {ip} port {port}: {e.strerror or e}")
        zone = self._zones.get(ip)
        if zone is None:
            zone = self._zones[ip] = Zone(ttl=self.ttl)
        lst = _Listener(ip, port, zone, udp, tcp)
        self._listeners[ip] = lst
        self.loop.add_reader(udp.fileno(), partial(self._on_udp, lst))
        self.loop.add_reader(tcp.fileno(), partial(self._on_accept, lst))
        self.upstreams.exclude(self._listeners)
        log.debug("dns: listening on %s port %d", ip, port)

    def unlisten(self, gateway_ip: str) -> None:
        ip = _check_ip(gateway_ip)
        self._zones.pop(ip, None)
        lst = self._listeners.pop(ip, None)
        if lst is None:
            return
        lst.closed = True
        for conn in list(lst.conns):
            conn.close()
        for s in (lst.udp, lst.tcp):
            self.loop.remove_reader(s.fileno())
            s.close()
        self.upstreams.exclude(self._listeners)

    def set_names(self, gateway_ip: str, names: Dict[str, str]) -> None:
        """Replace the local names (name -> IPv4) answered on gateway_ip. Bad input changes nothing."""
        ip = _check_ip(gateway_ip)
        zone = self._zones.get(ip)
        new = Zone(ttl=self.ttl)
        try:
            new.set_names(names)
        except ValueError as e:
            raise InvalidArgument(f"dns: {e}")
        if zone is None:
            self._zones[ip] = new
        else:
            zone.table, zone.cache = new.table, new.cache  # in place: listeners hold this zone

    def set_peers(self, gateway_ip: str, peers: Dict[str, Dict[str, str]]) -> None:
        """Names of the other networks of multi-network clients on gateway_ip (Zone.peers)."""
        ip = _check_ip(gateway_ip)
        zone = self._zones.get(ip)
        if zone is None:
            zone = self._zones[ip] = Zone(ttl=self.ttl)
        new = Zone(ttl=self.ttl)
        try:
            new.set_peers(peers)
        except ValueError as e:
            raise InvalidArgument(f"dns: {e}")
        zone.peers = new.peers

    def close(self) -> None:
        for ip in list(self._listeners):
            self.unlisten(ip)
        for p in list(self.fwd.pending.values()):
            self._abandon(p)
        for socks in self._pool.values():
            for s in socks:
                self.loop.remove_reader(s.fileno())
                s.close()
        self._pool.clear()
        if self._writable is not None:
            self._writable.close()
            self._writable = None

    def metrics(self) -> Dict[str, Any]:
        m: Dict[str, Any] = dict(self.fwd.metrics())
        m["tcp_connections"] = self.tcp_conns
        m["listening"] = sorted(f"{lst.ip}:{lst.port}" for lst in self._listeners.values())
        m["upstreams"] = [h for h, _p in self.upstreams.get()]
        return m

    # -- UDP -----------------------------------------------------------------------------------

    def _on_udp(self, lst: _Listener) -> None:
        sock = lst.udp
        recvfrom = sock.recvfrom
        sendto = sock.sendto
        handle = self.fwd.handle_query
        zone = lst.zone
        for _ in range(BATCH):
            try:
                data, addr = recvfrom(QUERY_BUF)
            except OSError:  # EAGAIN: drained (or a transient error: the next wakeup retries)
                return
            act = handle(data, addr, zone)
            if act.__class__ is bytes:
                try:
                    sendto(act, addr)
                except OSError:
                    self.fwd.dropped += 1
            elif act is not None:
                act.origin = lst  # type: ignore[union-attr]
                self._send_upstream(act)  # type: ignore[arg-type]

    def _upstream_socket(self, host: str, pick: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        socks = self._pool.get(family)
        if socks is None:
            socks = self._pool[family] = []
            for _ in range(UPSTREAM_POOL):
                s = socket.socket(family, socket.SOCK_DGRAM)
                s.setblocking(False)
                s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))  # random ephemeral port
                self.loop.add_reader(s.fileno(), partial(self._on_upstream_udp, s))
                socks.append(s)
        return socks[pick % len(socks)]  # pick = the random transaction id

    def _send_upstream(self, p: Pending) -> None:
        if p.tcp:
            from tcr.network.dns.tcp import TcpUpstream  # DNS over TCP is rare: loaded on first use

            p.io = TcpUpstream(self, p)
            p.timer = self.loop.call_later(self.fwd.timeout, partial(self._on_timeout, p, p.index))
            p.io.start()
            return
        host, port = p.upstream
        sock = self._upstream_socket(host, p.txid)
        p.io = sock
        try:
            sock.sendto(p.query, (host, port))
        except OSError as e:
            log.debug("dns: sending to upstream %s failed: %s", host, e)
            p.timer = None
            self.loop.call_soon(partial(self._on_timeout, p, p.index))
            return
        p.timer = self.loop.call_later(self.fwd.timeout, partial(self._on_timeout, p, p.index))

    def _on_upstream_udp(self, sock: socket.socket) -> None:
        for _ in range(BATCH):
            try:
                data, addr = sock.recvfrom(ANSWER_BUF)
            except OSError:
                return
            got = self.fwd.handle_upstream_reply(data, addr, sock)
            if got is not None:
                p, reply = got
                if p.timer is not None:
                    p.timer.cancel()
                self._reply(p, reply)

    def _on_timeout(self, p: Pending, attempt: int) -> None:
        if p.done or p.index != attempt:
            return  # answered meanwhile, or already moved on (a failed connect and its timer)
        if p.tcp and _is_tcp_upstream(p.io):
            p.io.close()
        if p.timer is not None:
            p.timer.cancel()
            p.timer = None
        act = self.fwd.handle_timeout(p)
        if act is None:
            return
        if act.__class__ is bytes:
            self._reply(p, act)  # type: ignore[arg-type]
        else:
            self._send_upstream(p)

    def _reply(self, p: Pending, reply: bytes) -> None:
        if p.tcp:
            conn: TcpClient = p.client
            conn.pending.discard(p)
            conn.send(reply)
            return
        lst: _Listener = p.origin
        if lst is None or lst.closed:
            return
        try:
            lst.udp.sendto(reply, p.client)
        except OSError:
            self.fwd.dropped += 1

    def _abandon(self, p: Pending) -> None:
        """Forget a pending query whose client went away."""
        self.fwd.cancel(p)
        if p.timer is not None:
            p.timer.cancel()
            p.timer = None
        if _is_tcp_upstream(p.io):
            p.io.close()

    # -- TCP -----------------------------------------------------------------------------------

    def writable(self) -> Writability:
        if self._writable is None:
            from tcr.network.dns.tcp import Writability

            self._writable = Writability(self.loop)
        return self._writable

    def _on_accept(self, lst: _Listener) -> None:
        for _ in range(16):
            try:
                sock, addr = lst.tcp.accept()
            except OSError:
                return
            if self.tcp_conns >= MAX_TCP_CONNS:
                sock.close()
                self.fwd.dropped += 1
                continue
            sock.setblocking(False)
            from tcr.network.dns.tcp import TcpClient  # DNS over TCP is rare: loaded on first use

            conn = TcpClient(self, lst, sock, addr)
            lst.conns.add(conn)
            self.tcp_conns += 1
            self.loop.add_reader(sock.fileno(), conn.on_readable)


def _is_tcp_upstream(io: Any) -> bool:
    """A pending query's TCP connection (a UDP query's io is a shared pool socket, never closed)."""
    tcp = sys.modules.get("tcr.network.dns.tcp")
    return tcp is not None and isinstance(io, tcp.TcpUpstream)


def _check_ip(ip: str) -> str:
    try:
        addr = ipaddr.ip_address(ip)
    except ValueError:
        raise InvalidArgument(f"dns: not an IP address: {ip!r}")
    if addr.is_unspecified:
        raise InvalidArgument("dns: refusing to listen on the unspecified address (open resolver)")
    return str(addr)
