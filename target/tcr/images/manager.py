"""The image manager: load (take the file, check it, loop-mount), lookup, remove, verify, recover.

State layout under the daemon's root (docs/image_manager.md, docs/formats.md):
  images/<id>.json          the ImageRecord (StateStore kind "images", v2), written after the mount
  images/<id>/              0700: only root reaches what is inside
  images/<id>/image.sqfs    the store's own inode: a root:root 0444 copy, or the file itself (--move)
  images/<id>/image.sqfs.sha256   checksum sidecar, written at load when the source had one (checked)
  images/<id>/mnt/          read-only squashfs mount (loop device with autoclear)
  images/.load-XXXX/        staging directory of a load in progress (cleaned up at recovery)
  incoming/                 uploads of `tcr -H ... image load`: removed on every path of the load

The long steps (copy, hash, fs-verity, validation) run in a forked worker (tcr.images.store via
tcr.daemon.worker), and so do attach, mount and the fsync'd record (install(), a second worker):
on the event loop only what needs the daemon's state (is this id loaded or being installed).
"""

from __future__ import annotations

import errno
import os
import time

from tcr.common import fileread
from tcr.common.atomic import remove_durable
from tcr.common.errors import InternalError, InUse, InvalidArgument, TcrError
from tcr.common.faults import fault
from tcr.common.log import get_logger
from tcr.common.record import dataclass, replace
from tcr.common.tree import make_private_dir, remove_tree
from tcr.daemon.state import StateStore
from tcr.formats.image_info import ImageInfo
from tcr.images import refs, storedfile
from tcr.images.record import ImageRecord, StoredFile, check_arch
from tcr.kernel import mount as kmount
from tcr.kernel import mountinfo

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Union


log = get_logger("tcr.images")

KIND = "images"
STORED_NAME = storedfile.STORED_NAME
MOUNT_FLAGS = storedfile.MOUNT_FLAGS
STAGING_PREFIX = ".load-"
INCOMING = "incoming"

if TYPE_CHECKING:
    Done = Callable[[Union[Any, TcrError]], None]


@dataclass
class LoadJob:
    src: str
    staging: str
    move: bool
    upload: bool  # a file in <root>/incoming: moved, and removed whatever happens


