"""Seccomp: the default profile (tcr/data/seccomp_default.json) evaluated into an OCI linux.seccomp.

The profile uses the moby/containers-common format: an allow-list with conditional entries
(`includes`/`excludes` on `arches`, `caps` and `minKernel`). Unlike the C implementation, which
drops every conditional entry (so `chroot`, `arch_prctl` ... fail), the conditions are evaluated here
for the native architecture and the granted capabilities, the way docker does it. Pure.
"""

from __future__ import annotations

import os

from tcr.common import jsonc
from tcr.common.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Tuple

# Go/OCI-image arch name -> (native SCMP arch, name used in the profile's includes/excludes.arches,
# extra SCMP arches the native kernel also runs: compat modes).
ARCHES: Dict[str, Tuple[str, str, Tuple[str, ...]]] = {
    "amd64": ("SCMP_ARCH_X86_64", "amd64", ("SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    "386": ("SCMP_ARCH_X86", "x86", ()),
    "arm64": ("SCMP_ARCH_AARCH64", "arm64", ("SCMP_ARCH_ARM",)),
    "arm": ("SCMP_ARCH_ARM", "arm", ()),
    "ppc64le": ("SCMP_ARCH_PPC64LE", "ppc64le", ()),
    "s390x": ("SCMP_ARCH_S390X", "s390x", ("SCMP_ARCH_S390",)),
    "riscv64": ("SCMP_ARCH_RISCV64", "riscv64", ()),
    "mips64le": ("SCMP_ARCH_MIPSEL64", "mips64le", ("SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32")),
}

_DEFAULT_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "seccomp_default.json"
)
def _package_data(path: str) -> bytes:
    """A file shipped inside the tcr package, through the module's loader: the path may lie inside
    the zip of byte code that `make install BYTECODE_ONLY=1` installs on a board."""
    get_data = getattr(globals().get("__loader__"), "get_data", None)
    if get_data is not None:
        data: bytes = get_data(path)
        return data
    with open(path, "rb") as f:
        return f.read()


def load_default() -> Dict[str, Any]:
    """The shipped default profile, parsed anew: ~0.3 ms, once per (arch, caps, kernel) through
    default_for(); keeping it would hold ~60 kB in tcrd for nothing (docs/profile.md)."""
    return jsonc.loads(_package_data(_DEFAULT_PATH))


def _kernel_tuple(v: str) -> Tuple[int, ...]:
    return tuple(int(p) for p in v.split(".") if p.isdigit())


def _applies(
    entry: Dict[str, Any], arch_name: str, caps: Sequence[str], kernel: Optional[Tuple[int, ...]]
) -> bool:
    inc = entry.get("includes") or {}
    exc = entry.get("excludes") or {}
    if arch_name in (exc.get("arches") or []):
        return False
    if any(c in caps for c in (exc.get("caps") or [])):
        return False
    if exc.get("minKernel") and kernel is not None and kernel >= _kernel_tuple(exc["minKernel"]):
        return False
    if inc.get("arches") and arch_name not in inc["arches"]:
        return False
    if inc.get("caps") and not all(c in caps for c in inc["caps"]):
        return False
    # Unknown kernel: a minKernel rule is not granted (fail closed).
    return not (inc.get("minKernel") and (kernel is None or kernel < _kernel_tuple(inc["minKernel"])))


def evaluate(
    profile: Dict[str, Any], arch: str, caps: Sequence[str], kernel: Optional[Tuple[int, ...]] = None
) -> Dict[str, Any]:
    """OCI linux.seccomp for this architecture (Go name: amd64, arm64, arm ...) and capability set.

    Entries that end up with the same action, errno and argument filter are merged into one, so
    the config stays small.
    """
    if arch not in ARCHES:
        raise InvalidArgument(f"no seccomp support for architecture {arch!r}")
    native, arch_name, subs = ARCHES[arch]
    merged: Dict[str, Dict[str, Any]] = {}
    for entry in profile.get("syscalls", []):
        if not _applies(entry, arch_name, caps, kernel):
            continue
        names: List[str] = list(entry.get("names") or ([entry["name"]] if entry.get("name") else []))
        out: Dict[str, Any] = {"names": [], "action": entry["action"]}
        if entry.get("errnoRet") is not None:
            out["errnoRet"] = int(entry["errnoRet"])
        if entry.get("args"):
            out["args"] = [
                {k: a[k] for k in ("index", "value", "valueTwo", "op") if k in a} for a in entry["args"]
            ]
        key = jsonc.dumps([out["action"], out.get("errnoRet"), out.get("args")], sort_keys=True)
        slot = merged.setdefault(key, out)
        for n in names:
            if n not in slot["names"]:
                slot["names"].append(n)
    result: Dict[str, Any] = {
        "defaultAction": profile.get("defaultAction", "SCMP_ACT_ERRNO"),
        "architectures": [native, *subs],
        "syscalls": list(merged.values()),
    }
    if profile.get("defaultErrnoRet") is not None:
        result["defaultErrnoRet"] = int(profile["defaultErrnoRet"])
    return result


_evaluated: Dict[Tuple[str, Tuple[str, ...], Optional[Tuple[int, ...]]], str] = {}


def default_for(arch: str, caps: Sequence[str], kernel: Optional[Tuple[int, ...]] = None) -> Dict[str, Any]:
    """evaluate(load_default(), ...), memoised: the same few (arch, caps, kernel) recur for every
    container and an evaluation costs ~3 ms. Kept as its JSON text (~5 kB instead of ~30 kB of
    lists, dicts and syscall names resident in tcrd) and decoded per call (~15 us): each caller
    gets its own dict."""
    key = (arch, tuple(sorted(set(caps))), kernel)
    text = _evaluated.get(key)
    if text is None:
        if len(_evaluated) >= 64:
            _evaluated.clear()
        text = _evaluated[key] = jsonc.dumps(evaluate(load_default(), arch, caps, kernel))
    result: Dict[str, Any] = jsonc.loads(text)
    return result


def allowed(oci: Dict[str, Any], syscall: str) -> str:
    """How an evaluated filter treats a syscall: 'allow', 'conditional' (allowed for some
    arguments only), or 'deny'. For tests, docs and `tcr inspect`-style explanations."""
    verdict = "deny"
    for e in oci.get("syscalls", []):
        if syscall in e["names"] and e["action"] == "SCMP_ACT_ALLOW":
            if not e.get("args"):
                return "allow"
            verdict = "conditional"
    return verdict
