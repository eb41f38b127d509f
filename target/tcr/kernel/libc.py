"""The C library for the few syscalls Python's os module lacks (mount, umount2, setns, unshare, prctl).

CDLL(None) is the libc already mapped into the interpreter: ctypes.util.find_library would run
ldconfig (a subprocess outside tcr.common.run, and tens of ms at daemon start).
"""

import ctypes

_libc = None


def libc() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                              ctypes.c_char_p]
        lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lib.unshare.argtypes = [ctypes.c_int]
        lib.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        _libc = lib
    return _libc
