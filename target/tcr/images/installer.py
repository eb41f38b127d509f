"""Putting a staged image in place: the second step of a load, run in a forked worker
(ImageManager._install_async, through tcr.images.manager.install). Imported only in the worker
(the daemon does not hold it, docs/profile.md).
"""

from __future__ import annotations

import os

from tcr.common.atomic import fsync_dir
from tcr.common.errors import InternalError
from tcr.common.faults import fault
from tcr.common.record import replace
from tcr.images import storedfile
from tcr.images.manager import KIND, STORED_NAME, clean_dir
from tcr.images.record import ImageRecord
from tcr.kernel import mount as kmount

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

    from tcr.daemon.state import StateStore
    from tcr.kernel.loopdev import LoopDevice


def install(staging: str, record: Dict[str, Any], states: StateStore) -> Dict[str, Any]:
    """Put a staged image in place: attach a loop device, rename the staging dir to images/<id>,
    mount it and write its record (fsync'd). Runs in a worker (the parent arbitrated the id: no
    record and no other install of it); the crash points are the same as on the loop, and the
    parent undoes a failure (_undo_install). Returns {"loop": "/dev/loopN"}."""
    from tcr.images import store
    from tcr.kernel import loopdev

    rec = ImageRecord.from_dict(record)
    assert rec.stored_file is not None
    final = os.path.dirname(rec.stored)
    stored_tmp = os.path.join(staging, STORED_NAME)
    changed = storedfile.check_unchanged(stored_tmp, rec.stored_file)
    if changed:
        raise InternalError(f"image load: the staged file changed ({changed})")
    mounted_at: Optional[str] = None
    loop: Optional[LoopDevice] = None
    try:
        os.makedirs(os.path.join(staging, "mnt"), mode=0o755, exist_ok=True)
        loop = loopdev.attach(stored_tmp)
        fault("image.after_loop_attach")
        if os.path.lexists(final):
            clean_dir(final)  # leftovers of a crashed load or remove (no record)
        os.rename(staging, final)
        fsync_dir(os.path.dirname(final))  # the record must never name a directory a power cut undoes
        store.mount_new(rec.source, loop.path, rec.mountpoint)
        mounted_at = rec.mountpoint
        fault("image.after_mount")
        # Only now may the loop fd go: the mount holds the device, autoclear frees it at umount.
        loop.close()
        rec = replace(rec, loop=loop.path)
        # The parent announces the record (tcr events); here nobody must hear of it.
        told, states.on_change = states.on_change, None
        try:
            states.save(KIND, rec.id, rec.to_dict())
        finally:
            states.on_change = told
        fault("image.after_state_write")
        mounted_at = None
        return {"loop": loop.path}
    finally:
        if mounted_at is not None:
            kmount.umount_quiet(mounted_at, kmount.UMOUNT_NOFOLLOW | kmount.MNT_DETACH)
        if loop is not None:
            loop.close()  # not mounted: autoclear detaches the device right here
