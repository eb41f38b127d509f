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


def test_c_buffer_holds_a_copy_at_a_stable_address():
    import ctypes

    from tcr.kernel.libc import addressof, c_buffer

    buf = c_buffer(b"\x06\x00\x00\x00\x00\x00\x00\x00")
    addr = addressof(buf)
    assert ctypes.string_at(addr, 8) == b"\x06" + bytes(7)
    assert addressof(buf) == addr
