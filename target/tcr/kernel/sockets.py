"""Sockets on the C module `_socket`, without the `socket` module.

`socket` turns its constants into four IntEnum/IntFlag classes at import and brings enum, functools
and collections with it: ~0.7 MB of tcrd's resident memory for what tcrd uses of it, which is
_socket's own socket type plus accept(), socketpair() and a context manager (docs/profile.md).
Used as `from tcr.kernel import sockets as socket`: the names below are socket's, with ints
where socket has enums.
"""

from __future__ import annotations

import _socket
from _socket import (  # noqa: F401 - re-exported under socket's names
    AF_INET,
    AF_INET6,
    AF_NETLINK,
    AF_UNIX,
    AF_UNSPEC,
    CMSG_SPACE,
    MSG_DONTWAIT,
    MSG_PEEK,
    MSG_TRUNC,
    NETLINK_ROUTE,
    SCM_RIGHTS,
    SO_ERROR,
    SO_PEERCRED,
    SO_RCVBUF,
    SO_REUSEADDR,
    SO_SNDBUF,
    SOCK_CLOEXEC,
    SOCK_DGRAM,
    SOCK_RAW,
    SOCK_SEQPACKET,
    SOCK_STREAM,
    SOL_SOCKET,
    gethostname,
    inet_aton,
    inet_ntoa,
)

MSG_NOSIGNAL = getattr(_socket, "MSG_NOSIGNAL", 0)

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Tuple


class socket(_socket.socket):  # noqa: N801 - socket's name
    """_socket's socket plus what socket.socket adds that tcr uses."""

    __slots__ = ("__weakref__",)

    def accept(self) -> Tuple[socket, Any]:
        # _accept is accept4(SOCK_CLOEXEC): the new fd is blocking, as with socket.socket
        fd, addr = self._accept()  # type: ignore[attr-defined]  # C method typeshed omits
        return socket(self.family, self.type, self.proto, fileno=fd), addr

    def __enter__(self) -> socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<tcr socket fd={self.fileno()} family={self.family} type={self.type}>"


def socketpair(family: int = AF_UNIX, type: int = SOCK_STREAM, proto: int = 0) -> Tuple[socket, socket]:
    a, b = _socket.socketpair(family, type, proto)
    return (socket(family, type, proto, fileno=a.detach()), socket(family, type, proto, fileno=b.detach()))
