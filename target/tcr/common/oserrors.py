"""Host failures (full disk, fd limit, I/O errors) as one clear line, and warnings at a bounded rate.

An OSError nobody expected must never reach a client as "internal error: OSError ..." nor fill the
daemon's log with tracebacks. describe() turns it into one line a user can act on:

    no space left on /var/lib/tcr (ext4 on /dev/mmcblk0p3, mounted at /var/lib/tcr): 0 B free of 1.9 GiB
    tcrd is out of file descriptors (limit 64); close idle clients or raise LimitNOFILE
    I/O error on /var/lib/tcr/containers/...: check the storage (dmesg)

RateLimit lets a condition that repeats (every log line of a chatty container on a full disk,
every accept() at the fd limit) be logged once per interval with a count of what was suppressed.
"""

from __future__ import annotations

import errno
import os
import time

from tcr.common.errors import HostError, TcrError
from tcr.common.log import INFO, WARNING

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple

    from tcr.common.log import Logger

# Where a write without a file name (os.write on an open fd) most likely went: the daemon sets it
# to its state root at start.
default_path = "/"

SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
FD_ERRNOS = (errno.EMFILE, errno.ENFILE)


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _existing(path: str) -> str:
    p = os.path.abspath(path)
    while p != "/" and not os.path.exists(p):
        p = os.path.dirname(p)
    return p


def filesystem_of(path: str) -> Tuple[str, str, str]:
    """(mount point, fs type, source) of the filesystem holding path; best effort."""
    from tcr.kernel import mountinfo

    p = os.path.realpath(_existing(path))
    best = None
    try:
        for m in mountinfo.read():
            mp = m.mount_point
            inside = p == mp or p.startswith(mp.rstrip("/") + "/")
            if inside and (best is None or len(mp) >= len(best.mount_point)):
                best = m
    except OSError:
        best = None
    if best is None:
        return "/", "?", "?"
    return best.mount_point, best.fstype, best.source


def space_line(path: str) -> str:
    """'no space left on PATH (FSTYPE on SOURCE, mounted at MP): FREE free of TOTAL'."""
    p = _existing(path)
    mp, fstype, source = filesystem_of(p)
    try:
        st = os.statvfs(p)
        free = f"{human_size(st.f_bavail * st.f_frsize)} free of {human_size(st.f_blocks * st.f_frsize)}"
        if st.f_files and st.f_favail == 0:
            free += ", no free inodes"
    except OSError:
        free = "free space unknown"
    return f"no space left on {path} ({fstype} on {source}, mounted at {mp}): {free}"


def fd_line() -> str:
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        limit = f" (limit {soft})"
    except (ImportError, OSError, ValueError):
        limit = ""
    return f"tcrd is out of file descriptors{limit}; close idle clients or raise LimitNOFILE"


def describe(exc: BaseException, path: Optional[str] = None) -> str:
    """One line for any exception; OSErrors of the host get what the user needs to act on."""
    if isinstance(exc, TcrError):
        return exc.message
    if isinstance(exc, OSError):
        where = path or (exc.filename if isinstance(exc.filename, str) else None) or default_path
        if exc.errno in SPACE_ERRNOS:
            return space_line(where)
        if exc.errno in FD_ERRNOS:
            return fd_line()
        if exc.errno == errno.EIO:
            return f"I/O error on {where}: check the storage (dmesg)"
        if exc.errno == errno.EROFS:
            return f"read-only file system: {where}"
        name = errno.errorcode.get(exc.errno or 0, "")
        text = exc.strerror or str(exc) or type(exc).__name__
        return f"{text} ({name}): {where}" if name else f"{text}: {where}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"internal error: {type(exc).__name__}" + (f": {text}" if text else "")


def to_error(exc: BaseException, path: Optional[str] = None) -> TcrError:
    """A TcrError for any exception (TcrErrors pass through unchanged)."""
    if isinstance(exc, TcrError):
        return exc
    return HostError(describe(exc, path)[:500])


def is_host_error(exc: BaseException) -> bool:
    """An error of the host rather than of tcr's logic: no traceback needed to explain it."""
    return isinstance(exc, OSError) and exc.errno in SPACE_ERRNOS + FD_ERRNOS + (errno.EIO, errno.EROFS)


class RateLimit:
    """At most one message per key per interval; the next one says how many were suppressed."""

    def __init__(self, interval: float = 60.0, max_keys: int = 256):
        self.interval = interval
        self.max_keys = max_keys
        self._last: Dict[str, Tuple[float, int]] = {}

    def allow(self, key: str, now: Optional[float] = None) -> Tuple[bool, int]:
        """(may log now, number suppressed since the last one logged)."""
        t = time.monotonic() if now is None else now
        last = self._last.get(key)
        if last is not None and t - last[0] < self.interval:
            self._last[key] = (last[0], last[1] + 1)
            return False, 0
        if last is None and len(self._last) >= self.max_keys:  # bounded memory for unbounded keys
            self._last.clear()
        self._last[key] = (t, 0)
        return True, 0 if last is None else last[1]

    def log(self, logger: Logger, level: int, key: str, message: str, *args: object) -> bool:
        ok, suppressed = self.allow(key)
        if ok:
            if suppressed:
                message += f" ({suppressed} more like this suppressed)"
            (logger.warning if level >= WARNING else logger.info if level >= INFO else logger.debug)(
                message, *args)
        return ok


# One limiter for the whole daemon's host-failure warnings.
WARNINGS = RateLimit(60.0)


def warn(logger: Logger, key: str, message: str, *args: object) -> bool:
    return WARNINGS.log(logger, WARNING, key, message, *args)
