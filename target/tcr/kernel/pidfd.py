"""pidfds (Linux 5.3+, Python 3.9+) and docker-style exit codes."""

from __future__ import annotations

import _signal as signal  # not `signal`: its enums bring enum and functools (docs/profile.md)
import os

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Optional

HAVE_PIDFD = hasattr(os, "pidfd_open") and hasattr(os, "P_PIDFD")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_pidfd(pid: int) -> int:
    """A pidfd for pid. Raises ProcessLookupError if it does not exist, OSError if unsupported."""
    return os.pidfd_open(pid)  # type: ignore[attr-defined]


def supported() -> bool:
    if not HAVE_PIDFD:
        return False
    try:
        fd = os.pidfd_open(os.getpid())  # type: ignore[attr-defined]
    except OSError:
        return False
    os.close(fd)
    return True


def send_signal(pidfd: int, sig: int) -> None:
    signal.pidfd_send_signal(pidfd, sig)  # type: ignore[attr-defined]


def code_from_siginfo(si_code: int, si_status: int) -> int:
    """waitid() result -> docker-style code: the exit code, or 128+N for signal N."""
    if si_code == os.CLD_EXITED:
        return si_status
    return 128 + si_status


def code_from_status(status: int) -> int:
    """waitpid() status -> docker-style code."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def reap_pidfd(pidfd: int) -> Optional[int]:
    """Reap the (exited) process behind pidfd if it is our child: docker-style code, else None."""
    try:
        res = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)  # type: ignore[attr-defined]
    except ChildProcessError:
        return None  # not our child (or already reaped by someone else)
    if res is None:
        return None
    return code_from_siginfo(res.si_code, res.si_status)


PR_SET_CHILD_SUBREAPER = 36


def set_child_subreaper() -> None:
    """Orphaned descendants (container processes after crun exits) get re-parented to us."""
    from tcr.kernel.libc import errno as libc_errno
    from tcr.kernel.libc import libc

    if libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        e = libc_errno()
        raise OSError(e, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(e)}")
