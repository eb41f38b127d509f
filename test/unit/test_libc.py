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


def test_heap_trim_gives_free_heap_pages_below_the_top_back():
    """glibc keeps freed memory below the heap's top resident until malloc_trim (tcrd calls it when
    its loop goes idle). 16 MB freed under a live block: resident before the trim, not after."""
    import os
    import subprocess
    import sys

    import tcr

    code = """
from tcr.kernel.libc import heap_trim
def anon():
    for ln in open("/proc/self/status"):
        if ln.startswith("RssAnon:"):
            return int(ln.split()[1])
blocks = [bytearray(4000) for _ in range(4000)]  # ~16 MB of heap (over pymalloc's 512 bytes)
keep = bytearray(4000)  # above them: glibc cannot return the freed space as the heap's top
del blocks
before = anon()
print(heap_trim(), before - anon())
"""
    env = dict(os.environ, PYTHONPATH=os.path.dirname(tcr.__path__[0]))
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60,
                         env=env)
    assert out.returncode == 0, out.stderr
    trimmed, released_kb = out.stdout.split()
    assert trimmed == "True"  # glibc (Debian); musl has no malloc_trim and heap_trim says False
    assert int(released_kb) > 12 * 1024
