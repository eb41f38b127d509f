"""Loop devices from Python: /dev/loop-control + ioctls, no losetup subprocess.

attach() returns an open fd on the configured device. With LO_FLAGS_AUTOCLEAR the kernel releases
the device as soon as its last fd is closed *while nothing is mounted from it*: keep the returned fd
open until the mount succeeded, then close it (the mount then holds the device, and unmounting
frees it). Closing it earlier loses the device before the mount on current kernels.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct

from tcr.common.errors import HostError
from tcr.common.record import dataclass

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Dict, List, Optional

LOOP_SET_FD = 0x4C00
LOOP_CLR_FD = 0x4C01
LOOP_SET_STATUS64 = 0x4C04
LOOP_GET_STATUS64 = 0x4C05
LOOP_CONFIGURE = 0x4C0A
LOOP_CTL_GET_FREE = 0x4C82

LO_FLAGS_READ_ONLY = 1
LO_FLAGS_AUTOCLEAR = 4
LO_FLAGS_PARTSCAN = 8
LO_FLAGS_DIRECT_IO = 16

LOOP_MAJOR = 7
CONTROL = "/dev/loop-control"
SYS_BLOCK = "/sys/block"

# struct loop_info64: 5 x u64, 4 x u32, file_name[64], crypt_name[64], encrypt_key[32], u64 init[2]
_INFO64 = "QQQQQIIII64s64s32s2Q"
INFO64_SIZE = struct.calcsize("=" + _INFO64)  # 232
# struct loop_config: u32 fd, u32 block_size, struct loop_info64, u64 reserved[8]
_CONFIG = "=II" + _INFO64 + "8Q"
CONFIG_SIZE = struct.calcsize(_CONFIG)  # 304

MAX_ATTEMPTS = 32  # LOOP_CTL_GET_FREE races with other processes grabbing the same device
NO_FREE_LOOP = "no free loop device; load fewer images or raise max_loop"
# What LOOP_CTL_GET_FREE says when every device is taken and no new one may be made (max_loop,
# or the minor numbers are exhausted): reported as NO_FREE_LOOP, not "No space left on device".
_EXHAUSTED = (errno.ENOSPC, errno.ENODEV, errno.ENXIO, errno.EMLINK)


class NoFreeLoopDevice(HostError):
    pass


@dataclass
class LoopDevice:
    number: int
    fd: int  # the open device; close() it once the mount holds the device

    @property
    def path(self) -> str:
        return f"/dev/loop{self.number}"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


MISC_MAJOR = 10
LOOP_CTRL_MINOR = 237


def ensure_control(control: str = CONTROL) -> bool:
    """True once `control` (/dev/loop-control) exists, making the node if it is missing.

    Without udev (BusyBox init, boards without mdev) nothing creates it while loop is a module
    that is not loaded yet (systemd's kmod static-nodes does, under systemd). Opening the misc
    node 10:237 makes the kernel load the module (alias char-major-10-237); once loaded,
    devtmpfs adds the /dev/loopN nodes itself. If the open fails (no loop driver), the node made
    here is removed again and the caller reports loop as missing.
    """
    if os.path.exists(control):
        return True
    try:
        os.mknod(control, stat.S_IFCHR | 0o600, os.makedev(MISC_MAJOR, LOOP_CTRL_MINOR))
    except FileExistsError:
        return True
    except OSError:
        return False
    try:
        os.close(os.open(control, os.O_RDWR | os.O_CLOEXEC))
        return True
    except OSError:
        try:
            os.unlink(control)
        except OSError:
            pass
        return False


def _info64(flags: int, name: str) -> tuple:
    return (0, 0, 0, 0, 0, 0, 0, 0, flags, os.fsencode(name)[:63], b"", b"", 0, 0)


def pack_config(backing_fd: int, flags: int, name: str = "") -> bytes:
    return struct.pack(_CONFIG, backing_fd, 0, *_info64(flags, name), *([0] * 8))


def pack_info64(flags: int, name: str = "") -> bytes:
    return struct.pack("=" + _INFO64, *_info64(flags, name))


def unpack_info64_flags(buf: bytes) -> int:
    return struct.unpack("=" + _INFO64, buf)[8]


def _open_device(n: int) -> int:
    path = f"/dev/loop{n}"
    try:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        # No devtmpfs/udev node yet (minimal /dev): create it ourselves.
        try:
            os.mknod(path, stat.S_IFBLK | 0o660, os.makedev(LOOP_MAJOR, n))
        except FileExistsError:
            pass
        return os.open(path, os.O_RDWR | os.O_CLOEXEC)


def _configure(dev_fd: int, backing_fd: int, flags: int, name: str) -> None:
    try:
        fcntl.ioctl(dev_fd, LOOP_CONFIGURE, pack_config(backing_fd, flags, name))
        return
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTTY):  # EINVAL/ENOTTY: kernel < 5.8
            raise
    fcntl.ioctl(dev_fd, LOOP_SET_FD, backing_fd)
    try:
        # READ_ONLY follows from the O_RDONLY backing fd; SET_STATUS64 sets AUTOCLEAR.
        fcntl.ioctl(dev_fd, LOOP_SET_STATUS64, pack_info64(flags & ~LO_FLAGS_READ_ONLY, name))
    except OSError:
        try:
            fcntl.ioctl(dev_fd, LOOP_CLR_FD, 0)
        except OSError:
            pass
        raise


def attach(backing: str, read_only: bool = True, autoclear: bool = True) -> LoopDevice:
    """Attach backing to a free loop device. The caller owns the returned fd (see module doc)."""
    flags = (LO_FLAGS_READ_ONLY if read_only else 0) | (LO_FLAGS_AUTOCLEAR if autoclear else 0)
    bfd = os.open(backing, (os.O_RDONLY if read_only else os.O_RDWR) | os.O_CLOEXEC)
    try:
        ctl = os.open(CONTROL, os.O_RDWR | os.O_CLOEXEC)
        try:
            for _ in range(MAX_ATTEMPTS):
                try:
                    n = fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)
                except OSError as exc:
                    if exc.errno in _EXHAUSTED:
                        raise NoFreeLoopDevice(NO_FREE_LOOP)
                    raise
                try:
                    dev_fd = _open_device(n)
                except OSError as exc:
                    if exc.errno in (errno.EBUSY, errno.ENXIO, errno.ENOENT):
                        continue
                    raise
                try:
                    _configure(dev_fd, bfd, flags, os.path.abspath(backing))
                except OSError as exc:
                    os.close(dev_fd)
                    if exc.errno == errno.EBUSY:  # someone else took it between GET_FREE and us
                        continue
                    raise
                return LoopDevice(n, dev_fd)
            raise NoFreeLoopDevice(NO_FREE_LOOP)  # every free one was taken by others first
        finally:
            os.close(ctl)
    finally:
        os.close(bfd)  # the device holds its own reference to the file


def open_existing(n: int) -> LoopDevice:
    return LoopDevice(n, os.open(f"/dev/loop{n}", os.O_RDONLY | os.O_CLOEXEC))


def detach(n: int) -> None:
    fd = os.open(f"/dev/loop{n}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, LOOP_CLR_FD, 0)
    finally:
        os.close(fd)


def flags(n: int) -> int:
    fd = os.open(f"/dev/loop{n}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        buf = fcntl.ioctl(fd, LOOP_GET_STATUS64, bytes(INFO64_SIZE))
    finally:
        os.close(fd)
    return unpack_info64_flags(buf)


def backing_file(n: int) -> Optional[str]:
    """The backing file of loopN per sysfs, or None if it is not attached."""
    try:
        with open(os.path.join(SYS_BLOCK, f"loop{n}", "loop", "backing_file")) as f:
            return f.read().rstrip("\n")
    except OSError:
        return None


def attached() -> Dict[int, str]:
    """{N: backing file} for every attached loop device."""
    out: Dict[int, str] = {}
    try:
        names = os.listdir(SYS_BLOCK)
    except OSError:
        return out
    for name in names:
        if name.startswith("loop") and name[4:].isdigit():
            bf = backing_file(int(name[4:]))
            if bf is not None:
                out[int(name[4:])] = bf
    return out


def find_by_backing(path: str) -> List[int]:
    """Loop devices backed by path (compared by the sysfs path; ' (deleted)' files never match)."""
    real = os.path.realpath(path)
    return sorted(n for n, bf in attached().items() if bf == real)


def number_of(dev: str) -> Optional[int]:
    """'/dev/loop7' -> 7; anything else -> None."""
    base = os.path.basename(dev)
    return int(base[4:]) if base.startswith("loop") and base[4:].isdigit() else None
