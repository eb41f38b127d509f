"""The daemon's side of precompiled seccomp filters: a cache, filled by a short-lived worker.

Compiling a filter (tcr.containers.seccomp_bpf: libseccomp through ctypes) allocates ~4 MB in
many small objects; done in tcrd, that memory would stay in its heap for good (docs/profile.md).
So the daemon never compiles: a run whose filter is not cached yet starts without the
annotation (crun compiles it itself, ~10 ms, as it always did) and a forked worker
(tcr.daemon.worker) compiles it meanwhile; every later run with the same filter gets the
finished program. A filter that cannot be precompiled is remembered as such; a worker that fails
is not (the next run tries again).
"""

from __future__ import annotations

from tcr.common import jsonc
from tcr.common.log import get_logger

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Set

ANNOTATION = "run.oci.seccomp_bpf_data"  # = seccomp_bpf.ANNOTATION (not imported: it loads ctypes)

log = get_logger("tcr.seccomp")

_cache: Dict[str, Optional[str]] = {}  # filter (canonical JSON) -> base64 program, None: crun's job
_compiling: Set[str] = set()


def compile_b64(oci: Dict[str, Any]) -> Optional[str]:
    """Runs in the worker: the base64 BPF program, or None if crun should compile it itself."""
    import binascii

    from tcr.containers import seccomp_bpf

    bpf = seccomp_bpf.compile(oci)
    return None if bpf is None else binascii.b2a_base64(bpf, newline=False).decode("ascii")


def annotate(config: Dict[str, Any], loop: Any = None) -> bool:
    """Add the cached program for config's linux.seccomp; on a miss start a worker (with a loop)
    or compile here (without one: tools and tests). Returns True if the annotation was added."""
    oci = (config.get("linux") or {}).get("seccomp")
    if not oci:
        return False
    key = jsonc.dumps(oci, sort_keys=True, ascii=True)
    if key not in _cache:
        if loop is None:
            _cache[key] = compile_b64(oci)
        else:
            _start(loop, key, oci)
            return False
    b64 = _cache[key]
    if b64 is None:
        return False
    config.setdefault("annotations", {})[ANNOTATION] = b64
    return True


def _start(loop: Any, key: str, oci: Dict[str, Any]) -> None:
    if key in _compiling:
        return
    from tcr.common.errors import TcrError
    from tcr.daemon import worker

    def done(result: Any) -> None:
        _compiling.discard(key)
        if isinstance(result, TcrError):
            log.debug("seccomp filter not precompiled: %s", result)
            return
        _cache[key] = result if isinstance(result, str) else None

    try:
        worker.spawn(loop, compile_b64, (oci,), what="seccomp compile", on_done=done, timeout=60)
    except TcrError as exc:  # too many workers, fork failed: crun compiles, we try next time
        log.debug("seccomp filter not precompiled: %s", exc)
        return
    _compiling.add(key)


def clear() -> None:
    """Forget every cached program (tests)."""
    _cache.clear()
    _compiling.clear()
