"""tcr.kernel.libc: libc through _ctypes, errno kept like ctypes' use_errno."""

import errno

from tcr.kernel.libc import errno as libc_errno
from tcr.kernel.libc import libc


def test_failed_call_returns_minus_one_and_sets_errno():
    rc = libc().umount2(b"/nonexistent/tcr-libc-test", 0)
    assert rc == -1
    assert libc_errno() in (errno.ENOENT, errno.EPERM)


def test_argument_types_are_checked():
    import _ctypes

    import pytest

    with pytest.raises(_ctypes.ArgumentError):  # a str where char* is declared
        libc().umount2("/not-bytes", 0)


def test_same_object_every_time():
    assert libc() is libc()
