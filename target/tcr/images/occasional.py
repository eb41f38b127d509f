"""The image manager's occasional operations, loaded on first use (an idle tcrd does not hold
their code, docs/profile.md): `image tag`, `image verify`, and sealing an image loaded with
--move (its hash and fs-verity, after the load returned). ImageManager keeps a thin entry point
for each; the file work runs in the image store's worker, as for a load.
"""

from __future__ import annotations

from tcr.common.errors import InternalError, TcrError
from tcr.common.record import replace
from tcr.images.manager import KIND, log
from tcr.images.record import StoredFile

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any

    from tcr.images.manager import Done, ImageManager
    from tcr.images.record import ImageRecord


def tag(im: ImageManager, ref: str, target: str) -> str:
    """`tcr image tag`: give the image one more name:tag (taken from any image that had it)."""
    from tcr.images.refs import normalize_tag

    rec = im.get(ref)
    full = normalize_tag(target)
    if full in rec.tags:
        return full
    new = replace(rec, tags=tuple(rec.tags) + (full,))
    im._take_tags(new)
    im.store.save(KIND, new.id, new.to_dict())
    im.records[new.id] = new
    return full


def seal_later(im: ImageManager, rec: ImageRecord) -> None:
    """--move: hash the stored file and turn fs-verity on after the load returned."""
    def done(result: Any) -> None:
        cur = im.records.get(rec.id)
        if cur is None or cur.stored != rec.stored:
            return  # removed meanwhile
        if isinstance(result, TcrError) or not isinstance(result, dict):
            log.warning("image %s: hashing the stored file failed: %s", rec.id, result)
            return
        try:
            sf = StoredFile.from_dict(result.get("stored"))
        except TcrError as exc:
            log.warning("image %s: %s", rec.id, exc)
            return
        upd = replace(cur, stored_file=sf)
        im.store.save(KIND, upd.id, upd.to_dict())
        im.records[upd.id] = upd
        log.info("image %s: sha256 %s recorded%s", rec.id, sf.sha256,
                 "" if sf.verity else f" (no fs-verity: {result.get('verityError')})")

    try:
        im._run(_seal, (rec.stored,), "image seal", done)
    except TcrError as exc:
        log.warning("image %s: cannot hash the stored file now: %s", rec.id, exc)


def verify_async(im: ImageManager, ref: str, on_done: Done) -> None:
    """Hash the stored file (in a worker) against its sidecar and the digest recorded at load;
    on_done(sha256 hex or TcrError)."""
    rec = im.get(ref)

    def done(result: Any) -> None:
        if isinstance(result, TcrError):
            result.message = f"image {rec.id}: {result.message}"
            on_done(result)
        elif not isinstance(result, dict) or not isinstance(result.get("sha256"), str):
            on_done(InternalError(f"image {rec.id}: bad result from the verify worker"))
        else:
            on_done(result["sha256"])

    im._run(_verify, (rec.stored, rec.stored_file, rec.sidecar), "image verify", done)


# The store's file work runs in a forked worker (ImageManager._run): these import tcr.images.store
# in the child, so the daemon never holds that code.

def _seal(*args: Any) -> Any:
    from tcr.images import store

    return store.seal(*args)


def _verify(*args: Any) -> Any:
    from tcr.images import store

    return store.verify(*args)
