"""ImageRecord: what tcrd knows about one loaded image (persisted as state kind "images")."""

import os
import platform
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from tcr.common.errors import InvalidArgument
from tcr.formats.image_info import ImageInfo

RECORD_VERSION = 1


@dataclass(frozen=True)
class ImageRecord:
    id: str
    info: ImageInfo
    source: str  # the .sqfs path the user loaded (informational)
    stored: str  # <root>/images/<id>/image.sqfs (hard link or copy; what the loop device reads)
    mountpoint: str  # <root>/images/<id>/mnt
    loop: str = ""  # /dev/loopN while mounted (refreshed at recovery)
    loaded_at: int = 0
    tags: Tuple[str, ...] = field(default_factory=tuple)  # "name:tag" references this image holds
    size: int = 0  # bytes of the stored file
    version: int = RECORD_VERSION

    @property
    def bundle(self) -> str:
        return os.path.join(self.mountpoint, self.info.bundle_path)

    @property
    def rootfs(self) -> str:
        return os.path.join(self.bundle, "rootfs")

    @property
    def config_path(self) -> str:
        return os.path.join(self.bundle, "config.json")

    @property
    def sidecar(self) -> str:
        return self.stored + ".sha256"

    @property
    def display_ref(self) -> str:
        """name:tag while the image holds its tag, else name@digest."""
        return self.tags[0] if self.tags else f"{self.info.name}@{self.info.digest}"

    def to_dict(self) -> Dict[str, Any]:
        return {
            "version": self.version,
            "id": self.id,
            "info": self.info.to_dict(),
            "source": self.source,
            "stored": self.stored,
            "mountpoint": self.mountpoint,
            "loop": self.loop,
            "loadedAt": self.loaded_at,
            "tags": list(self.tags),
            "size": self.size,
        }

    @classmethod
    def from_dict(cls, d: Any) -> "ImageRecord":
        if not isinstance(d, dict):
            raise InvalidArgument("image record is not an object")
        version = d.get("version")
        if version != RECORD_VERSION:
            raise InvalidArgument(f"image record has unsupported version {version!r}")
        info = ImageInfo.from_dict(d.get("info"))
        strs = {}
        for k in ("id", "source", "stored", "mountpoint", "loop"):
            v = d.get(k)
            if not isinstance(v, str):
                raise InvalidArgument(f"image record field {k!r} must be a string")
            strs[k] = v
        if strs["id"] != info.id:
            raise InvalidArgument("image record id does not match its image-info")
        tags = d.get("tags")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise InvalidArgument("image record 'tags' must be a list of strings")
        nums = {}
        for k in ("loadedAt", "size"):
            v = d.get(k)
            if type(v) is not int or v < 0:
                raise InvalidArgument(f"image record field {k!r} must be a non-negative integer")
            nums[k] = v
        return cls(info=info, tags=tuple(tags), loaded_at=nums["loadedAt"], size=nums["size"],
                   version=version, **strs)


# platform.machine() -> OCI architecture (with variant where the kernel name implies one)
_MACHINE_ARCH = {
    "x86_64": "amd64", "amd64": "amd64",
    "aarch64": "arm64", "arm64": "arm64", "armv8b": "arm64", "aarch64_be": "arm64",
    "armv8l": "arm/v7", "armv7l": "arm/v7", "armv7": "arm/v7",
    "armv6l": "arm/v6", "armv5tel": "arm/v5", "armv5tejl": "arm/v5",
    "i386": "386", "i486": "386", "i586": "386", "i686": "386",
    "riscv64": "riscv64", "ppc64le": "ppc64le", "s390x": "s390x",
    "mips": "mips", "mipsel": "mipsle", "mips64": "mips64", "mips64el": "mips64le",
    "loongarch64": "loong64",
}

# What an OCI arch string may be called in image metadata (skopeo writes "arm" without variant).
_ACCEPTS = {
    "amd64": {"amd64", "x86_64"},
    "arm64": {"arm64", "arm64/v8", "aarch64"},
    "arm/v7": {"arm", "arm/v7", "arm/v6", "arm/v5", "armhf"},
    "arm/v6": {"arm/v6", "arm/v5", "armel"},
    "arm/v5": {"arm/v5", "armel"},
}


def native_arch(machine: Optional[str] = None) -> str:
    m = machine if machine is not None else platform.machine()
    return _MACHINE_ARCH.get(m, m)


def arch_runnable(image_arch: str, machine: Optional[str] = None) -> bool:
    here = native_arch(machine)
    return image_arch in _ACCEPTS.get(here, {here})


def check_arch(image_arch: str, machine: Optional[str] = None) -> None:
    if not arch_runnable(image_arch, machine):
        m = machine if machine is not None else platform.machine()
        raise InvalidArgument(
            f"image architecture {image_arch} cannot run on this {native_arch(machine)} host ({m})",
            hint=f"build the image for this device: tcr-create-image --arch {native_arch(machine)} ...",
        )
