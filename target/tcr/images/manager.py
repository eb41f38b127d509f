"""The image manager: load (validate, keep the file, loop-mount), lookup, remove, verify, recover.

State layout under the daemon's root:
  images/<id>.json          the ImageRecord (StateStore kind "images"), written after the mount
  images/<id>/image.sqfs    hard link to the loaded file (copy when on another filesystem)
  images/<id>/image.sqfs.sha256   checksum sidecar, copied at load when the source had one
  images/<id>/mnt/          read-only squashfs mount (loop device with autoclear)
  images/.load-XXXX/        staging directory of a load in progress (cleaned up at recovery)
"""

import errno
import logging
import os
import shutil
import tempfile
import time
from dataclasses import replace
from typing import Any, Dict, List, Optional

from tcr.common.digest import sha256
from tcr.common.errors import InternalError, InUse, InvalidArgument, TcrError
from tcr.common.faults import fault
from tcr.daemon.state import StateStore
from tcr.formats.image_info import ImageInfo
from tcr.images import reader, refs
from tcr.images.record import ImageRecord, check_arch
from tcr.kernel import loopdev, mountinfo
from tcr.kernel import mount as kmount

log = logging.getLogger("tcr.images")

KIND = "images"
STORED_NAME = "image.sqfs"
MOUNT_FLAGS = kmount.MS_RDONLY | kmount.MS_NODEV | kmount.MS_NOSUID
STAGING_PREFIX = ".load-"


