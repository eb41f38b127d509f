"""Named network namespaces without fork or exec (stdlib + tcr.kernel.libc).

create(path): unshare(CLONE_NEWNET) moves only the CALLING THREAD into a fresh namespace; we
bind-mount /proc/thread-self/ns/net onto path and setns() straight back to the namespace we came
from. No child process (a fork of a Python daemon costs milliseconds of page-table copying and a
waitpid); the namespace lives as long as the bind mount (or a process inside it).

inside(path): run a block with the calling thread in another namespace - used to open a netlink
socket there (a socket stays bound to the namespace it was created in).
"""

from __future__ import annotations

import os

from tcr.kernel import mount as _mount
from tcr.kernel.libc import errno as libc_errno
from tcr.kernel.libc import libc

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Optional

CLONE_NEWNET = 0x40000000
_SELF = "/proc/thread-self/ns/net"



def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = libc_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def setns(fd: int) -> None:
    _check(libc().setns(fd, CLONE_NEWNET), "setns(CLONE_NEWNET)")


def _return_to(fd: int) -> None:
    try:
        setns(fd)
    except OSError as exc:  # pragma: no cover - would leave the daemon in the wrong namespace
        os.write(2, f"tcr: FATAL: cannot return to the host network namespace: {exc}\n".encode())
        os._exit(70)


class inside:  # noqa: N801 - used like the function it was: `with netns.inside(path):`
    """Run the block with this thread in the namespace at path, then come back.
    (A class, not @contextlib.contextmanager: contextlib is not otherwise loaded by tcrd.)"""

    __slots__ = ("path", "_home")

    def __init__(self, path: str) -> None:
        self.path = path
        self._home = -1

    def __enter__(self) -> None:
        home = os.open(_SELF, os.O_RDONLY | os.O_CLOEXEC)
        try:
            target = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                setns(target)
            finally:
                os.close(target)
        except BaseException:
            os.close(home)
            raise
        self._home = home

    def __exit__(self, *exc: object) -> None:
        home, self._home = self._home, -1
        try:
            _return_to(home)
        finally:
            os.close(home)


def create(path: str) -> None:
    """A new, empty network namespace pinned at path (the file is created; it must not be mounted)."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)
    home = os.open(_SELF, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            _check(libc().unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            try:
                _mount.mount(_SELF, path, None, _mount.MS_BIND)
            finally:
                _return_to(home)
        except BaseException:
            _unlink(path)
            raise
    finally:
        os.close(home)


def remove(path: str) -> bool:
    """Unpin and delete. The kernel frees the namespace (and the veth in it) asynchronously once
    nothing else holds it. Returns False if path did not exist."""
    if not os.path.lexists(path):
        return False
    _mount.umount_quiet(path, _mount.MNT_DETACH | _mount.UMOUNT_NOFOLLOW)
    _unlink(path)
    return True


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def is_netns(path: str) -> bool:
    """True if path is a pinned network namespace (a bind mount of an nsfs inode)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    try:
        parent = os.stat(os.path.dirname(path) or ".")
    except OSError:
        return False
    return st.st_dev != parent.st_dev


def inode(path: str) -> Optional[int]:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None
