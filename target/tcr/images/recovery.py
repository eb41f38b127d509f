"""Image recovery at tcrd's start: records + the kernel's mounts and loop devices -> the image
store as it was (remount what a reboot unmounted, migrate records of an older tcr, remove what a
crash left half-made, and uploads a failed deploy left in incoming/).

Start-up only: ImageManager.recover() imports this module, and tcrd drops it once it listens
(tcr.daemon.main, as tcr.check), so its code is not resident in an idle daemon (docs/profile.md).
"""

from __future__ import annotations

import os
import stat

from tcr.common.errors import TcrError
from tcr.common.record import replace
from tcr.images import storedfile
from tcr.images.manager import INCOMING, KIND, MOUNT_FLAGS, _is_under, _mounted_loops, _strip_deleted, log
from tcr.images.record import RECORD_VERSION, ImageRecord
from tcr.kernel import loopdev, mountinfo
from tcr.kernel import mount as kmount

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List

    from tcr.images.manager import ImageManager


def recover(im: ImageManager) -> List[str]:
    """Rebuild state from records + the kernel. Returns one line per problem found."""
    problems: List[str] = []
    os.makedirs(im.dir, mode=0o711, exist_ok=True)
    loaded, errors = im.store.load_records(KIND, ImageRecord.from_dict, "image",
                                             key_of=lambda r: r.id, aside=True)
    problems.extend(errors)
    mounts = mountinfo.read()
    for rec in loaded.values():
        if not os.path.isfile(rec.stored):
            problems.append(f"image {rec.id}: file {rec.stored} is gone; record dropped")
            im.store.delete(KIND, rec.id)
            im._clean_dir(os.path.join(im.dir, rec.id))
            continue
        m = mountinfo.find(rec.mountpoint, mounts)
        mounted = m is not None and m.fstype == "squashfs"
        if rec.stored_file is None:
            rec = _migrate_v1(im, rec, mounted, problems)
        assert rec.stored_file is not None
        changed = storedfile.check_unchanged(rec.stored, rec.stored_file)
        if changed:
            why = f"its stored file changed since it was loaded ({changed})"
            im.broken[rec.id] = why
            problems.append(f"image {rec.id}: {why}; " +
                            ("refused for new containers" if mounted else "not mounted"))
        elif m is not None and mounted:
            loop = m.source if m.source.startswith("/dev/loop") else f"/dev/loop{m.minor}"
            if loop != rec.loop:
                rec = replace(rec, loop=loop)
                im.store.save(KIND, rec.id, rec.to_dict())
        else:
            try:
                rec = _remount(im, rec)
                log.info("remounted image %s on %s", rec.id, rec.loop)
            except (OSError, TcrError) as exc:
                why = getattr(exc, "strerror", None) or str(exc)
                problems.append(f"image {rec.id}: cannot mount {rec.stored}: {why}")
                im.unmounted[rec.id] = why
        im.records[rec.id] = rec
    _dedupe_tags(im)
    problems.extend(_clean_orphans(im))
    problems.extend(_clean_incoming(im))
    for p in problems:
        log.warning("%s", p)
    return problems


def _migrate_v1(im: ImageManager, rec: ImageRecord, mounted: bool, problems: List[str]) -> ImageRecord:
    """A record of an older tcr: its file may be a hard link to (or owned by) a user's file.
    Give the store its own root-only inode, then record the fingerprint (no digest yet)."""
    st = os.stat(rec.stored, follow_symlinks=False)
    private = st.st_uid == 0 and st.st_nlink == 1 and not st.st_mode & 0o222
    if not private and mounted:
        problems.append(f"image {rec.id}: its file shares an inode with {rec.source} or is writable "
                        "(loaded by an older tcr); load it again to give the store its own copy")
    elif not private:
        from tcr.images import store  # an old record's migration: rare, not in the idle daemon

        tmp = rec.stored + ".private"
        with open(rec.stored, "rb") as fi:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                         storedfile.STORED_MODE)
            try:
                store.copy_fd(fi.fileno(), fd, os.fstat(fi.fileno()).st_size)
                os.fsync(fd)
            finally:
                os.close(fd)
        os.chmod(tmp, storedfile.STORED_MODE)
        os.rename(tmp, rec.stored)
        log.info("image %s: the store now holds its own copy of %s", rec.id, rec.source)
    else:
        os.chmod(rec.stored, storedfile.STORED_MODE)
    sf = storedfile.fingerprint(rec.stored, "", False)
    rec = replace(rec, stored_file=sf, size=sf.size, version=RECORD_VERSION)
    im.store.save(KIND, rec.id, rec.to_dict())
    return rec


