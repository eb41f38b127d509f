"""The image store's file work: take a file into the store (copy or move), check and fingerprint it.

Everything here runs in a short-lived worker process (tcr.daemon.worker), never on the event loop:
it reads and writes whole images. stage() returns a JSON-able dict for the parent, which then
attaches, mounts and records the image (tcr.images.manager).

Ownership rules (docs/security.md): the stored file is a new inode that only root can reach and
nobody can write: created by root with mode 0444 inside a 0700 directory (copy), or the user's
file renamed into it (`--move`, and uploads through `tcr -H`), which is refused unless that file
is root's and has no other hard link. Its fingerprint (size, mtime, ctime, inode, sha256) is
recorded and checked again before every remount; fs-verity is turned on where the kernel and the
filesystem have it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from tcr.common import fileread
from tcr.common.errors import InvalidArgument, TcrError
from tcr.images import reader
from tcr.images.record import StoredFile, check_arch
from tcr.images.storedfile import MOUNT_FLAGS, STORED_MODE, STORED_NAME, fingerprint
from tcr.kernel import fsverity, loopdev
from tcr.kernel import mount as kmount

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Sequence

FICLONE = 0x40049409  # _IOW(0x94, 9, int): share the source's extents (btrfs, XFS, bcachefs)
_CHUNK = 1 << 20


# ---- copying ---------------------------------------------------------------------------------

def _reflink(src_fd: int, dst_fd: int) -> bool:
    try:
        fcntl.ioctl(dst_fd, FICLONE, src_fd)
        return True
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.EBADF, errno.EPERM):
            return False
        raise


def copy_fd(src_fd: int, dst_fd: int, size: int, allow_reflink: bool = True) -> str:
    """Copy size bytes from src_fd to dst_fd (both at offset 0). Returns the method used:
    "reflink" (FICLONE), "copy_file_range" (in the kernel) or "read/write"."""
    if allow_reflink and _reflink(src_fd, dst_fd):
        return "reflink"
    done = 0
    method = "copy_file_range"
    cfr = getattr(os, "copy_file_range", None)
    if cfr is not None:
        try:
            while done < size:
                n = cfr(src_fd, dst_fd, min(size - done, 1 << 30), done, done)
                if n == 0:
                    break
                done += n
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL) or done:
                raise
            cfr = None
    if cfr is None:
        method = "read/write"
        while done < size:
            chunk = os.pread(src_fd, min(_CHUNK, size - done), done)
            if not chunk:
                break
            view = memoryview(chunk)
            while view:
                w = os.pwrite(dst_fd, view, done)
                view = view[w:]
                done += w
    if done != size:
        raise InvalidArgument(f"the file changed size while it was copied ({done} of {size} bytes)")
    return method


def sha256_fd(fd: int) -> str:
    """sha256 of a whole file. OpenSSL's (fast) is fine here: this runs in a worker, whose memory
    goes back to the system when it exits."""
    try:
        import hashlib

        h: Any = hashlib.sha256()
    except ImportError:  # pragma: no cover - a Python without OpenSSL
        from tcr.common.digest import sha256

        h = sha256()
    off = 0
    while True:
        chunk = os.pread(fd, 4 * _CHUNK, off)
        if not chunk:
            return h.hexdigest()
        h.update(chunk)
        off += len(chunk)


def sha256_file(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidArgument(f"{path}: not a regular file")
        return sha256_fd(fd)
    finally:
        os.close(fd)


# ---- sidecar ---------------------------------------------------------------------------------

def parse_sidecar(text: str) -> str:
    """'<hex>  <name>' (sha256sum format), a bare hex, or 'sha256:<hex>' -> lowercase hex."""
    tok = text.strip().split()[0] if text.strip() else ""
    if tok.startswith("sha256:"):
        tok = tok[len("sha256:"):]
    tok = tok.lower()
    if len(tok) != 64 or any(c not in "0123456789abcdef" for c in tok):
        raise ValueError("no sha256 hex digest in it")
    return tok


def read_sidecar(path: str) -> Optional[str]:
    """The digest in path (FILE.sqfs.sha256), None if there is none; a bad one is an error."""
    if not os.path.lexists(path):
        return None
    text = fileread.read_text(path, fileread.SIDECAR_CAP, what=path)
    try:
        return parse_sidecar(text)
    except ValueError as exc:
        raise InvalidArgument(f"{path}: {exc}")


# ---- stage (runs in the worker) --------------------------------------------------------------

def _open_source(src: str, move: bool) -> int:
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY | (os.O_NOFOLLOW if move else 0)
    try:
        fd = os.open(src, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidArgument(f"{src}: --move needs the file itself, not a symbolic link")
        if exc.errno == errno.ENOENT:
            raise InvalidArgument(f"{src}: no such file")
        raise InvalidArgument(f"cannot open {src}: {exc.strerror}")
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise InvalidArgument(f"{src} is not a regular file")
    return fd


def check_movable(src: str, st: os.stat_result, store_dev: int) -> None:
    """--move takes the inode itself: only a file nobody else owns or can reach by another name."""
    if st.st_uid != 0:
        raise InvalidArgument(f"image load --move: {src} is not owned by root (uid {st.st_uid})",
                              hint="load it without --move (the store keeps a private copy)")
    if st.st_nlink != 1:
        raise InvalidArgument(f"image load --move: {src} has {st.st_nlink - 1} other hard link(s)",
                              hint="another name could still change it; load it without --move")
    if st.st_dev != store_dev:
        raise InvalidArgument(f"image load --move: {src} is on another filesystem than the image store",
                              hint="load it without --move or move it to the store's filesystem")


def stage(src: str, staging: str, move: bool, loaded: Sequence[str], machine: Optional[str],
          allow_reflink: bool = True) -> Dict[str, Any]:
    """Take src into staging/image.sqfs and check it. Runs in a worker.

    Returns {"already": id} when a quick look at src shows an image that is already loaded (nothing
    is copied), else {"info": image-info dict, "stored": StoredFile dict, "method": copy method,
    "verityError": why fs-verity is off ("" if on)}. An image this Python cannot decompress is
    validated through a private mount of the stored file (read_via_mount), here as well.
    """
    fd = _open_source(src, move)
    try:
        st = os.fstat(fd)
        if move:
            check_movable(src, st, os.stat(staging).st_dev)
        # A quick look first (a few blocks): a wrong-arch or already-loaded image is refused
        # before anything is copied. The authoritative check is on the stored copy below.
        reader.check_magic(src)
        try:
            pre = reader.read_file(src)
        except reader.NeedsMount:
            pre = None
        if pre is not None:
            check_arch(pre.arch, machine)
            if pre.id in loaded:
                return {"already": pre.id}
        expected = read_sidecar(src + ".sha256")
        stored = os.path.join(staging, STORED_NAME)
        if move:
            method = "move"
            os.rename(src, stored)
            try:
                now = os.stat(stored, follow_symlinks=False)
                if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):  # swapped under us
                    raise InvalidArgument(f"image load --move: {src} was replaced while it was moved")
                check_movable(src, now, now.st_dev)
                os.chmod(stored, STORED_MODE)
            except BaseException:
                _put_back(stored, src)
                raise
        else:
            out = os.open(stored, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                          STORED_MODE)
            try:
                if allow_reflink and _reflink(fd, out):
                    method = "reflink"  # shares the extents: needs (almost) no free space
                else:
                    _check_room(staging, st.st_size)
                    method = copy_fd(fd, out, st.st_size, allow_reflink=False)
                os.fsync(out)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise _no_room(staging, st.st_size)
                raise
            finally:
                os.close(out)
        try:
            return _check_stored(src, stored, expected, move, machine, method)
        except BaseException:
            if move:
                _put_back(stored, src)
            raise
    finally:
        os.close(fd)


def _free_bytes(path: str) -> int:
    v = os.statvfs(path)
    return v.f_bavail * v.f_frsize


def _no_room(staging: str, size: int) -> TcrError:
    root = os.path.dirname(os.path.dirname(staging))
    return TcrError(f"image load: not enough space for the image in {root}: it needs {size >> 20} MiB, "
                    f"{_free_bytes(staging) >> 20} MiB free", hint="remove unused images (tcr image prune), "
                    "or load with --move to use the file's own space")


def _check_room(staging: str, size: int) -> None:
    """Refuse at once (nothing written) when the copy cannot fit; a reflink may need no space, but
    the filesystem cannot tell beforehand."""
    if _free_bytes(staging) < size:
        raise _no_room(staging, size)


def _check_stored(src: str, stored: str, expected: Optional[str], move: bool, machine: Optional[str],
                  method: str) -> Dict[str, Any]:
    if move:
        _fsync_path(stored)  # an upload renamed into place may not be on disk yet
    if expected is not None:
        digest = sha256_file(stored)
        if digest != expected:
            raise InvalidArgument(f"{src}: checksum mismatch: {os.path.basename(src)}.sha256 says "
                                  f"{expected}, the file has {digest}",
                                  hint="the file is damaged; copy it again")
        from tcr.common.atomic import write_atomic

        write_atomic(stored + ".sha256", f"{expected}  {os.path.basename(src)}\n", mode=0o444)
    try:
        info = reader.read_file(stored)
    except reader.NeedsMount:
        info = read_via_mount(src, stored, os.path.join(os.path.dirname(stored), "mnt"))
    check_arch(info.arch, machine)
    out: Dict[str, Any] = {"info": info.to_dict(), "method": method}
    if move and expected is None:
        # --move stays O(1): hashing and fs-verity (both read the whole file) follow in the
        # background once the image is loaded (seal()).
        out.update(stored=fingerprint(stored, "", False).to_dict(), sealed=False, verityError="")
        return out
    sealed = seal(stored, expected if expected is not None else None)
    out.update(stored=sealed["stored"], sealed=True, verityError=sealed["verityError"])
    return out


def mount_new(src: str, dev: str, mnt: str) -> None:
    """Mount a newly loaded image: what the kernel refuses to read is a damaged file (the user's
    input), not an internal error."""
    try:
        kmount.mount(dev, mnt, "squashfs", MOUNT_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.EIO, errno.EINVAL, errno.EUCLEAN, errno.EBADMSG):
            raise InvalidArgument(f"{src}: damaged squashfs image (the kernel cannot mount it: "
                                  f"{os.strerror(exc.errno)})")
        raise


def read_via_mount(src: str, stored: str, mnt: str) -> Any:
    """The ImageInfo of stored, validated through a private read-only mount at mnt (made and
    undone here; a crash leaves it inside the staging directory, which recovery removes)."""
    os.makedirs(mnt, mode=0o755, exist_ok=True)
    loop = loopdev.attach(stored)
    try:
        mount_new(src, loop.path, mnt)
        try:
            return reader.read_dir(src, mnt)
        finally:
            if not kmount.umount_quiet(mnt):
                kmount.umount_quiet(mnt, kmount.UMOUNT_NOFOLLOW | kmount.MNT_DETACH)
    finally:
        loop.close()  # not mounted any more: autoclear detaches the device


def seal(stored: str, digest: Optional[str] = None) -> Dict[str, Any]:
    """Hash the stored file (unless digest is known), turn fs-verity on where possible and take its
    fingerprint. Runs in a worker; for --move loads after the image is mounted."""
    if digest is None:
        digest = sha256_file(stored)
    ok, why = fsverity.enable(stored)
    return {"stored": fingerprint(stored, digest, ok).to_dict(), "verityError": "" if ok else why}


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _put_back(stored: str, src: str) -> None:
    """A failed --move gives the file back under its old name (when that name is still free)."""
    try:
        os.link(stored, src)
    except OSError:
        return
    try:
        os.unlink(stored)
    except OSError:
        pass


def verify(stored: str, want: Optional[StoredFile], sidecar: Optional[str]) -> Dict[str, Any]:
    """`image verify`: hash the stored file and compare with the sidecar and the load-time record.
    Runs in a worker."""
    digest = sha256_file(stored)
    expected = None
    if sidecar is not None and os.path.lexists(sidecar):
        expected = read_sidecar(sidecar)
    problems = []
    if expected is not None and digest != expected:
        problems.append(f"sidecar says {expected}")
    if want is not None and want.sha256 and digest != want.sha256:
        problems.append(f"recorded at load {want.sha256}")
    if problems:
        raise TcrError(f"checksum MISMATCH: the file has {digest}, " + ", ".join(problems))
    if expected is None and (want is None or not want.sha256):
        raise InvalidArgument("no checksum to compare with: no .sha256 sidecar, no digest recorded at load")
    return {"sha256": digest}