class ImageManager:
    def __init__(self, root: str, store: StateStore, daemon: Any = None, machine: Optional[str] = None):
        self.root = root
        self.dir = os.path.join(root, KIND)
        self.store = store
        self.daemon = daemon  # for daemon.containers.uses_image() and daemon.loop; None in tests
        self.machine = machine  # platform.machine() override, for tests
        self.records: Dict[str, ImageRecord] = {}
        self.unmounted: Dict[str, str] = {}  # id -> why it is not mounted (recovery)
        self.broken: Dict[str, str] = {}  # id -> why it must not be used (its file changed)
        self._installing: Dict[str, List[Done]] = {}  # id -> finishers waiting for its install()

    # ---- queries -----------------------------------------------------------------------------

    def list(self) -> List[ImageRecord]:
        return sorted(self.records.values(), key=lambda r: (-r.info.created, r.id))

    def get(self, ref: str) -> ImageRecord:
        return refs.resolve(self.records.values(), ref)

    def is_mounted(self, rec: ImageRecord) -> bool:
        m = mountinfo.find(rec.mountpoint)
        return m is not None and m.fstype == "squashfs"

    def check_usable(self, rec: ImageRecord) -> None:
        why = self.broken.get(rec.id) or self.unmounted.get(rec.id)
        if why:
            raise InvalidArgument(f"image {rec.display_ref} ({rec.id}) is broken: {why}",
                                  hint="remove it (tcr image rm) and load it again")

    def read_config(self, rec: ImageRecord) -> bytes:
        """The image's bundle/config.json: bounded, non-blocking, a regular file only."""
        self.check_usable(rec)
        return fileread.read_bytes(rec.config_path, fileread.IMAGE_CONFIG_CAP,
                                   what=f"config.json of image {rec.id}")

    # ---- background work ---------------------------------------------------------------------

    def _run(self, fn: Callable[..., Any], args: tuple, what: str, on_done: Done) -> None:
        """fn(*args) in a forked worker when the daemon's loop runs; inline otherwise (tests)."""
        loop = getattr(self.daemon, "loop", None) if self.daemon is not None else None
        if loop is None:
            try:
                result = fn(*args)
            except TcrError as exc:
                result = exc
            on_done(result)
            return
        from tcr.daemon import worker

        worker.spawn(loop, fn, args, what=what, on_done=on_done)

    # ---- load --------------------------------------------------------------------------------

    def _is_upload(self, src: str) -> bool:
        return src.startswith(os.path.join(self.root, INCOMING) + os.sep)

    def _drop_upload(self, src: str) -> None:
        """A file uploaded by `tcr -H ... image load` lives in <root>/incoming only until its load ends."""
        if self._is_upload(src):
            for p in (src, src + ".sha256"):
                try:
                    os.unlink(p)
                except OSError:
                    pass

    def load_async(self, path: str, move: bool, on_done: Done) -> None:
        """Load path; on_done(ImageRecord or TcrError) later, from the event loop.

        Raises TcrError at once for what needs no file reading (missing file, no room to stage).
        """
        src = os.path.abspath(path)
        upload = self._is_upload(src)
        try:
            if not os.path.lexists(src):
                raise InvalidArgument(f"{path}: no such file")
            if not os.path.isfile(src):
                raise InvalidArgument(f"{path} is not a regular file")
            os.makedirs(self.dir, mode=0o711, exist_ok=True)
            staging = make_private_dir(self.dir, STAGING_PREFIX)  # 0700
        except OSError as exc:
            self._drop_upload(src)
            raise InternalError(f"cannot load {path}: {exc.strerror or exc}")
        except TcrError:
            self._drop_upload(src)
            raise
        job = LoadJob(src=src, staging=staging, move=move or upload, upload=upload)

        def finish(out: Any) -> None:
            """Every path ends here: the staging dir and an upload go, then the client hears."""
            self._end_load(job)  # before the reply: the client sees the final state
            on_done(out)

        def staged(result: Any) -> None:
            try:
                if isinstance(result, TcrError):
                    raise result
                self._install_async(job, result, finish)
            except BaseException as exc:
                finish(_load_error(path, exc))

        args = (src, staging, job.move, sorted(self.records), self.machine)
        try:
            self._run(_stage, args, "image load", staged)
        except BaseException:
            self._end_load(job)
            raise

    def load(self, path: str, move: bool = False) -> ImageRecord:
        """Synchronous load, in this process (tests and tools without an event loop)."""
        box: List[Any] = []
        self.load_async(path, move, box.append)
        if not box:
            raise InternalError("image load: synchronous load needs a manager without an event loop")
        if isinstance(box[0], TcrError):
            raise box[0]
        return box[0]

    def _end_load(self, job: LoadJob) -> None:
        """Whatever happened: the staging dir goes (if still there), an upload goes."""
        if job.staging and os.path.lexists(job.staging):
            self._clean_dir(job.staging)
        job.staging = ""
        self._drop_upload(job.src)

    def _install_async(self, job: LoadJob, result: Dict[str, Any], finish: Done) -> None:
        """The worker staged and checked the file. Here, on the loop, only what needs the daemon's
        state (is the image loaded already, or being installed by a concurrent load?); the attach,
        the rename into place, the mount and the fsync'd record run in a second worker (install()):
        on a disk busy with the copy just made they take tens of ms (docs/benchmarks.md)."""
        if not isinstance(result, dict):
            raise InternalError("image load: bad result from the worker")
        if "already" in result:
            rec = self.records.get(str(result["already"]))
            if rec is None:
                raise InUse("image load: the same image was removed meanwhile; load it again")
            finish(rec)
            return
        info = ImageInfo.from_dict(result.get("info"))
        stored_file = StoredFile.from_dict(result.get("stored"))
        check_arch(info.arch, self.machine)
        if info.id in self.records:  # a concurrent load of the same image finished first
            finish(self.records[info.id])
            return
        waiting = self._installing.get(info.id)
        if waiting is not None:  # ... or is being installed: share its outcome
            waiting.append(finish)
            return
        final = os.path.join(self.dir, info.id)
        rec = ImageRecord(
            id=info.id, info=info, source=job.src, stored=os.path.join(final, STORED_NAME),
            mountpoint=os.path.join(final, "mnt"), loop="", loaded_at=int(time.time()),
            tags=(f"{info.name}:{info.tag}",) if info.tag else (), size=stored_file.size,
            stored_file=stored_file,
        )
        waiting = self._installing[info.id] = [finish]

        def installed(res: Any) -> None:
            self._installing.pop(info.id, None)
            out: Union[ImageRecord, TcrError]
            try:
                if isinstance(res, TcrError):
                    raise res
                if not isinstance(res, dict) or not isinstance(res.get("loop"), str):
                    raise InternalError("image load: bad result from the worker")
                out = replace(rec, loop=res["loop"])
                job.staging = ""  # it is the image's directory now
                self._took(out, result)
            except BaseException as exc:
                self._undo_install(rec)
                out = _load_error(job.src, exc)
            for fin in waiting:
                fin(out)

        try:
            self._run(install, (job.staging, rec.to_dict(), self.store), "image load", installed)
        except BaseException:
            self._installing.pop(info.id, None)
            raise

    def _took(self, rec: ImageRecord, result: Dict[str, Any]) -> None:
        """The image is mounted and its record on disk (written by install()): take it in."""
        self._take_tags(rec)
        self.records[rec.id] = rec
        self.broken.pop(rec.id, None)
        self.unmounted.pop(rec.id, None)
        self.store.announce(KIND, rec.id, rec.to_dict())
        sf = rec.stored_file
        log.info("loaded image %s (%s) on %s (%s%s)", rec.id, rec.display_ref, rec.loop,
                 result.get("method"), "" if sf is not None and sf.verity else
                 f"; no fs-verity: {result.get('verityError') or 'pending'}")
        if not result.get("sealed", True):
            self._seal_later(rec)

    def _undo_install(self, rec: ImageRecord) -> None:
        """A failed or killed install(): whatever of it happened goes (record, mount, directory)."""
        if rec.id in self.records:
            return
        try:
            remove_durable(self.store.path(KIND, rec.id))
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("image %s: cannot remove the record of a failed load: %s", rec.id, exc.strerror)
        if os.path.lexists(os.path.dirname(rec.stored)):
            self._clean_dir(os.path.dirname(rec.stored))

    def _seal_later(self, rec: ImageRecord) -> None:
        """--move: hash the stored file and turn fs-verity on after the load returned
        (tcr.images.occasional)."""
        from tcr.images import occasional

        occasional.seal_later(self, rec)

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
        """`tcr image tag`: one more name:tag for the image (tcr.images.occasional)."""
        from tcr.images import occasional

        return occasional.tag(self, ref, target)

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
        clean_dir(d)

    # ---- verify ------------------------------------------------------------------------------

    def verify_async(self, ref: str, on_done: Done) -> None:
        """Hash the stored file (in a worker) against its sidecar and the digest recorded at load;
        on_done(sha256 hex or TcrError) (tcr.images.occasional)."""
        from tcr.images import occasional

        occasional.verify_async(self, ref, on_done)

    def verify(self, ref: str) -> str:
        """Synchronous verify (tests and tools without an event loop)."""
        box: List[Any] = []
        self.verify_async(ref, box.append)
        if not box:
            raise InternalError("image verify: synchronous verify needs a manager without an event loop")
        if isinstance(box[0], TcrError):
            raise box[0]
        return box[0]

    # ---- recovery ----------------------------------------------------------------------------

    def recover(self) -> List[str]:
        """Rebuild state from records + the kernel. Returns one line per problem found.
        Start-up only: tcr.images.recovery, which tcrd drops once it listens (docs/profile.md)."""
        from tcr.images import recovery

        return recovery.recover(self)


