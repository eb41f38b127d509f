"""image-info.json v1: the metadata file at the root of every tcr squashfs image.

Compatible with the C implementation: `version` (1), `image` {id, registry, repository, tag, digest,
arch}, `bundlePath` ("bundle"), `created` (Unix seconds, UTC). Readers validate every field
strictly and ignore unknown keys. An `id` missing from an older file is derived from the digest.
"""

from __future__ import annotations

from tcr.common import jsonc, syntax
from tcr.common.errors import InvalidArgument
from tcr.common.record import dataclass

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict

VERSION = 1
MAX_SIZE = 64 * 1024  # a real image-info.json is ~300 bytes; refuse anything absurd

_NAME_CHARS = syntax.ALNUM + "._/:[]-"  # ^[A-Za-z0-9._/:\\[\\]-]*$
_BUNDLE_CHARS = syntax.ALNUM + "._-"  # ^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*$


def _arch(text: str) -> bool:
    """^[a-z0-9_]+(?:/v[0-9]+)?$"""
    base, slash, variant = text.partition("/")
    return (bool(base) and syntax.only(base, syntax.DIGITS + syntax.LOWER + "_")
            and (not slash or (variant[:1] == "v" and syntax.number(variant[1:]))))


def _bad(msg: str) -> InvalidArgument:
    return InvalidArgument(f"invalid image-info.json: {msg}")


@dataclass(frozen=True)
class ImageInfo:
    id: str
    registry: str
    repository: str
    tag: str
    digest: str
    arch: str
    bundle_path: str = "bundle"
    created: int = 0
    version: int = VERSION

    @property
    def name(self) -> str:
        """registry/repository (the name part of name:tag)."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}" if self.tag else self.name

    def to_dict(self) -> Dict[str, Any]:
        return {
            "version": self.version,
            "image": {
                "id": self.id,
                "registry": self.registry,
                "repository": self.repository,
                "tag": self.tag,
                "digest": self.digest,
                "arch": self.arch,
            },
            "bundlePath": self.bundle_path,
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, d: Any) -> ImageInfo:
        if not isinstance(d, dict):
            raise _bad("top level is not an object")
        version = d.get("version")
        if type(version) is not int:
            raise _bad("'version' must be an integer")
        if version != VERSION:
            raise _bad(f"unsupported version {version} (this tcr reads version {VERSION})")
        img = d.get("image")
        if not isinstance(img, dict):
            raise _bad("'image' must be an object")
        fields = {}
        for key in ("registry", "repository", "tag", "digest", "arch"):
            v = img.get(key)
            if not isinstance(v, str):
                raise _bad(f"'image.{key}' must be a string")
            if len(v) > 512:
                raise _bad(f"'image.{key}' is too long")
            fields[key] = v
        if not syntax.digest(fields["digest"]):
            raise _bad(f"'image.digest' is not a digest: {fields['digest'][:80]!r}")
        repo = fields["repository"]
        if not repo or not syntax.only(repo, _NAME_CHARS) or ".." in repo:
            raise _bad("'image.repository' is empty or has invalid characters")
        if not syntax.only(fields["registry"], _NAME_CHARS) or ".." in fields["registry"]:
            raise _bad("'image.registry' has invalid characters")
        if fields["tag"] and not syntax.tag(fields["tag"]):
            raise _bad(f"'image.tag' is not a valid tag: {fields['tag'][:80]!r}")
        if not _arch(fields["arch"]):
            raise _bad(f"'image.arch' is not an architecture: {fields['arch'][:80]!r}")
        iid = img.get("id")
        if iid is None:
            from tcr.formats.xxh64 import image_id  # ids come with the record after a load

            iid = image_id(fields["digest"])
        elif not isinstance(iid, str) or not syntax.hex_id(iid):
            raise _bad("'image.id' must be 16 lowercase hex digits")
        bundle = d.get("bundlePath")
        if not isinstance(bundle, str):
            raise _bad("'bundlePath' must be a string")
        if not syntax.path_of(bundle, _BUNDLE_CHARS) or any(p in (".", "..") for p in bundle.split("/")):
            raise _bad(f"'bundlePath' must be a relative path inside the image: {bundle[:80]!r}")
        created = d.get("created")
        if type(created) is not int or not 0 <= created < 2**63:
            raise _bad("'created' must be a non-negative integer (Unix seconds)")
        return cls(id=iid, bundle_path=bundle, created=created, version=version, **fields)

    @classmethod
    def from_json(cls, data: bytes) -> ImageInfo:
        if len(data) > MAX_SIZE:
            raise _bad(f"file is larger than {MAX_SIZE} bytes")
        try:
            obj = jsonc.loads(data)
        except ValueError as exc:
            raise _bad(f"not valid JSON ({exc})")
        return cls.from_dict(obj)

    def to_json(self) -> str:
        return jsonc.dumps_pretty(self.to_dict())
