"""The C library for the few syscalls Python's os module lacks (mount, umount2, setns, unshare, prctl),
and glibc's malloc_trim (heap_trim()).

Through _ctypes (the C half of ctypes) directly: the ctypes package costs tcrd ~0.4 MB resident
(its Python half, ctypes._endian, struct types it never uses) for five functions. dlopen(NULL) is
the libc already mapped into the interpreter: ctypes.util.find_library would run ldconfig (a
subprocess outside tcr.common.run, and tens of ms at daemon start).

    libc().mount(b"src", b"dst", b"squashfs", flags, None) -> int; errno() after a -1
"""

from __future__ import annotations

import _ctypes

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any


class c_int(_ctypes._SimpleCData):  # noqa: N801 - ctypes' names
    _type_ = "i"


class c_ulong(_ctypes._SimpleCData):  # noqa: N801
    _type_ = "L"


class c_char_p(_ctypes._SimpleCData):  # noqa: N801 - bytes or None
    _type_ = "z"


class c_char(_ctypes._SimpleCData):  # noqa: N801
    _type_ = "c"


def c_buffer(data: bytes) -> Any:
    """A C copy of data whose address (`addressof()`) stays valid while the object lives
    (ctypes.create_string_buffer without the ctypes package)."""
    array_type: Any = type("c_char_Array", (_ctypes.Array,), {"_type_": c_char, "_length_": len(data)})
    return array_type.from_buffer_copy(data)


def addressof(obj: Any) -> int:
    return int(_ctypes.addressof(obj))


class _Func(_ctypes.CFuncPtr):
    """A C function returning int, errno saved for errno() (ctypes' use_errno=True)."""

    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class _Libc:
    _SIGNATURES = {
        "mount": (c_char_p, c_char_p, c_char_p, c_ulong, c_char_p),
        "umount2": (c_char_p, c_int),
        "unshare": (c_int,),
        "setns": (c_int, c_int),
        "prctl": None,  # variadic: ints, converted as C int
        "syscall": None,  # variadic: small ints and bytes (passed as pointers) only
    }

    def __init__(self) -> None:
        self._handle = _ctypes.dlopen(None, 0)  # type: ignore[arg-type]  # NULL: the running program
        for name, argtypes in self._SIGNATURES.items():
            fn = _Func((name, self))  # type: ignore[arg-type]  # any object with _handle
            if argtypes is not None:
                fn.argtypes = argtypes
            setattr(self, name, fn)

    if TYPE_CHECKING:
        def __getattr__(self, name: str) -> Any: ...


_libc = None


def libc() -> Any:
    global _libc
    if _libc is None:
        _libc = _Libc()
    return _libc


_trim: Any = None  # malloc_trim, False where the C library has none (musl)


def heap_trim() -> bool:
    """Give the free pages inside the C heap back to the kernel: glibc's malloc_trim(0).

    glibc returns only the heap's top on its own; pages freed below it (code objects of a module
    imported for one request, a reply's buffers) stay resident until this. ~15 us on tcrd's heap.
    False where there is no malloc_trim (musl: its allocator unmaps free memory itself).
    """
    global _trim
    if _trim is None:
        try:
            _trim = _Func(("malloc_trim", libc()))
            _trim.argtypes = (c_ulong,)
        except AttributeError:  # dlsym found no such symbol
            _trim = False
    if _trim is False:
        return False
    _trim(0)
    return True


def errno() -> int:
    """errno as the last call through libc() left it (ctypes.get_errno())."""
    return int(_ctypes.get_errno())
