"""Image lookup rules (pure): by id, unique id prefix, name[:tag], name@digest or digest.

Order, as docker does it: full id, digest, name:tag (default tag `latest`; short names also tried
as docker.io/NAME and docker.io/library/NAME), then a unique id prefix of at least 4 hex digits.
"""

from __future__ import annotations

from tcr.common import syntax
from tcr.common.errors import ImageNotFound, InvalidArgument
from tcr.images.record import ImageRecord

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Iterable, List, Optional, Tuple

MIN_PREFIX = 4


def split_ref(ref: str) -> Tuple[str, Optional[str], Optional[str]]:
    """'name[:tag][@digest]' -> (name, tag or None, digest or None)."""
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    tag = None
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:  # a colon after the last slash is a tag, not a registry port
        ref, tag = ref[:colon], ref[colon + 1:]
    return ref, tag, digest


def name_candidates(name: str) -> List[str]:
    """'busybox' -> ['busybox', 'docker.io/busybox', 'docker.io/library/busybox']."""
    out = [name]
    first = name.split("/", 1)[0]
    has_registry = "/" in name and ("." in first or ":" in first or first == "localhost")
    if not has_registry:
        out.append("docker.io/" + name)
        if "/" not in name:
            out.append("docker.io/library/" + name)
    return out


def resolve(records: Iterable[ImageRecord], ref: str) -> ImageRecord:
    recs = list(records)
    if not ref or len(ref) > 512 or any(c.isspace() for c in ref):
        raise InvalidArgument(f"invalid image reference {ref[:80]!r}")
    for r in recs:
        if r.id == ref:
            return r
    if syntax.digest(ref) and "/" not in ref:
        for r in recs:
            if r.info.digest == ref:
                return r
    name, tag, digest = split_ref(ref)
    if name:
        cands = name_candidates(name)
        if digest is not None:
            for r in recs:
                if r.info.digest == digest and r.info.name in cands:
                    return r
        else:
            want = [f"{c}:{tag or 'latest'}" for c in cands]
            for w in want:
                for r in recs:
                    if w in r.tags:
                        return r
    if syntax.hex_id(ref, 4, 16):
        hits = [r for r in recs if r.id.startswith(ref)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise InvalidArgument(f"image id prefix {ref} is ambiguous: it matches {len(hits)} images",
                                  hint="give more digits of the id")
    raise ImageNotFound(f"image {ref} not found", hint="see 'tcr image ls'")




def normalize_tag(ref: str) -> str:
    """A `tcr image tag` target as the full "registry/name:tag" images are stored under
    ('app' -> 'docker.io/library/app:latest', 'me/app:1' -> 'docker.io/me/app:1')."""
    if not ref or len(ref) > 255 or "@" in ref or any(c.isspace() for c in ref):
        raise InvalidArgument(f"invalid image reference {ref[:80]!r}", hint="use NAME[:TAG]")
    name, tag, _ = split_ref(ref)
    tag = tag or "latest"
    full = name_candidates(name)[-1]
    first = full.split("/", 1)[0]
    parts = full.split("/")[1:] if ("." in first or ":" in first or first == "localhost") else full.split("/")
    if not syntax.tag(tag) or not parts or not all(syntax.repo_component(p) for p in parts):
        raise InvalidArgument(f"invalid image reference {ref[:80]!r}",
                              hint="lower-case name parts of letters, digits and . _ -; a tag of up to 128")
    return f"{full}:{tag}"
