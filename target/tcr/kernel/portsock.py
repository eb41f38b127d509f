"""Hold a published host address:port with a bound socket, as docker-proxy does, without a proxy.

TCP: bound but never listening. Another bind of the port (even with SO_REUSEADDR, which needs both
sides to set it) fails with EADDRINUSE, while a connection that somehow escapes the DNAT gets a
clean RST instead of waiting in an accept queue nobody serves.
UDP: bound, with a socket filter that drops every datagram, so nothing queues in tcrd's memory.
Stdlib only (C buffers through tcr.kernel.libc); the sockets are close-on-exec (crun and
containers never inherit them).
"""

import struct

from tcr.kernel import sockets as socket
from tcr.kernel.libc import addressof, c_buffer  # not the ctypes package: ~0.4 MB for one buffer

SO_ATTACH_FILTER = 26
_DROP_ALL = struct.pack("HBBI", 0x06, 0, 0, 0)  # BPF_RET | BPF_K, 0: keep 0 bytes = drop
_filter_buf = c_buffer(_DROP_ALL)


def _drop_everything(s: socket.socket) -> None:
    prog = struct.pack("HL", 1, addressof(_filter_buf))  # struct sock_fprog {len, *filter}
    s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)


def hold(ip: str, port: int, proto: str) -> socket.socket:
    """A socket bound to ip:port/proto ("" = every address). Raises OSError (EADDRINUSE,
    EADDRNOTAVAIL for an address this host does not have)."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind)
    try:
        if proto == "udp":
            _drop_everything(s)
        s.bind((ip or "0.0.0.0", port))
    except BaseException:
        s.close()
        raise
    return s
