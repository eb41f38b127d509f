"""mount(2) and umount2(2) through tcr.kernel.libc (no mount(8) subprocess on the hot path)."""

from __future__ import annotations

import errno
import os

from tcr.kernel.libc import errno as libc_errno
from tcr.kernel.libc import libc

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Optional

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19

MNT_FORCE = 1
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8



def _b(s: Optional[str]) -> Optional[bytes]:
    return None if s is None else os.fsencode(s)


def mount(source: Optional[str], target: str, fstype: Optional[str], flags: int = 0,
          data: Optional[str] = None) -> None:
    """Raise OSError (with errno and both paths) on failure."""
    if libc().mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        e = libc_errno()
        raise OSError(e, f"mount {source} on {target} ({fstype}): {os.strerror(e)}")


def umount(target: str, flags: int = UMOUNT_NOFOLLOW) -> None:
    if libc().umount2(_b(target), flags) != 0:
        e = libc_errno()
        raise OSError(e, f"umount {target}: {os.strerror(e)}")


def umount_quiet(target: str, flags: int = UMOUNT_NOFOLLOW) -> bool:
    """umount, treating 'not mounted' as success. Returns False if it is busy or failed."""
    try:
        umount(target, flags)
        return True
    except OSError as exc:
        return exc.errno in (errno.EINVAL, errno.ENOENT)
