"""openat2(2) with RESOLVE_IN_ROOT (Linux 5.6+): open a path as if a directory were `/`.

The kernel resolves every component, `..` and symlinks (absolute ones too) inside that
directory, so a path planted in a container's root cannot lead out of it. Used by the `tcr cp`
worker to find where a stopped container's volumes go before it binds them (tcr.containers.cpworker).
"""

from __future__ import annotations

import os
import struct

from tcr.kernel.libc import errno as libc_errno
from tcr.kernel.libc import libc

SYS_OPENAT2 = 437  # the same number on every architecture (syscalls added since 5.1 are unified)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
O_PATH = getattr(os, "O_PATH", 0o10000000)


def open_in_root(rootfd: int, path: str, flags: int = O_PATH | os.O_CLOEXEC) -> int:
    """An fd for `path` resolved inside the directory rootfd. Raises OSError (ENOSYS on an old
    kernel, ENOENT for a missing path)."""
    how = struct.pack("=QQQ", flags, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    fd = libc().syscall(SYS_OPENAT2, rootfd, path.encode("utf-8", "surrogateescape"), how, len(how))
    if fd < 0:
        e = libc_errno()
        raise OSError(e, os.strerror(e), path)
    return int(fd)
