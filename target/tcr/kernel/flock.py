"""Exclusive, non-blocking flock on a lock file, naming the holder when it is taken.

The holder's pid comes from /proc/locks (matched by the lock file's inode), which is right even if
the holder never wrote its pid; the pid written into the file is the fallback. The lock file is
never unlinked: unlinking a lock file lets two processes lock two different inodes.
"""

from __future__ import annotations

import errno
import fcntl
import os

from tcr.common.errors import TcrError

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Optional


class LockBusy(TcrError):
    def __init__(self, message: str, holder: Optional[int]):
        super().__init__(message)
        self.holder = holder


def parse_proc_locks(text: str, dev_major: int, dev_minor: int, ino: int) -> Optional[int]:
    """The pid holding an FLOCK on (device, inode) according to /proc/locks content, or None."""
    for line in text.splitlines():
        parts = line.split()
        if "->" in parts:  # a blocked waiter, not the holder
            continue
        if len(parts) < 6 or parts[1] != "FLOCK":
            continue
        try:
            pid = int(parts[4])
            maj, mnr, inode = parts[5].split(":")
            if int(maj, 16) == dev_major and int(mnr, 16) == dev_minor and int(inode) == ino:
                return pid if pid > 0 else None
        except ValueError:
            continue
    return None


def holder_pid(fd: int) -> Optional[int]:
    st = os.fstat(fd)
    try:
        with open("/proc/locks") as f:
            pid = parse_proc_locks(f.read(), os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
        if pid:
            return pid
    except OSError:
        pass
    try:
        data = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(data) if data.isdigit() else None
    except (OSError, ValueError):
        return None


class FileLock:
    """`with FileLock(path, what="state root X"):` holds an exclusive flock or raises LockBusy."""

    def __init__(self, path: str, what: Optional[str] = None, holder_name: str = "tcrd"):
        self.path = path
        self.what = what or path
        self.holder_name = holder_name
        self.fd: Optional[int] = None

    def acquire(self) -> FileLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                os.close(fd)
                raise TcrError(f"cannot lock {self.path}: {exc.strerror}")
            pid = holder_pid(fd)
            os.close(fd)
            who = f"{self.holder_name} (pid {pid})" if pid else self.holder_name
            raise LockBusy(f"{self.what} is in use by {who}", pid)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the last fd drops the flock
            self.fd = None

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