def install(*args: Any) -> Any:
    """Put a staged image in place (tcr.images.installer.install). Runs in a worker: the code is
    imported there, after the fork, so the daemon never holds it."""
    from tcr.images import installer

    return installer.install(*args)


def _load_error(path: str, exc: BaseException) -> TcrError:
    """Any failure of a load as the one line its client gets."""
    if isinstance(exc, TcrError):
        return exc
    if isinstance(exc, OSError):
        from tcr.common import oserrors

        if oserrors.is_host_error(exc):
            return oserrors.to_error(exc)
        return InternalError(f"cannot load {path}: {exc.strerror or exc}")
    log.exception("image load of %s failed", path)  # a bug: called from an except block
    return InternalError(f"cannot load {path}: internal error: {type(exc).__name__}: {exc}"[:500])


def clean_dir(d: str) -> None:
    """Unmount everything under d (deepest first), drop its loop devices, delete it."""
    # Not at the top: tcrd drops tcr.kernel.loopdev after start-up (tcr.daemon.main); an image rm,
    # a failed load or the worker's install() loads it again.
    from tcr.kernel import loopdev

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
    remove_tree(d)


def _strip_deleted(bf: str) -> str:
    return bf[: -len(" (deleted)")] if bf.endswith(" (deleted)") else bf


def _is_under(path: str, d: str) -> bool:
    return path == d or path.startswith(d.rstrip("/") + "/")


def _mounted_loops() -> set:
    """Loop device numbers that back some mount (in our mount namespace)."""
    from tcr.kernel.loopdev import LOOP_MAJOR

    return {m.minor for m in mountinfo.read() if m.major == LOOP_MAJOR}


def parse_sidecar(text: str) -> str:  # kept for callers of the old name
    from tcr.images import store

    return store.parse_sidecar(text)


# The store's file work runs in a forked worker (self._run): these import tcr.images.store (and
# its reader, fs-verity and xxh64) in the child, so the daemon never holds that code.

def _stage(*args: Any) -> Any:
    from tcr.images import store

    return store.stage(*args)
