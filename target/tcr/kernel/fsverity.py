"""fs-verity (Linux 5.4+, ext4 with `-O verity`, f2fs, btrfs 5.15+): the kernel checks every page
read from a file against a Merkle tree, and the file can never be written again.

Detected at run time, per file: enable() returns why it could not be used instead of raising, so
the image store falls back to its own size/mtime/digest record (docs/security.md). Kernels built
without CONFIG_FS_VERITY answer EOPNOTSUPP; filesystems without the feature ENOTTY/EOPNOTSUPP.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Optional, Tuple

FS_IOC_ENABLE_VERITY = 0x40806685   # _IOW('f', 133, struct fsverity_enable_arg) (128 bytes)
FS_IOC_MEASURE_VERITY = 0xC0046686  # _IOWR('f', 134, struct fsverity_digest) (4-byte header)
FS_IOC_GETFLAGS = 0x80086601        # _IOR('f', 1, long)
FS_VERITY_FL = 0x00100000
FS_VERITY_HASH_ALG_SHA256 = 1


def enable_arg(block_size: int = 4096) -> bytes:
    """struct fsverity_enable_arg: version 1, SHA-256, block size, no salt, no signature."""
    return struct.pack("=IIIIQIIQ88x", 1, FS_VERITY_HASH_ALG_SHA256, block_size, 0, 0, 0, 0, 0)


def enable(path: str) -> Tuple[bool, str]:
    """Turn fs-verity on for path (opened read-only; nobody may have it open for writing).

    Returns (True, "") when the file is verity-protected afterwards (also if it already was), or
    (False, reason) when this kernel or filesystem cannot do it.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        try:
            fcntl.ioctl(fd, FS_IOC_ENABLE_VERITY, enable_arg(min(os.sysconf("SC_PAGE_SIZE"), 4096)))
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                return True, ""
            return False, _reason(exc)
        return True, ""
    finally:
        os.close(fd)


def is_enabled(path: str) -> Optional[bool]:
    """Whether path has fs-verity on (FS_VERITY_FL); None when the flags cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        buf = fcntl.ioctl(fd, FS_IOC_GETFLAGS, b"\0" * 8)
    except OSError:
        return None
    finally:
        os.close(fd)
    return bool(struct.unpack_from("=I", buf)[0] & FS_VERITY_FL)  # the kernel writes an int


def _reason(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    if exc.errno == errno.EOPNOTSUPP:
        name = "EOPNOTSUPP"  # errorcode says ENOTSUP, the same number on Linux
    if exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY):
        return f"the kernel or filesystem has no fs-verity ({name})"
    if exc.errno == errno.ETXTBSY:
        return "the file is open for writing (ETXTBSY)"
    return f"{exc.strerror or exc} ({name})"