class ImageManager:
    def __init__(self, root: str, store: StateStore, daemon: Any = None, machine: Optional[str] = None):
        self.root = root
        self.dir = os.path.join(root, KIND)
        self.store = store
        self.daemon = daemon  # for daemon.containers.uses_image(); None in tests
        self.machine = machine  # platform.machine() override, for tests
        self.records: Dict[str, ImageRecord] = {}
        self.unmounted: Dict[str, str] = {}  # id -> why it could not be mounted at recovery

    # ---- queries -----------------------------------------------------------------------------

    def list(self) -> List[ImageRecord]:
        return sorted(self.records.values(), key=lambda r: (-r.info.created, r.id))

    def get(self, ref: str) -> ImageRecord:
        return refs.resolve(self.records.values(), ref)

    def is_mounted(self, rec: ImageRecord) -> bool:
        m = mountinfo.find(rec.mountpoint)
        return m is not None and m.fstype == "squashfs"

    # ---- load --------------------------------------------------------------------------------

    def _drop_upload(self, src: str) -> None:
        """A file uploaded by `tcr -H ... image load` lives in <root>/incoming only until it is stored."""
        incoming = os.path.join(self.root, "incoming") + os.sep
        if src.startswith(incoming):
            for p in (src, src + ".sha256"):
                try:
                    os.unlink(p)
                except OSError:
                    pass

    def load(self, path: str) -> ImageRecord:
        src = os.path.abspath(path)
        if not os.path.exists(src):
            raise InvalidArgument(f"{path}: no such file")
        if not os.path.isfile(src):
            raise InvalidArgument(f"{path} is not a regular file")
        info: Optional[ImageInfo] = None
        try:
            info = reader.read_file(src)
        except reader.NeedsMount as why:
            log.info("cannot read %s in Python (%s); validating it through a private mount", src, why)
        if info is not None:
            check_arch(info.arch, self.machine)
            if info.id in self.records:
                return self.records[info.id]
        os.makedirs(self.dir, mode=0o711, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.dir)
        final: Optional[str] = None
        mounted_at: Optional[str] = None
        loop: Optional[loopdev.LoopDevice] = None
        try:
            stored_tmp = os.path.join(staging, STORED_NAME)
            self._keep_file(src, stored_tmp)
            if os.path.isfile(src + ".sha256"):
                shutil.copyfile(src + ".sha256", stored_tmp + ".sha256")
            os.mkdir(os.path.join(staging, "mnt"), 0o755)
            loop = loopdev.attach(stored_tmp)
            fault("image.after_loop_attach")
            if info is None:
                tmp_mnt = os.path.join(staging, "mnt")
                kmount.mount(loop.path, tmp_mnt, "squashfs", MOUNT_FLAGS)
                mounted_at = tmp_mnt
                try:
                    info = reader.read_dir(src, tmp_mnt)
                finally:
                    kmount.umount(tmp_mnt)  # the still-open loop fd keeps the device for the remount
                    mounted_at = None
                check_arch(info.arch, self.machine)
                if info.id in self.records:
                    return self.records[info.id]  # finally: releases the loop and the staging dir
            final = os.path.join(self.dir, info.id)
            if os.path.lexists(final):
                self._clean_dir(final)  # leftovers of a crashed load or remove (no record)
            os.rename(staging, final)
            staging = final
            mnt = os.path.join(final, "mnt")
            kmount.mount(loop.path, mnt, "squashfs", MOUNT_FLAGS)
            mounted_at = mnt
            fault("image.after_mount")
            # Only now may the loop fd go: the mount holds the device, autoclear frees it at umount.
            loop.close()
            stored = os.path.join(final, STORED_NAME)
            rec = ImageRecord(
                id=info.id, info=info, source=src, stored=stored, mountpoint=mnt, loop=loop.path,
                loaded_at=int(time.time()), tags=(f"{info.name}:{info.tag}",) if info.tag else (),
                size=os.stat(stored).st_size,
            )
            self._take_tags(rec)
            self.store.save(KIND, rec.id, rec.to_dict())
            fault("image.after_state_write")
            self.records[rec.id] = rec
            mounted_at = None
            staging = ""
            self._drop_upload(src)
            log.info("loaded image %s (%s) on %s", rec.id, rec.display_ref, rec.loop)
            return rec
        except OSError as exc:
            raise InternalError(f"cannot load {path}: {exc.strerror or exc}")
        finally:
            if mounted_at is not None:
                kmount.umount_quiet(mounted_at, kmount.UMOUNT_NOFOLLOW | kmount.MNT_DETACH)
            if loop is not None:
                loop.close()  # not mounted: autoclear detaches the device right here
            if staging:
                shutil.rmtree(staging, ignore_errors=True)

    def _keep_file(self, src: str, dst: str) -> None:
        """Hard-link src (instant, no extra space); copy when it is on another filesystem.

        A hard link shares the inode: deleting or renaming the user's file later does not affect
        the image. Rewriting it in place would, which is why images are meant to be immutable.
        """
        try:
            os.link(src, dst)
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                raise
        with open(src, "rb") as fi, open(dst, "wb") as fo:
            shutil.copyfileobj(fi, fo, 1 << 20)
            fo.flush()
            os.fsync(fo.fileno())
        os.chmod(dst, 0o444)

    def _take_tags(self, new: ImageRecord) -> None:
        """A newer image with the same name:tag takes it; the old one keeps its id."""
        for other in list(self.records.values()):
            lost = set(other.tags) & set(new.tags)
            if lost:
                upd = replace(other, tags=tuple(t for t in other.tags if t not in lost))
                self.store.save(KIND, upd.id, upd.to_dict())
                self.records[upd.id] = upd
                log.info("image %s lost tag %s to %s", other.id, ", ".join(sorted(lost)), new.id)

    def tag(self, ref: str, target: str) -> str:
        """`tcr image tag`: give the image one more name:tag (taken from any image that had it)."""
        from tcr.images.refs import normalize_tag

        rec = self.get(ref)
        full = normalize_tag(target)
        if full in rec.tags:
            return full
        new = replace(rec, tags=tuple(rec.tags) + (full,))
        self._take_tags(new)
        self.store.save(KIND, new.id, new.to_dict())
        self.records[new.id] = new
        return full

    # ---- remove ------------------------------------------------------------------------------

    def check_unused(self, rec: ImageRecord) -> None:
        containers = getattr(self.daemon, "containers", None) if self.daemon is not None else None
        if containers is not None and containers.uses_image(rec.id):
            raise InUse(f"image {rec.display_ref} ({rec.id}) is in use by a container",
                        hint="remove the containers that use it first (tcr ps -a)")

    def remove(self, ref: str) -> ImageRecord:
        rec = self.get(ref)
        self.check_unused(rec)
        try:
            kmount.umount(rec.mountpoint)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise InUse(f"image {rec.id} is busy: something still uses its mount {rec.mountpoint}")
            if exc.errno not in (errno.EINVAL, errno.ENOENT):  # EINVAL: it was not mounted
                raise InternalError(f"cannot unmount image {rec.id}: {exc.strerror}")
        # The loop device autoclears now that its mount is gone.
        fault("image.rm.after_umount")
        self.store.delete(KIND, rec.id)
        fault("image.rm.after_state_delete")
        del self.records[rec.id]
        self.unmounted.pop(rec.id, None)
        self._clean_dir(os.path.join(self.dir, rec.id))
        log.info("removed image %s", rec.id)
        return rec

    def _clean_dir(self, d: str) -> None:
        """Unmount everything under d (deepest first), drop its loop devices, delete it."""
        for m in mountinfo.under(d):
            if not kmount.umount_quiet(m.mount_point):
                kmount.umount_quiet(m.mount_point, kmount.UMOUNT_NOFOLLOW | kmount.MNT_DETACH)
        mounted = _mounted_loops()
        for n, bf in loopdev.attached().items():
            if _is_under(_strip_deleted(bf), d) and n not in mounted:
                try:
                    loopdev.detach(n)
                except OSError:
                    pass
        shutil.rmtree(d, ignore_errors=True)

    # ---- verify ------------------------------------------------------------------------------

    def verify(self, ref: str) -> str:
        """Check the stored file against its sidecar. Returns the sha256 hex on success."""
        rec = self.get(ref)
        try:
            with open(rec.sidecar) as f:
                expected = parse_sidecar(f.read())
        except FileNotFoundError:
            raise TcrError(f"image {rec.id} has no checksum sidecar (the loaded file had no "
                           f"{os.path.basename(rec.source)}.sha256 next to it)", code=InvalidArgument.code)
        except ValueError as exc:
            raise TcrError(f"image {rec.id}: checksum sidecar is unreadable ({exc})")
        actual = sha256_file(rec.stored)
        if actual != expected:
            raise TcrError(f"image {rec.id}: checksum MISMATCH (sidecar {expected}, file {actual})")
        return actual

    # ---- recovery ----------------------------------------------------------------------------

    def recover(self) -> List[str]:
        """Rebuild state from records + the kernel. Returns one line per problem found."""
        problems: List[str] = []
        os.makedirs(self.dir, mode=0o711, exist_ok=True)
        raw, errors = self.store.load_all(KIND)
        problems.extend(errors)
        mounts = mountinfo.read()
        for key, d in raw.items():
            try:
                rec = ImageRecord.from_dict(d)
                if rec.id != key:
                    raise InvalidArgument(f"record id {rec.id} does not match its file name")
            except TcrError as exc:
                problems.append(f"image record {key}: {exc}; moved aside")
                self.store.move_aside(KIND, key)
                continue
            if not os.path.isfile(rec.stored):
                problems.append(f"image {rec.id}: file {rec.stored} is gone; record dropped")
                self.store.delete(KIND, rec.id)
                self._clean_dir(os.path.join(self.dir, rec.id))
                continue
            m = mountinfo.find(rec.mountpoint, mounts)
            if m is not None and m.fstype == "squashfs":
                loop = m.source if m.source.startswith("/dev/loop") else f"/dev/loop{m.minor}"
                if loop != rec.loop:
                    rec = replace(rec, loop=loop)
                    self.store.save(KIND, rec.id, rec.to_dict())
            else:
                try:
                    rec = self._remount(rec)
                    log.info("remounted image %s on %s", rec.id, rec.loop)
                except (OSError, TcrError) as exc:
                    why = getattr(exc, "strerror", None) or str(exc)
                    problems.append(f"image {rec.id}: cannot mount {rec.stored}: {why}")
                    self.unmounted[rec.id] = why
            self.records[rec.id] = rec
        self._dedupe_tags()
        problems.extend(self._clean_orphans())
        for p in problems:
            log.warning("%s", p)
        return problems

    def _remount(self, rec: ImageRecord) -> ImageRecord:
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
        self.store.save(KIND, rec.id, rec.to_dict())
        return rec

    def _dedupe_tags(self) -> None:
        """After a crash between two record writes a tag may be claimed twice: the newest wins."""
        owner: Dict[str, ImageRecord] = {}
        for rec in sorted(self.records.values(), key=lambda r: (r.loaded_at, r.id)):
            for t in rec.tags:
                owner[t] = rec
        for rec in list(self.records.values()):
            keep = tuple(t for t in rec.tags if owner[t].id == rec.id)
            if keep != rec.tags:
                upd = replace(rec, tags=keep)
                self.store.save(KIND, upd.id, upd.to_dict())
                self.records[upd.id] = upd

    def _clean_orphans(self) -> List[str]:
        """Remove what a crash left half-made: dirs and mounts without records, stray loop devices."""
        problems: List[str] = []
        try:
            names = os.listdir(self.dir)
        except OSError:
            return problems
        for name in names:
            p = os.path.join(self.dir, name)
            if name.endswith(".json") or name.endswith(".corrupt") or not os.path.isdir(p):
                continue
            if name in self.records or os.path.exists(p + ".json"):
                continue  # a record we could not use (e.g. from a newer tcr) still owns its directory
            problems.append(f"removed leftover image directory {p} (no record)")
            self._clean_dir(p)
        # Loop devices on our files that nothing mounts (e.g. a crash inside a non-autoclear attach).
        mounted = _mounted_loops()
        for n, bf in loopdev.attached().items():
            f = _strip_deleted(bf)
            if _is_under(f, self.dir) and n not in mounted:
                try:
                    loopdev.detach(n)
                    problems.append(f"detached stray loop device /dev/loop{n} ({f})")
                except OSError:
                    pass
        return problems


def _strip_deleted(bf: str) -> str:
    return bf[: -len(" (deleted)")] if bf.endswith(" (deleted)") else bf


def _is_under(path: str, d: str) -> bool:
    return path == d or path.startswith(d.rstrip("/") + "/")


def _mounted_loops() -> set:
    """Loop device numbers that back some mount (in our mount namespace)."""
    return {m.minor for m in mountinfo.read() if m.major == loopdev.LOOP_MAJOR}


def parse_sidecar(text: str) -> str:
    """'<hex>  <name>' (sha256sum format), a bare hex, or 'sha256:<hex>' -> lowercase hex."""
    tok = text.strip().split()[0] if text.strip() else ""
    if tok.startswith("sha256:"):
        tok = tok[len("sha256:"):]
    tok = tok.lower()
    if len(tok) != 64 or any(c not in "0123456789abcdef" for c in tok):
        raise ValueError("no sha256 hex digest in it")
    return tok


def sha256_file(path: str) -> str:
    h = sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()