def _clean_incoming(im: ImageManager) -> List[str]:
    """Uploads a failed deploy left in <root>/incoming, removed at start-up.

    No load runs before tcrd does, so an upload that no live process holds open (a client still
    copying does: sftp-server, `scp -t`, the stdin spooler) can only be left over: a client
    killed mid-deploy, a power cut. Times cannot tell: a board without a battery-backed clock,
    or one that boots again within a second (btime is whole seconds), gives a file of the last
    boot an mtime after this boot's start (found on the emulated board).
    """
    d = os.path.join(im.root, INCOMING)
    try:
        names = os.listdir(d)
    except OSError:
        return []
    files: Dict[str, Any] = {}
    for n in names:
        p = os.path.join(d, n)
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            files[p] = (st.st_dev, st.st_ino)
    if not files:
        return []
    from tcr.kernel import openfiles  # only when something was left: not at every start

    busy = openfiles.holders(files.values())
    out: List[str] = []
    for p, key in files.items():
        if key in busy:
            log.info("kept %s: an upload in progress (held open by pid %d)", p, busy[key])
            continue
        try:
            os.unlink(p)
        except OSError as exc:
            out.append(f"cannot remove the left-over upload {p}: {exc.strerror}")
            continue
        out.append(f"removed the left-over upload {p} (no client was copying it)")
    return out


def _remount(im: ImageManager, rec: ImageRecord) -> ImageRecord:
    os.makedirs(rec.mountpoint, mode=0o755, exist_ok=True)
    # Reuse a loop device already backed by our file (never create a duplicate).
    existing = loopdev.find_by_backing(rec.stored)
    loop = None
    for n in existing:
        try:
            loop = loopdev.open_existing(n)
            break
        except OSError:
            continue
    if loop is None:
        loop = loopdev.attach(rec.stored)
    try:
        kmount.mount(loop.path, rec.mountpoint, "squashfs", MOUNT_FLAGS)
    finally:
        loop.close()
    rec = replace(rec, loop=loop.path)
    im.store.save(KIND, rec.id, rec.to_dict())
    return rec


def _dedupe_tags(im: ImageManager) -> None:
    """After a crash between two record writes a tag may be claimed twice: the newest wins."""
    owner: Dict[str, ImageRecord] = {}
    for rec in sorted(im.records.values(), key=lambda r: (r.loaded_at, r.id)):
        for t in rec.tags:
            owner[t] = rec
    for rec in list(im.records.values()):
        keep = tuple(t for t in rec.tags if owner[t].id == rec.id)
        if keep != rec.tags:
            upd = replace(rec, tags=keep)
            im.store.save(KIND, upd.id, upd.to_dict())
            im.records[upd.id] = upd


def _clean_orphans(im: ImageManager) -> List[str]:
    """Remove what a crash left half-made: dirs and mounts without records, stray loop devices."""
    problems: List[str] = []
    try:
        names = os.listdir(im.dir)
    except OSError:
        return problems
    for name in names:
        p = os.path.join(im.dir, name)
        if name.endswith(".json") or name.endswith(".corrupt") or not os.path.isdir(p):
            continue
        if name in im.records or os.path.exists(p + ".json"):
            continue  # a record we could not use (e.g. from a newer tcr) still owns its directory
        problems.append(f"removed leftover image directory {p} (no record)")
        im._clean_dir(p)
    # Loop devices on our files that nothing mounts (e.g. a crash inside a non-autoclear attach).
    mounted = _mounted_loops()
    for n, bf in loopdev.attached().items():
        f = _strip_deleted(bf)
        if _is_under(f, im.dir) and n not in mounted:
            try:
                loopdev.detach(n)
                problems.append(f"detached stray loop device /dev/loop{n} ({f})")
            except OSError:
                pass
    return problems
