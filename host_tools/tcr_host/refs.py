"""Image references: what the user typed -> where skopeo reads it and how image-info.json names it.

Docker rules for short names: `busybox` is docker.io/library/busybox:latest, `user/app` is
docker.io/user/app, and the first component is a registry only if it has a dot or a port or is
`localhost`. Skopeo transports (docker://, oci:, oci-archive:, docker-archive:) pass through.
"""

import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Optional

from tcr.common.errors import UsageError

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
LOCAL_REGISTRY = "localhost"  # what local sources (oci:, archives) are recorded under, like podman

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$")
_DOMAIN_RE = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")

TRANSPORTS = ("docker", "oci", "oci-archive", "docker-archive")


@dataclass(frozen=True)
class ImageRef:
    """A parsed IMAGE argument.

    transport: docker | oci | oci-archive | docker-archive
    source:    the skopeo source string (docker://registry/repo:tag, oci:DIR:REF, ...)
    path:      the directory/archive of local transports, else ""
    ref:       the reference inside a local layout/archive ("" = the only image in it)
    registry/repository/tag/digest: the name recorded in image-info.json
    """

    transport: str
    source: str
    registry: str
    repository: str
    tag: str
    digest: str = ""
    path: str = ""
    ref: str = ""

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    def default_filename(self) -> str:
        """./<name>_<tag>.sqfs with name the last repository component (digest refs: 12 hex)."""
        base = self.repository.rsplit("/", 1)[-1]
        if self.tag:
            suffix = self.tag
        elif self.digest:
            suffix = self.digest.split(":", 1)[-1][:12]
        else:
            suffix = DEFAULT_TAG
        return _safe_filename(f"{base}_{suffix}") + ".sqfs"

    def with_name(self, registry: str, repository: str, tag: str) -> "ImageRef":
        """The same source recorded under another name (--name)."""
        return ImageRef(self.transport, self.source, registry, repository, tag, self.digest, self.path,
                        self.ref)

    def to_dict(self) -> Dict[str, Any]:
        return {"transport": self.transport, "source": self.source, "registry": self.registry,
                "repository": self.repository, "tag": self.tag, "digest": self.digest,
                "path": self.path, "ref": self.ref}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ImageRef":
        return cls(**{k: str(d.get(k, "")) for k in ("transport", "source", "registry", "repository",
                                                     "tag", "digest", "path", "ref")})


def _safe_filename(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", s)


def split_docker_name(name: str):
    """'busybox:1.36' -> ('docker.io', 'library/busybox', '1.36', ''). Raises UsageError."""
    if not name or any(c.isspace() for c in name):
        raise UsageError(f"invalid image reference {name!r}")
    digest = ""
    if "@" in name:
        name, digest = name.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise UsageError(f"invalid digest in image reference: {digest!r}")
    tag = ""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not _TAG_RE.match(tag):
            raise UsageError(f"invalid tag {tag!r} in image reference")
    registry = DEFAULT_REGISTRY
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN_RE.match(first):
            raise UsageError(f"invalid registry {first!r} in image reference")
        registry, name = first, rest
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in name:
        name = "library/" + name
    if not _REPO_RE.match(name):
        what = "must be lowercase" if name.lower() != name else "has invalid characters"
        raise UsageError(f"invalid image reference {name!r}: repository name {what}")
    if not tag and not digest:
        tag = DEFAULT_TAG
    return registry, name, tag, digest


def _local_repository(path: str) -> str:
    """A repository name for a local directory/archive: its base name, made valid."""
    base = os.path.basename(os.path.normpath(os.path.abspath(path)))
    for ext in (".tar.gz", ".tgz", ".tar", ".oci"):
        if base.endswith(ext) and len(base) > len(ext):
            base = base[: -len(ext)]
            break
    base = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")
    return base or "image"


def _local(transport: str, rest: str) -> ImageRef:
    # skopeo splits oci:PATH:REF at the first colon after the transport (paths cannot hold ':')
    path, _, ref = rest.partition(":")
    if not path:
        raise UsageError(f"{transport}: needs a path, e.g. {transport}:./dir:latest")
    registry, repository, tag = LOCAL_REGISTRY, _local_repository(path), DEFAULT_TAG
    if ref:
        if transport == "docker-archive" and not ref.startswith("@"):
            # docker-archive:PATH:NAME[:TAG] names an image inside the archive
            registry, repository, tag, _ = split_docker_name(ref)
        elif _TAG_RE.match(ref):
            tag = ref
        else:
            tag = _safe_filename(ref)[:128].lstrip(".-") or DEFAULT_TAG
    source = f"{transport}:{path}" + (f":{ref}" if ref else "")
    return ImageRef(transport, source, registry, repository, tag, "", path, ref)


def parse_image(image: str, name: Optional[str] = None) -> ImageRef:
    """Parse the IMAGE argument; `name` (--name) overrides the recorded registry/repository/tag."""
    image = image.strip()
    ref: ImageRef
    for transport in TRANSPORTS[1:]:
        if image.startswith(transport + ":"):
            ref = _local(transport, image[len(transport) + 1:])
            break
    else:
        body = image[len("docker://"):] if image.startswith("docker://") else image
        if "://" in body:
            raise UsageError(f"unsupported transport in {image!r} (use docker://, oci:, oci-archive:, "
                             "docker-archive:)")
        registry, repository, tag, digest = split_docker_name(body)
        # skopeo refuses tag+digest together: the digest pins the image, the tag only names it
        src = f"docker://{registry}/{repository}" + (f"@{digest}" if digest else f":{tag}")
        ref = ImageRef("docker", src, registry, repository, tag, digest)
    if name:
        registry, repository, tag, _ = split_docker_name(name)
        ref = ref.with_name(registry, repository, tag or DEFAULT_TAG)
    return ref
