"""`tcr cp` archives: writing a tar stream of a path and extracting one safely.

Used in two places only, never by the idle daemon: the forked cp worker (already confined in the
container's root, tcr.containers.cpworker) and the `tcr cp` client (tcr.cli.cp). tarfile is
imported here, so only they pay for it.

Writing (write()): a tar of one path, its top entry named as docker names it (cpplan.top_name),
members in a stable order; regular files are opened with O_NOFOLLOW|O_NONBLOCK and checked
with fstat (a file swapped for a FIFO or a device between the walk and the open is skipped, never
read), and exactly the size in the header is sent (a file that shrinks meanwhile is padded).
Device nodes and FIFOs are recorded, never opened; sockets are skipped (as docker).

Extracting (Extractor): every member name is checked (no absolute name, no '..'), then reached
from the destination directory one component at a time with O_NOFOLLOW: a symlink the archive
itself created is never followed (the "symlink, then a file through it" trick); a symlink that
was already there is followed as docker does (inside the container that is confined by the
worker's chroot; on the host it is the user's own tree). Hard links may only point at files this
archive extracted. Regular files are written to a temporary name and renamed into place, so a
broken stream never leaves a truncated file. Modes and mtimes are kept; owners only when asked
(-a); device nodes only when allowed (inside the container, where its root could make them
anyway; never on the host from a container's archive).
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile

from tcr.containers.cpplan import CpError, names

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, Dict, List, Optional, Set, Tuple

CHUNK = 64 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC  # O_DIRECTORY: never a device's open()
_O_PATH = getattr(os, "O_PATH", 0o10000000)


# ---- writing ---------------------------------------------------------------------------------


class _Exactly:
    """A file object giving exactly `size` bytes of fd: short files are padded with zeros."""

    def __init__(self, fd: int, size: int):
        self.fd = fd
        self.left = size

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if n < 0 else min(n, self.left)
        data = os.read(self.fd, min(n, CHUNK * 4))
        if not data:
            data = b"\0" * min(n, CHUNK)
        self.left -= len(data)
        return data


def _info(name: str, st: os.stat_result) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.mtime = int(st.st_mtime)
    return ti


class Writer:
    """Adds a path (and everything below a directory) to a streaming tar."""

    def __init__(self, out: IO[bytes], proc_fd: Optional[int] = None):
        """proc_fd: a directory fd of the host's /proc (the worker opens it before it confines
        itself): regular files are then opened O_PATH, checked, and reopened through
        /proc/self/fd, so a file swapped for a device node between the walk and the open never
        reaches the device's driver (opening some has effects: a watchdog starts counting)."""
        self.tar = tarfile.open(  # noqa: SIM115 - closed by close()
            fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape",
            bufsize=CHUNK)  # one 64 KiB frame per write, not 10 KiB records
        self.links: Dict[Tuple[int, int], str] = {}
        self.skipped = 0
        self.proc_fd = proc_fd

    def add_tree(self, path: str, name: str, follow: bool = False) -> None:
        """path's entry as `name`, then (for a directory) all below it, depth first, sorted.

        The walk holds an fd of each directory it is in and reaches every entry relative to it
        with O_NOFOLLOW (checked against the entry's stat), so a directory swapped for a symlink
        while we walk is skipped, never followed: the walk cannot be sent round in circles or
        elsewhere."""
        top = self._add(path, name, follow, None)
        if top is None:
            return
        stack: List[Tuple[int, str, Any]] = [(top, "./" if name == "." else name + "/", None)]
        try:
            while stack:
                fd, prefix, it = stack[-1]
                if it is None:
                    it = iter(self._names(fd, prefix))
                    stack[-1] = (fd, prefix, it)
                entry = next(it, None)
                if entry is None:
                    stack.pop()
                    os.close(fd)
                    continue
                sub = self._add(entry, prefix + entry, False, fd)
                if sub is not None:
                    stack.append((sub, prefix + entry + "/", None))
        finally:
            for fd, _p, _i in stack:
                os.close(fd)

    @staticmethod
    def _names(fd: int, where: str) -> List[str]:
        try:
            return sorted(os.listdir(fd))
        except OSError as exc:
            raise CpError(f"cannot read directory {where.rstrip('/')}: {exc.strerror}")

    def _add(self, p: str, n: str, follow: bool, dir_fd: Optional[int]) -> Optional[int]:
        """Add one entry (p relative to dir_fd); for a directory, return an fd of it to descend."""
        try:
            st = os.stat(p, dir_fd=dir_fd, follow_symlinks=follow)
        except FileNotFoundError:
            self.skipped += 1  # removed while we walked
            return None
        except OSError as exc:
            raise CpError(f"cannot read {n}: {exc.strerror}")
        mode = st.st_mode
        ti = _info(n, st)
        if stat.S_ISDIR(mode):
            try:
                fd = os.open(p, _DIR_FLAGS | (0 if follow else os.O_NOFOLLOW), dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):  # swapped meanwhile
                    self.skipped += 1
                    return None
                raise CpError(f"cannot read directory {n}: {exc.strerror}")
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                os.close(fd)
                self.skipped += 1
                return None
            ti.type = tarfile.DIRTYPE
            try:
                self.tar.addfile(ti)
            except BaseException:
                os.close(fd)
                raise
            return fd
        if stat.S_ISLNK(mode):
            ti.type = tarfile.SYMTYPE
            ti.linkname = os.readlink(p, dir_fd=dir_fd)
            self.tar.addfile(ti)
            return None
        if stat.S_ISREG(mode):
            self._add_file(p, ti, follow, dir_fd)
            return None
        if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            ti.type = (tarfile.FIFOTYPE if stat.S_ISFIFO(mode) else
                       tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE)
            if not stat.S_ISFIFO(mode):
                ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self.tar.addfile(ti)
            return None
        self.skipped += 1  # sockets (docker skips them too)
        return None

    def _open_regular(self, p: str, follow: bool, dir_fd: Optional[int]) -> Optional[int]:
        """An fd to read p, if it is (still) a regular file; None if it is not (or is gone)."""
        nofollow = 0 if follow else os.O_NOFOLLOW
        try:
            if self.proc_fd is None:
                return os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | nofollow, dir_fd=dir_fd)
            pfd = os.open(p, _O_PATH | os.O_CLOEXEC | nofollow, dir_fd=dir_fd)  # no driver's open()
            try:
                if not stat.S_ISREG(os.fstat(pfd).st_mode):
                    return None
                return os.open(f"self/fd/{pfd}", os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.proc_fd)
            finally:
                os.close(pfd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOENT, errno.ENXIO):  # swapped or removed meanwhile
                return None
            raise CpError(f"cannot read {p}: {exc.strerror}")

    def _add_file(self, p: str, ti: tarfile.TarInfo, follow: bool, dir_fd: Optional[int]) -> None:
        fd = self._open_regular(p, follow, dir_fd)
        if fd is None:
            self.skipped += 1
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self.skipped += 1  # swapped for a FIFO or a device: never read one
                return
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1:
                first = self.links.get(key)
                if first is not None:
                    ti.type = tarfile.LNKTYPE
                    ti.linkname = first
                    ti.size = 0
                    self.tar.addfile(ti)
                    return
                self.links[key] = ti.name
            ti.type = tarfile.REGTYPE
            ti.size = st.st_size
            self.tar.addfile(ti, _Exactly(fd, st.st_size))  # type: ignore[arg-type]
        finally:
            os.close(fd)

    def close(self) -> None:
        self.tar.close()


