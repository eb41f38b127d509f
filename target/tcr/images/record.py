"""ImageRecord: what tcrd knows about one loaded image (persisted as state kind "images")."""

from __future__ import annotations

import os

from tcr.common.errors import InvalidArgument
from tcr.common.record import dataclass, field
from tcr.formats.image_info import ImageInfo

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Tuple

RECORD_VERSION = 2
READABLE_VERSIONS = (1, 2)  # v1 (no "stored" fingerprint) is migrated at recovery


@dataclass(frozen=True)
class StoredFile:
    """Fingerprint of the stored image file, taken at load, checked before every remount."""

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    sha256: str = ""  # hex; "" while a --move load is still being hashed in the background
    verity: bool = False  # the kernel checks every page (fs-verity on)

    def to_dict(self) -> Dict[str, Any]:
        return {"size": self.size, "mtimeNs": self.mtime_ns, "ctimeNs": self.ctime_ns, "ino": self.ino,
                "sha256": self.sha256, "verity": self.verity}

    @classmethod
    def from_dict(cls, d: Any) -> StoredFile:
        if not isinstance(d, dict):
            raise InvalidArgument("image record 'storedFile' must be an object")
        nums = {}
        for k in ("size", "mtimeNs", "ctimeNs", "ino"):
            v = d.get(k)
            if type(v) is not int or v < 0:
                raise InvalidArgument(f"image record field storedFile.{k} must be a non-negative integer")
            nums[k] = v
        digest = d.get("sha256")
        if not isinstance(digest, str) or (digest and (len(digest) != 64 or
                                                      any(c not in "0123456789abcdef" for c in digest))):
            raise InvalidArgument("image record field storedFile.sha256 must be 64 hex digits or empty")
        verity = d.get("verity")
        if type(verity) is not bool:
            raise InvalidArgument("image record field storedFile.verity must be a boolean")
        return cls(size=nums["size"], mtime_ns=nums["mtimeNs"], ctime_ns=nums["ctimeNs"], ino=nums["ino"],
                   sha256=digest, verity=verity)


@dataclass(frozen=True)
class ImageRecord:
    id: str
    info: ImageInfo
    source: str  # the .sqfs path the user loaded (informational)
    stored: str  # <root>/images/<id>/image.sqfs (the store's own inode; what the loop device reads)
    mountpoint: str  # <root>/images/<id>/mnt
    loop: str = ""  # /dev/loopN while mounted (refreshed at recovery)
    loaded_at: int = 0
    tags: Tuple[str, ...] = field(default_factory=tuple)  # "name:tag" references this image holds
    size: int = 0  # bytes of the stored file
    stored_file: Optional[StoredFile] = None  # None only in a v1 record (before migration)
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
            **({"storedFile": self.stored_file.to_dict()} if self.stored_file is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: Any) -> ImageRecord:
        if not isinstance(d, dict):
            raise InvalidArgument("image record is not an object")
        version = d.get("version")
        if type(version) is not int or version not in READABLE_VERSIONS:
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
        stored_file = None
        if version >= 2:
            stored_file = StoredFile.from_dict(d.get("storedFile"))
        return cls(info=info, tags=tuple(tags), loaded_at=nums["loadedAt"], size=nums["size"],
                   stored_file=stored_file, version=version, **strs)


# os.uname().machine -> OCI architecture (with variant where the kernel name implies one)
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
    m = machine if machine is not None else os.uname().machine
    return _MACHINE_ARCH.get(m, m)


def arch_runnable(image_arch: str, machine: Optional[str] = None) -> bool:
    here = native_arch(machine)
    return image_arch in _ACCEPTS.get(here, {here})


def check_arch(image_arch: str, machine: Optional[str] = None) -> None:
    if not arch_runnable(image_arch, machine):
        m = machine if machine is not None else os.uname().machine
        raise InvalidArgument(
            f"image architecture {image_arch} cannot run on this {native_arch(machine)} host ({m})",
            hint=f"build the image for this device: tcr-create-image --arch {native_arch(machine)} ...",
        )
