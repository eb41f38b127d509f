"""Architectures: user spellings -> OCI platform (architecture, variant), and index selection.

image-info.json records `amd64`, `arm64`, `arm/v7` ... (variant only where it matters: 32-bit arm).
"""

import os
from typing import Any, Dict, List, Optional, Tuple

from tcr.common.errors import ImageNotFound, UsageError

_ALIASES = {
    "x86_64": ("amd64", ""), "amd64": ("amd64", ""), "x86-64": ("amd64", ""),
    "aarch64": ("arm64", ""), "arm64": ("arm64", ""), "arm64/v8": ("arm64", ""), "armv8": ("arm64", ""),
    "arm": ("arm", ""), "armhf": ("arm", "v7"), "armv7": ("arm", "v7"), "armv7l": ("arm", "v7"),
    "armel": ("arm", "v6"), "armv6": ("arm", "v6"), "armv6l": ("arm", "v6"), "armv5": ("arm", "v5"),
    "i386": ("386", ""), "i686": ("386", ""), "386": ("386", ""),
    "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", ""),
    "mips64le": ("mips64le", ""), "mipsle": ("mipsle", ""), "loong64": ("loong64", ""),
}
# The variant an image without one is assumed to have (as containerd does).
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}


def parse_arch(spec: str) -> Tuple[str, str]:
    """'arm/v7' -> ('arm', 'v7'); 'aarch64' -> ('arm64', ''). Raises UsageError."""
    s = spec.strip().lower()
    if s.startswith("linux/"):
        s = s[len("linux/"):]
    if s in _ALIASES:
        return _ALIASES[s]
    arch, _, variant = s.partition("/")
    if arch in _ALIASES and variant and variant[0] == "v" and variant[1:].isdigit():
        base = _ALIASES[arch][0]
        return (base, "" if base == "arm64" and variant == "v8" else variant)
    raise UsageError(f"unknown architecture {spec!r} (e.g. amd64, arm64, arm/v7)")


def host_arch() -> Tuple[str, str]:
    try:
        return parse_arch(os.uname().machine)
    except UsageError:
        return (os.uname().machine, "")


def arch_label(arch: str, variant: str = "") -> str:
    """The image-info.json spelling: 'amd64', 'arm64', 'arm/v7' (the arm64 v8 variant is implied)."""
    variant = variant or ""
    if not variant or (arch == "arm64" and variant == "v8"):
        return arch
    return f"{arch}/{variant}"


def platform_label(platform: Dict[str, Any]) -> str:
    return f"{platform.get('os', '?')}/" + arch_label(str(platform.get("architecture", "?")),
                                                     str(platform.get("variant", "")))


def matches(platform: Dict[str, Any], arch: str, variant: str) -> bool:
    if platform.get("os", "linux") != "linux" or platform.get("architecture") != arch:
        return False
    if not variant:
        return True
    have = platform.get("variant") or _DEFAULT_VARIANT.get(arch, "")
    return have == variant


def select_manifest(manifests: List[Dict[str, Any]], arch: str, variant: str, what: str) -> Dict[str, Any]:
    """Pick the descriptor for arch/variant from an image index's manifests (pure).

    Without a requested variant the platform's default variant (or none) is preferred.
    Raises ImageNotFound naming the platforms the index has.
    """
    found = [m for m in manifests if isinstance(m, dict) and isinstance(m.get("platform"), dict)
             and matches(m["platform"], arch, variant)]
    if not found:
        have = sorted({platform_label(m["platform"]) for m in manifests
                       if isinstance(m, dict) and isinstance(m.get("platform"), dict)
                       and m["platform"].get("architecture") not in (None, "unknown")})
        raise ImageNotFound(f"{what} has no image for linux/{arch_label(arch, variant)}"
                            f" (it has: {', '.join(have) or 'none'})", hint="choose one with --arch")
    if not variant:
        preferred = _DEFAULT_VARIANT.get(arch, "")
        for m in found:
            if m["platform"].get("variant", "") in ("", preferred):
                return m
    return found[0]


def skopeo_overrides(arch: Optional[Tuple[str, str]]) -> List[str]:
    """Global skopeo options that make it pick arch/variant from a multi-arch image."""
    if not arch:
        return []
    out = ["--override-os", "linux", "--override-arch", arch[0]]
    if arch[1]:
        out += ["--override-variant", arch[1]]
    return out
