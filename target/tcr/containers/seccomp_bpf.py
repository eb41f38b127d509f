"""Compile an OCI linux.seccomp into the BPF program crun would load, once per profile.

crun (1.8) compiles linux.seccomp with libseccomp in every `crun run`: ~10 ms of a ~35 ms start on
the reference machine, for a filter that is the same for every container with the same caps.
crun also accepts the finished program in the `run.oci.seccomp_bpf_data` annotation (base64; used
by podman for the same reason) and then skips libseccomp. This module does crun's compilation here
through libseccomp (ctypes), with crun's rules (libcrun_generate_seccomp): same default action,
architectures, skipped rules equal to the default, unknown syscalls ignored, one rule per argument
when an argument index repeats. test/root/test_seccomp_bpf.py checks the bytes against the
seccomp.bpf crun itself wrote. linux.seccomp stays in the config (flags, inspection).

Anything this code does not know (an action, operator or field, or no libseccomp) makes compile()
return None and crun compiles as before: the annotation is only ever a cache.
"""

from __future__ import annotations

import binascii
import ctypes
import json
import os

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

ANNOTATION = "run.oci.seccomp_bpf_data"

_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
    "SCMP_ACT_LOG": 0x7FFC0000,
}
_WITH_ERRNO = {"SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000}
_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
        "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
_EPERM = 1
_KNOWN_TOP = {"defaultAction", "defaultErrnoRet", "architectures", "syscalls"}
_KNOWN_RULE = {"names", "action", "errnoRet", "args"}


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


_lib: Any = None
_cache: Dict[str, Optional[bytes]] = {}


def _libseccomp() -> Any:
    global _lib
    if _lib is None:
        try:  # the soname crun links (no ctypes.util.find_library: it runs ldconfig)
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError:
            _lib = False
            return _lib
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                               ctypes.POINTER(_ArgCmp)]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        _lib = lib
    return _lib


def _action(name: Any, errno_ret: Any) -> Optional[int]:
    if name in _ACTIONS:
        return _ACTIONS[name] if errno_ret is None else None  # crun refuses errnoRet there
    if name in _WITH_ERRNO:
        return _WITH_ERRNO[name] | ((_EPERM if errno_ret is None else int(errno_ret)) & 0xFFFF)
    return None


def compile(oci: Dict[str, Any]) -> Optional[bytes]:  # noqa: A001 - the module's verb
    """The BPF program for an OCI linux.seccomp, or None if crun should compile it itself."""
    key = json.dumps(oci, sort_keys=True)  # ~0.1 ms; keyed by content, so a changed dict recompiles
    if key not in _cache:
        try:
            _cache[key] = _compile(oci)
        except (TypeError, ValueError, KeyError, AttributeError, OSError):
            _cache[key] = None
    return _cache[key]


def annotate(config: Dict[str, Any]) -> bool:
    """Add the compiled filter of config's linux.seccomp as crun's annotation; False if not done."""
    oci = (config.get("linux") or {}).get("seccomp")
    if not oci:
        return False
    bpf = compile(oci)
    if bpf is None:
        return False
    config.setdefault("annotations", {})[ANNOTATION] = binascii.b2a_base64(bpf, newline=False).decode("ascii")
    return True


def _compile(oci: Dict[str, Any]) -> Optional[bytes]:
    if set(oci) - _KNOWN_TOP:
        return None  # flags, listenerPath ...: leave those to crun
    lib = _libseccomp()
    if not lib:
        return None
    default = _action(oci.get("defaultAction"), oci.get("defaultErrnoRet"))
    if default is None:
        return None
    rules: List[Any] = []
    for r in oci.get("syscalls") or []:
        if set(r) - _KNOWN_RULE:
            return None
        action = _action(r.get("action"), r.get("errnoRet"))
        if action is None:
            return None
        args = r.get("args") or []
        cmps = []
        for a in args[:6]:
            op = _OPS.get(a.get("op"))
            idx = int(a.get("index", 0))
            if op is None or not 0 <= idx < 6:
                return None
            cmps.append(_ArgCmp(idx, op, int(a.get("value", 0)), int(a.get("valueTwo", 0))))
        rules.append((action, list(r.get("names") or []), cmps, bool(r.get("args") is not None)))
    ctx = lib.seccomp_init(default)
    if not ctx:
        return None
    try:
        for arch in oci.get("architectures") or []:
            a = str(arch)
            a = a[10:] if a.startswith("SCMP_ARCH_") else a
            token = lib.seccomp_arch_resolve_name(a.lower().encode())
            if token == 0:
                return None
            ret = lib.seccomp_arch_add(ctx, token)
            if ret < 0 and ret != -17:  # -EEXIST: the native arch is already in
                return None
        for action, names, cmps, has_args in rules:
            if action == default:
                continue  # crun skips these (libseccomp would refuse them)
            indexes = [c.arg for c in cmps]
            multiple = len(set(indexes)) != len(indexes)
            for n in names:
                nr = lib.seccomp_syscall_resolve_name(str(n).encode())
                if nr == -1:
                    continue  # unknown here: crun warns and ignores it too
                if not has_args or not multiple:
                    arr = (_ArgCmp * max(len(cmps), 1))(*cmps)
                    if lib.seccomp_rule_add_array(ctx, action, nr, len(cmps) if has_args else 0, arr) < 0:
                        return None
                else:
                    for cmp in cmps:
                        if lib.seccomp_rule_add_array(ctx, action, nr, 1, (_ArgCmp * 1)(cmp)) < 0:
                            return None
        fd = os.memfd_create("tcr-seccomp", os.MFD_CLOEXEC)
        try:
            if lib.seccomp_export_bpf(ctx, fd) < 0:
                return None
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while True:
                b = os.read(fd, 65536)
                if not b:
                    break
                chunks.append(b)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    data = b"".join(chunks)
    return data if data and len(data) % 8 == 0 else None
