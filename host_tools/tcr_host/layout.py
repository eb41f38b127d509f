"""Read an OCI image layout: index -> (multi-arch index ->) manifest -> config and layers.

Blob names are validated (no path tricks) and small JSON blobs are checked against their digest
and size. Layer blobs are verified while they are streamed (see tcr_host.layers).
"""

import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from tcr.common.errors import ImageNotFound, InvalidArgument, TcrError
from tcr_host.arch import arch_label, matches, select_manifest

MAX_JSON_BLOB = 4 * 1024 * 1024
REF_ANNOTATION = "org.opencontainers.image.ref.name"

MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")

_DIGEST_RE = re.compile(r"^(sha256|sha512):([a-f0-9]{64}|[a-f0-9]{128})$")


@dataclass(frozen=True)
class Layer:
    digest: str
    media_type: str
    size: int

    def to_dict(self) -> Dict[str, Any]:
        return {"digest": self.digest, "mediaType": self.media_type, "size": self.size}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Layer":
        return cls(str(d["digest"]), str(d.get("mediaType", "")), int(d.get("size", -1)))


@dataclass(frozen=True)
class ResolvedImage:
    """One platform's image in a layout."""

    manifest_digest: str
    config: Dict[str, Any]
    layers: Tuple[Layer, ...]
    arch: str  # image-info.json spelling: amd64, arm64, arm/v7

    @property
    def total_size(self) -> int:
        return sum(max(0, la.size) for la in self.layers)


def _bad(msg: str) -> InvalidArgument:
    return InvalidArgument(f"malformed OCI image: {msg}")


class Layout:
    def __init__(self, path: str):
        self.path = path
        index_path = os.path.join(path, "index.json")
        try:
            with open(index_path, "rb") as f:
                data = f.read(MAX_JSON_BLOB + 1)
        except FileNotFoundError:
            raise ImageNotFound(f"{path} is not an OCI image layout (no index.json)")
        except OSError as exc:
            raise TcrError(f"cannot read {index_path}: {exc.strerror}")
        self.index = self._parse(data, "index.json")

    @staticmethod
    def _parse(data: bytes, what: str) -> Dict[str, Any]:
        if len(data) > MAX_JSON_BLOB:
            raise _bad(f"{what} is larger than {MAX_JSON_BLOB} bytes")
        try:
            obj = json.loads(data)
        except ValueError as exc:
            raise _bad(f"{what} is not valid JSON ({exc})")
        if not isinstance(obj, dict):
            raise _bad(f"{what} is not a JSON object")
        return obj

    def blob_path(self, digest: str) -> str:
        m = _DIGEST_RE.match(digest if isinstance(digest, str) else "")
        if not m:
            raise _bad(f"invalid digest {str(digest)[:80]!r}")
        return os.path.join(self.path, "blobs", m.group(1), m.group(2))

    def read_json(self, desc: Dict[str, Any]) -> Dict[str, Any]:
        digest = desc.get("digest", "")
        path = self.blob_path(digest)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_JSON_BLOB + 1)
        except FileNotFoundError:
            raise _bad(f"blob {digest} is missing from {self.path}")
        algo = digest.split(":", 1)[0]
        if hashlib.new(algo, data).hexdigest() != digest.split(":", 1)[1]:
            raise _bad(f"blob {digest} does not match its digest")
        size = desc.get("size")
        if isinstance(size, int) and size != len(data):
            raise _bad(f"blob {digest} has {len(data)} bytes, its descriptor says {size}")
        return self._parse(data, f"blob {digest}")

    def refs(self) -> List[str]:
        return sorted({str(m.get("annotations", {}).get(REF_ANNOTATION)) for m in self._manifests(self.index)
                       if isinstance(m.get("annotations"), dict) and m["annotations"].get(REF_ANNOTATION)})

    @staticmethod
    def _manifests(index: Dict[str, Any]) -> List[Dict[str, Any]]:
        ms = index.get("manifests")
        if not isinstance(ms, list):
            raise _bad("index has no 'manifests' list")
        return [m for m in ms if isinstance(m, dict)]

    def find(self, ref: str) -> Dict[str, Any]:
        """The top-level descriptor for ref ('' = the only one in the layout)."""
        ms = self._manifests(self.index)
        if ref:
            for m in ms:
                ann = m.get("annotations")
                if isinstance(ann, dict) and ann.get(REF_ANNOTATION) == ref:
                    return m
            raise ImageNotFound(f"no image tagged {ref!r} in OCI layout {self.path}"
                                f" (tags: {', '.join(self.refs()) or 'none'})")
        if len(ms) == 1:
            return ms[0]
        raise ImageNotFound(f"OCI layout {self.path} holds {len(ms)} images; name one as oci:DIR:TAG"
                            f" (tags: {', '.join(self.refs()) or 'none'})")

    def resolve(self, ref: str, arch: Optional[Tuple[str, str]], host: Tuple[str, str],
                what: str = "") -> ResolvedImage:
        """Follow ref to one platform's manifest and config.

        arch: requested (arch, variant) or None. A multi-arch index without --arch gives the host's
        platform; a single-platform image must match --arch when it is given.
        """
        what = what or f"image {ref or self.path}"
        desc = self.find(ref)
        doc = self.read_json(desc)
        for _ in range(4):  # an index may (rarely) point at another index
            if not _is_index(desc, doc):
                break
            want = arch or host
            desc = select_manifest(self._manifests(doc), want[0], want[1], what)
            doc = self.read_json(desc)
        else:
            raise _bad("image indexes nested too deeply")
        manifest = doc
        mt = manifest.get("mediaType") or desc.get("mediaType") or MANIFEST_TYPES[0]
        if mt not in MANIFEST_TYPES:
            raise _bad(f"unsupported manifest media type {mt!r}")
        cdesc = manifest.get("config")
        if not isinstance(cdesc, dict):
            raise _bad("manifest has no config descriptor")
        config = self.read_json(cdesc)
        platform = {"os": config.get("os", "linux"), "architecture": config.get("architecture", ""),
                    "variant": config.get("variant", "")}
        if arch and not matches(platform, arch[0], arch[1]):
            have = arch_label(str(platform["architecture"]), str(platform["variant"] or ""))
            raise ImageNotFound(f"{what} is for linux/{have}, not linux/{arch_label(*arch)}",
                                hint="choose the image for your board with --arch")
        layers = []
        raw_layers = manifest.get("layers")
        if not isinstance(raw_layers, list):
            raise _bad("manifest has no 'layers' list")
        for la in raw_layers:
            if not isinstance(la, dict):
                raise _bad("layer descriptor is not an object")
            layer = Layer(str(la.get("digest", "")), str(la.get("mediaType", "")), int(la.get("size", -1)))
            self.blob_path(layer.digest)  # validates the digest
            layers.append(layer)
        digest = str(desc.get("digest"))
        return ResolvedImage(digest, config, tuple(layers),
                             arch_label(str(platform["architecture"]), str(platform["variant"] or "")))


def _is_index(desc: Dict[str, Any], doc: Dict[str, Any]) -> bool:
    mt = doc.get("mediaType") or desc.get("mediaType")
    if mt in INDEX_TYPES:
        return True
    return mt is None and isinstance(doc.get("manifests"), list) and "layers" not in doc
