"""The host's upstream resolvers, read from resolv.conf and re-read when the file changes.

No timer polls the file: the forwarder asks for the list when it forwards a query, and the file is
stat()ed at most once per `min_interval` seconds of the given clock; it is re-read only when its
(device, inode, mtime, size) changed, which also catches the usual write-temp-then-rename update.
Addresses we listen on ourselves (tcr gateways) are skipped so we never forward to ourselves.
"""

from __future__ import annotations

import os
import time

from tcr.common.log import get_logger
from tcr.network import ipaddr

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Callable, Iterable, List, Optional, Set, Tuple

log = get_logger("tcr.dns")

MAX_UPSTREAMS = 8  # glibc uses 3; a few more cost nothing

if TYPE_CHECKING:
    Upstream = Tuple[str, int]


def parse_resolv_conf(text: str) -> List[str]:
    """Nameserver addresses in file order, validated and deduplicated (IPv6 scope ids kept)."""
    out: List[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        parts = line.split()
        if len(parts) < 2 or parts[0] != "nameserver":
            continue
        addr = parts[1]
        try:
            ip = ipaddr.ip_address(addr.split("%", 1)[0])
        except ValueError:
            continue
        if ip.is_unspecified or ip.is_multicast:
            continue
        norm = str(ip) + ("%" + addr.split("%", 1)[1] if "%" in addr else "")
        if norm not in out:
            out.append(norm)
        if len(out) >= MAX_UPSTREAMS:
            break
    return out


class Upstreams:
    """The current upstream list, cheap to ask for on every forwarded query."""

    def __init__(self, path: str, port: int = 53, clock: Callable[[], float] = time.monotonic,
                 min_interval: float = 1.0):
        self.path = path
        self.port = port
        self._clock = clock
        self._min_interval = min_interval
        self._checked = float("-inf")
        self._stamp: Optional[Tuple[int, int, int, int]] = None
        self._all: List[str] = []
        self._exclude: Set[str] = set()
        self._list: List[Upstream] = []
        self.reloads = 0

    def exclude(self, addrs: Iterable[str]) -> None:
        """Addresses never to forward to (our own listening addresses)."""
        self._exclude = {str(ipaddr.ip_address(a)) for a in addrs}
        self._rebuild()

    def get(self) -> List[Upstream]:
        now = self._clock()
        if now - self._checked >= self._min_interval:
            self._checked = now
            self._check()
        return self._list

    def _check(self) -> None:
        try:
            st = os.stat(self.path)
            stamp: Optional[Tuple[int, int, int, int]] = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp == self._stamp and self.reloads:
            return
        self._stamp = stamp
        text = ""
        if stamp is not None:
            try:
                with open(self.path, encoding="utf-8", errors="replace") as f:
                    text = f.read(64 * 1024)
            except OSError:
                text = ""
        self._all = parse_resolv_conf(text)
        self.reloads += 1
        self._rebuild()
        log.info("dns: upstream resolvers from %s: %s", self.path, ", ".join(self._all) or "none")

    def _rebuild(self) -> None:
        self._list = [(a, self.port) for a in self._all if a.split("%", 1)[0] not in self._exclude]
