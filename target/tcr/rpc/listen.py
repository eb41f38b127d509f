"""Binding tcrd's RPC sockets at start-up: the socket file (a stale one left by a crash replaced,
a live one refused; mode 0660, the socket group from /etc/group) and the compat abstract socket.

Start-up only: RpcServer.start() imports this module, and tcrd drops it once it listens
(tcr.daemon.main), so its code is not resident in an idle daemon (docs/profile.md).
"""

from __future__ import annotations

import os

from tcr.common.errors import TcrError
from tcr.kernel import sockets as socket
from tcr.rpc.server import log

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Optional

    from tcr.rpc.server import RpcServer


def start(srv: RpcServer) -> None:
    srv._group_gid = group_id(srv.socket_group)
    srv._listeners.append(bind_path(srv, srv.socket_path))
    if srv.abstract_name:
        try:
            compat = bind("\0" + srv.abstract_name)
            srv._listeners.append(compat)
            srv._dispatch_of[compat.fileno()] = srv.compat_dispatch
        except OSError as exc:
            # Another daemon (maybe the C one) owns the name; the filesystem socket still works.
            log.warning("rpc: abstract socket @%s unavailable: %s", srv.abstract_name, exc.strerror)
    srv._listen()


def bind(address: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        s.setblocking(False)
        s.bind(address)
        s.listen(64)
    except BaseException:
        s.close()
        raise
    return s


def bind_path(srv: RpcServer, path: str) -> socket.socket:
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, mode=0o755, exist_ok=True)
    if os.path.exists(path) or os.path.islink(path):
        if _is_live(path):
            raise TcrError(
                f"{path}: another tcrd is already listening", hint="stop it or use --socket PATH"
            )
        os.unlink(path)  # stale socket left by a crash
    old = os.umask(0o117)  # never world-accessible, not even between bind() and chmod()
    try:
        s = bind(path)
    except OSError as exc:
        raise TcrError(f"cannot listen on {path}: {exc.strerror}")
    finally:
        os.umask(old)
    os.chmod(path, 0o660)
    if srv._group_gid is not None:
        try:
            os.chown(path, -1, srv._group_gid)
        except OSError as exc:
            log.warning("rpc: cannot give %s to group %s: %s", path, srv.socket_group, exc.strerror)
    srv._inode = os.stat(path).st_ino
    return s


def _is_live(path: str) -> bool:
    """Is someone accepting on this socket path?"""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.settimeout(1.0)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def group_id(name: Optional[str], path: str = "/etc/group") -> Optional[int]:
    """The gid of group `name` from /etc/group. Not grp.getgrnam(): that loads the NSS modules
    (libnss_systemd and its libraries here: ~0.3 MB resident for the daemon's lifetime) for one
    lookup at start; on a board the socket group lives in /etc/group."""
    if not name:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 3 and parts[0] == name:
                    try:
                        return int(parts[2])
                    except ValueError:
                        return None
    except OSError:
        pass
    return None