# ---- extracting ------------------------------------------------------------------------------


class Extractor:
    """Extracts members of a streaming tar under the directory `root` (see the module doc)."""

    def __init__(self, root: str, rename: Any = None, owners: Optional[Tuple[int, int]] = None,
                 keep_owners: bool = False, devices: bool = False, setid: bool = True):
        """rename(components) -> components (a cpplan.Plan's rename); owners: (uid, gid) for every
        entry (the container's root, without -a); keep_owners: the archive's (-a); devices:
        create device nodes (else they are skipped and counted); setid: keep set-uid/set-gid
        bits (else they are dropped: the host side, from a container's archive, without -a)."""
        self.root = root
        self.rootfd = os.open(root, _DIR_FLAGS)
        self.rename = rename
        self.owners = owners
        self.keep_owners = keep_owners
        self.devices = devices
        self.mode_mask = 0o7777 if setid else 0o1777
        self.made_links: Set[Tuple[str, ...]] = set()  # symlinks this archive created
        self.made_files: Set[Tuple[str, ...]] = set()  # regular files it extracted (link targets)
        self.dirs: List[Tuple[Tuple[str, ...], tarfile.TarInfo]] = []  # modes and times set last
        self.skipped_devices = 0
        self.count = 0

    def close(self) -> None:
        if self.rootfd >= 0:
            os.close(self.rootfd)
            self.rootfd = -1

    # The parent directory of a member, reached component by component.
    def _parent(self, comps: List[str], create: bool) -> int:
        fd = os.dup(self.rootfd)
        try:
            for i, part in enumerate(comps):
                here = tuple(comps[:i + 1])
                if here in self.made_links:
                    raise CpError("invalid archive: member " + "/".join(comps)[:200]
                                  + " goes through a symlink the archive created")
                try:
                    nfd = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, 0o755, dir_fd=fd)  # a parent the archive does not list
                    self._chown(part, fd, None)
                    nfd = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                    if not stat.S_ISLNK(st.st_mode):
                        raise CpError("cannot extract " + "/".join(comps)[:200] + ": "
                                      + "/".join(comps[:i + 1])[:200] + " is not a directory")
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)  # a symlink that was there: followed
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _chown(self, name: str, dirfd: int, ti: Optional[tarfile.TarInfo]) -> None:
        if self.keep_owners and ti is not None:
            os.chown(name, ti.uid, ti.gid, dir_fd=dirfd, follow_symlinks=False)
        elif self.owners is not None:
            os.chown(name, self.owners[0], self.owners[1], dir_fd=dirfd, follow_symlinks=False)

    def add(self, tar: tarfile.TarFile, ti: tarfile.TarInfo) -> None:
        comps = names(ti.name)
        if self.rename is not None:
            comps = self.rename(comps)
        self.count += 1
        if not comps:  # the destination directory itself ('.' into an existing directory)
            return
        if (ti.ischr() or ti.isblk()) and not self.devices:  # (isdev() includes FIFOs)
            self.skipped_devices += 1
            return
        pfd = self._parent(comps[:-1], create=True)
        try:
            self._add_in(tar, ti, comps, pfd)
        finally:
            os.close(pfd)

    def _existing(self, name: str, pfd: int) -> Optional[os.stat_result]:
        try:
            return os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _add_in(self, tar: tarfile.TarFile, ti: tarfile.TarInfo, comps: List[str], pfd: int) -> None:
        name = comps[-1]
        key = tuple(comps)
        old = self._existing(name, pfd)
        where = "/".join(comps)[:200]
        if old is not None and stat.S_ISDIR(old.st_mode) and not ti.isdir():
            raise CpError(f"cannot overwrite directory {where} with non-directory")
        if old is not None and not stat.S_ISDIR(old.st_mode) and ti.isdir():
            raise CpError(f"cannot overwrite non-directory {where} with directory")
        self.made_links.discard(key)
        self.made_files.discard(key)
        if ti.isdir():
            if old is None:
                os.mkdir(name, 0o700, dir_fd=pfd)  # its mode once everything below is written
            self._chown(name, pfd, ti)
            self.dirs.append((key, ti))
            return
        if ti.isreg():
            self._file(tar, ti, name, pfd)
            self.made_files.add(key)
            return
        if old is not None:
            os.unlink(name, dir_fd=pfd)
        if ti.issym():
            if not ti.linkname or "\0" in ti.linkname:
                raise CpError(f"invalid archive: symlink {where} has an empty target")
            os.symlink(ti.linkname, name, dir_fd=pfd)
            self.made_links.add(key)
            self._chown(name, pfd, ti)
            self._times(name, pfd, ti, follow=False)
            return
        if ti.islnk():
            target = names(ti.linkname)
            if self.rename is not None:
                target = self.rename(target)
            if tuple(target) not in self.made_files:
                raise CpError(f"invalid archive: hard link {where} to {ti.linkname[:200]!r}, "
                              "which the archive did not contain")
            tfd = self._parent(target[:-1], create=False)
            try:
                os.link(target[-1], name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            finally:
                os.close(tfd)
            self.made_files.add(key)
            return
        if ti.isfifo() or ti.isdev():
            kind = stat.S_IFIFO if ti.isfifo() else stat.S_IFCHR if ti.ischr() else stat.S_IFBLK
            dev = 0 if ti.isfifo() else os.makedev(ti.devmajor, ti.devminor)
            os.mknod(name, kind | 0o600, dev, dir_fd=pfd)
            self._chown(name, pfd, ti)
            os.chmod(name, ti.mode & self.mode_mask, dir_fd=pfd)
            self._times(name, pfd, ti)
            return
        raise CpError(f"invalid archive: {where} has an unsupported type {ti.type!r}")

    def _file(self, tar: tarfile.TarFile, ti: tarfile.TarInfo, name: str, pfd: int) -> None:
        tmp = f".tcr-cp.{os.getpid()}.{self.count}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=pfd)
        try:
            src = tar.extractfile(ti)
            while src is not None:
                data = src.read(CHUNK)
                if not data:
                    break
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            if self.keep_owners:
                os.fchown(fd, ti.uid, ti.gid)
            elif self.owners is not None:
                os.fchown(fd, *self.owners)
            os.fchmod(fd, ti.mode & self.mode_mask)  # after chown, which clears set-id bits
            os.utime(fd, (ti.mtime, ti.mtime))
            os.close(fd)
            fd = -1
            os.rename(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            try:
                os.unlink(tmp, dir_fd=pfd)
            except OSError:
                pass
            raise

    def _times(self, name: str, pfd: int, ti: tarfile.TarInfo, follow: bool = True) -> None:
        try:
            os.utime(name, (ti.mtime, ti.mtime), dir_fd=pfd, follow_symlinks=follow)
        except OSError:
            pass  # symlink times are not settable everywhere; not worth failing a copy

    def finish(self) -> None:
        """Directory modes and times, deepest first (their contents changed them meanwhile)."""
        for key, ti in sorted(self.dirs, key=lambda d: -len(d[0])):
            comps = list(key)
            pfd = self._parent(comps[:-1], create=False)
            try:
                fd = os.open(comps[-1], _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=pfd)
            finally:
                os.close(pfd)
            try:
                os.fchmod(fd, ti.mode & self.mode_mask)
                os.utime(fd, (ti.mtime, ti.mtime))
            finally:
                os.close(fd)


def open_stream(f: IO[bytes]) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=f, mode="r|", encoding="utf-8", errors="surrogateescape")
    except tarfile.TarError as exc:
        raise CpError(f"invalid archive: {exc}")


def members(tar: tarfile.TarFile) -> Any:
    """The members of a streaming tar; a broken stream is one clear line."""
    try:
        yield from tar
    except tarfile.TarError as exc:
        raise CpError(f"invalid archive: {exc}")


def bad_archive(exc: BaseException) -> Optional[CpError]:
    if isinstance(exc, tarfile.TarError):
        return CpError(f"invalid archive: {exc}")
    return None
