"""Published ports (-p): the host address:port bound and held for as long as it is published, the
open-file limit raised to make room, and the ports of live containers bound again after a tcrd
restart. Loaded with the first container that publishes a port (an idle tcrd that ran none does
not hold it, nor tcr.kernel.portsock and `resource`, docs/profile.md).
"""

from __future__ import annotations

import errno

from tcr.common.errors import InUse, InvalidArgument, TcrError
from tcr.network import ports
from tcr.network.manager import EPHEMERAL, FD_RESERVE, _close_all, _oserr

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, List, Tuple

    from tcr.network.manager import NetworkManager
    from tcr.network.records import PortMapping


def reserve_ports(nm: NetworkManager, mappings: List[PortMapping]) -> Tuple[List[PortMapping], List[Any]]:
    """Bind and hold every host address:port (docker does the same through docker-proxy):
    a port a host service uses is refused, no host service can take it while it is
    published, and an address the host does not have is refused. Port 0 = the first free
    port of the ephemeral range. All or nothing: on error nothing stays bound."""
    from tcr.common import record as dataclasses
    from tcr.kernel.portsock import hold

    _fd_room(nm, len(mappings))
    out: List[PortMapping] = []
    held: List[Any] = []
    try:
        for m in mappings:
            if m.host_port:
                held.append(_hold(hold, m))
                out.append(m)
                continue
            busy = nm._published() + [("", o) for o in out]
            for port in range(EPHEMERAL[0], EPHEMERAL[1] + 1):
                cand = dataclasses.replace(m, host_port=port)
                if any(ports.clash(cand, o) for _w, o in busy):
                    continue
                try:
                    held.append(hold(m.host_ip, port, m.proto))
                except OSError as exc:
                    if exc.errno == errno.EADDRINUSE:
                        continue
                    held.append(_hold(hold, cand))  # raises the one-line error
                out.append(cand)
                break
            else:
                raise InUse(f"no free host port for container port {m.container_port}/{m.proto}")
    except BaseException:
        _close_all(held)
        raise
    return out, held


def _fd_room(nm: NetworkManager, more: int) -> None:
    """Each held port is an open file of tcrd: make room under RLIMIT_NOFILE (raising the soft
    limit up to the hard one), or refuse in one line before anything is bound."""
    import resource

    held = sum(len(v) for v in nm._held.values())
    need = held + more + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or need <= soft:
        return
    if hard != resource.RLIM_INFINITY and need > hard:
        raise InvalidArgument(f"cannot publish {more} more port(s): tcrd holds {held} already and its "
                              f"open-file limit is {hard}", hint="raise LimitNOFILE of the tcrd service")
    new = need * 2 if hard == resource.RLIM_INFINITY else min(hard, need * 2)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot publish {more} more port(s): the open-file limit {soft} cannot be "
                              f"raised ({exc})")


def reacquire(nm: NetworkManager, cid: str) -> List[str]:
    """Bind a live container's published ports again (after a daemon restart). A port some
    other process took meanwhile is reported, not fatal: the DNAT rule still serves it."""
    if cid in nm._held:
        return []
    from tcr.kernel.portsock import hold

    problems, held = [], []
    for _rec, le in nm.leases_of(cid):
        for m in le.ports:
            try:
                held.append(_hold(hold, m))
            except TcrError as exc:
                problems.append(f"container {cid[:12]}: {exc.message}")
    nm._held[cid] = held
    return problems


def _hold(hold: Any, m: PortMapping) -> Any:
    """hold() with the errors a user can act on, in one line each."""
    where = f"{m.host_ip or '0.0.0.0'}:{m.host_port}/{m.proto}"
    try:
        return hold(m.host_ip, m.host_port, m.proto)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise InUse(f"cannot publish {where}: address already in use",
                        hint="another program (or container) on this host uses that port; choose another")
        if exc.errno == errno.EADDRNOTAVAIL:
            raise InvalidArgument(f"cannot publish {where}: {m.host_ip} is not an address of this host")
        if exc.errno == errno.EACCES:
            raise InvalidArgument(f"cannot publish {where}: permission denied")
        raise _oserr(f"cannot publish {where}", exc)
