"""Bounded reads of files named by a client or found in an image.

A client can name a FIFO (blocks the one-threaded daemon forever), /dev/zero (endless), or a
huge file; an image can carry a giant config.json. Every such read goes through read_bytes():
opened with O_NONBLOCK so a FIFO cannot block the open, refused unless it is a regular file,
and refused beyond a size cap, which is checked both from fstat and while reading (a file that
grows under us is still cut off).
"""

from __future__ import annotations

import errno
import os
import stat

from tcr.common.errors import HostError, InvalidArgument, TcrError

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Optional

KiB = 1024
MiB = 1024 * KiB

# Documented caps (docs/reliability.md, "Bounded reads").
ENV_FILE_CAP = 1 * MiB          # --env-file
RUN_CONFIG_CAP = 1 * MiB        # --config JSON run file of the C tool
IMAGE_CONFIG_CAP = 256 * KiB    # bundle/config.json inside an image
IMAGE_INFO_CAP = 64 * KiB       # image-info.json inside an image
SIDECAR_CAP = 4 * KiB           # FILE.sqfs.sha256


def read_bytes(path: str, cap: int, what: Optional[str] = None, dir_fd: Optional[int] = None) -> bytes:
    """The content of the regular file at `path`, at most `cap` bytes, never blocking.

    Raises InvalidArgument (one line, naming `what` or the path) when the file is missing, not a
    regular file, or larger than `cap`.
    """
    label = what or path
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as e:
        raise _error(label, e)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidArgument(f"{label}: not a regular file")
        if st.st_size > cap:
            raise InvalidArgument(f"{label}: too large ({st.st_size} bytes, at most {cap})")
        chunks = []
        total = 0
        while True:
            try:
                b = os.read(fd, min(cap + 1 - total, 256 * KiB))
            except OSError as e:
                raise _error(label, e)
            if not b:
                break
            chunks.append(b)
            total += len(b)
            if total > cap:
                raise InvalidArgument(f"{label}: too large (more than {cap} bytes)")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _error(label: str, e: OSError) -> TcrError:
    if e.errno == errno.EIO:  # the storage, not the input: say where to look
        return HostError(f"{label}: I/O error: check the storage (dmesg)")
    return InvalidArgument(f"{label}: {e.strerror or e}")


def read_text(path: str, cap: int, what: Optional[str] = None, dir_fd: Optional[int] = None) -> str:
    """read_bytes() decoded as UTF-8; undecodable content is a one-line InvalidArgument."""
    data = read_bytes(path, cap, what, dir_fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidArgument(f"{what or path}: not UTF-8 text (byte {e.start})")
