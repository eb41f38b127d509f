"""The `tcr cp` worker: runs in a forked child (tcr.daemon.worker), confined to the container.

The container's root file system is hostile: any path in it may be a symlink planted to lead
tcrd out (`/tmp/x -> /etc`, `-> ../../..`). So before the worker touches a single path it
confines itself to the container's root, and every path is then resolved by the kernel inside it:

- running (or paused) container: it opens the init's mount namespace and root through /proc
  while a pidfd proves that process is still the same one, refuses a namespace that is tcrd's
  own, setns() into it and chroot()s to the init's root. It sees exactly what the container
  sees: its volumes, bind mounts and tmpfs mounts too (docker's behaviour);
- stopped (created or exited) container: chroot() into its root directory (the overlay tcrd
  mounted for the copy, or the image's read-only root for a --read-only container).

After that no fd outside the root is open (the worker closed everything at fork; a copy out keeps
one of the host's /proc, used only as `self/fd/N` to reopen a file it opened O_PATH and checked
to be regular: cparchive.Writer), `/` and `..`
end at the container's root, and the worker never chroots again, so neither a planted symlink nor
a hostile archive can reach the host. Archive rules (names, hard links, devices): cparchive.

tarfile (through cparchive) is imported here only inside the functions, i.e. in the child.
"""

from __future__ import annotations

import errno
import os

from tcr.containers.cpplan import CpError

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

CLONE_NEWNS = 0x00020000
_O_PATH = getattr(os, "O_PATH", 0o10000000)
CHUNK = 64 * 1024


def enter_root(where: Dict[str, Any]) -> None:
    """Confine this process to the container's root (see the module doc). Only in a worker."""
    if "pid" in where:
        _enter_running(int(where["pid"]))
    else:
        os.chdir(where["path"])  # tcrd's own directory (no part of it is the container's)
        if where.get("mounts"):
            _bind_volumes(where["mounts"])
        os.chroot(".")
    os.chdir("/")
    os.umask(0)  # modes come from the archive, exactly


def _bind_volumes(mounts: List[List[Any]]) -> None:
    """A stopped container's volumes and bind mounts, as docker shows them to `cp`: bound over
    their targets in a mount namespace of this worker's own (gone when it exits). Each target is
    found with openat2(RESOLVE_IN_ROOT) from the root (the cwd), so a planted symlink on the way
    resolves inside the container; a target that does not exist is left out (crun makes it at the
    next start), as is one whose kind differs from the source's."""
    import stat

    from tcr.kernel import mount as kmount
    from tcr.kernel.libc import errno as libc_errno
    from tcr.kernel.libc import libc
    from tcr.kernel.openat2 import open_in_root

    if libc().unshare(CLONE_NEWNS) != 0:
        raise CpError(f"cannot make a mount namespace for the copy: {os.strerror(libc_errno())}")
    kmount.mount(None, "/", None, kmount.MS_REC | kmount.MS_PRIVATE)
    root = os.open(".", _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for src, dst, ro in mounts:
            try:
                tfd = open_in_root(root, dst)
            except OSError:
                continue  # missing (or no openat2: an old kernel): the layer's own files show
            try:
                if stat.S_ISDIR(os.fstat(tfd).st_mode) != stat.S_ISDIR(os.stat(src).st_mode):
                    continue
                kmount.mount(src, f"/proc/self/fd/{tfd}", None, kmount.MS_BIND | kmount.MS_REC)
            finally:
                os.close(tfd)
            if ro:
                tfd = open_in_root(root, dst)  # now the mount's root
                try:
                    kmount.mount(None, f"/proc/self/fd/{tfd}", None,
                                 kmount.MS_REMOUNT | kmount.MS_BIND | kmount.MS_RDONLY)
                finally:
                    os.close(tfd)
    finally:
        os.close(root)


def _enter_running(pid: int) -> None:
    import signal

    from tcr.kernel.libc import errno as libc_errno
    from tcr.kernel.libc import libc

    try:
        try:
            pidfd = os.pidfd_open(pid)
            started = None
        except OSError as exc:  # a kernel before 5.3: the process's start time says the same
            if exc.errno != errno.ENOSYS:
                raise
            pidfd, started = -1, _start_time(pid)
        nsfd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        rootfd = os.open(f"/proc/{pid}/root", _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        # Still alive after both opens: the /proc entries were that process's, not a reused pid's.
        if pidfd >= 0:
            signal.pidfd_send_signal(pidfd, 0)
        elif _start_time(pid) != started:
            raise ProcessLookupError(pid)
    except ProcessLookupError:
        raise CpError("the container stopped while the copy started; try again")
    except OSError as exc:
        raise CpError(f"cannot enter the container: {exc.strerror}")
    if os.fstat(nsfd).st_ino == os.stat("/proc/self/ns/mnt").st_ino:
        raise CpError("the container is still starting (its process shares tcrd's mount namespace); "
                      "try again")
    if libc().setns(nsfd, CLONE_NEWNS) != 0:
        e = libc_errno()
        raise CpError(f"cannot enter the container's mount namespace: {os.strerror(e)}")
    os.fchdir(rootfd)
    os.chroot(".")
    for fd in (pidfd, nsfd, rootfd):
        if fd >= 0:
            os.close(fd)


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]  # field 22, after "(comm)"
    except (OSError, IndexError):
        raise ProcessLookupError(pid)


def _kind(path: str) -> Optional[str]:
    import stat

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise CpError(f"not a directory: {path}")
    return "dir" if stat.S_ISDIR(st.st_mode) else "link" if stat.S_ISLNK(st.st_mode) else "file"


def send(where: Dict[str, Any], path: str, follow: bool, container: str, fd: int) -> Dict[str, Any]:
    """tcr cp CONTAINER:PATH ...: a tar of PATH into fd (a pipe tcrd forwards to the client)."""
    from tcr.containers import cparchive
    from tcr.containers.cpplan import top_name

    proc_fd = os.open("/proc", _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # the host's, for reopening
    enter_root(where)
    kind = _kind(path)
    if kind is None:
        raise CpError(f"Could not find the file {path} in container {container}")
    src = path
    if follow and kind == "link":
        src = os.path.realpath(path)  # inside the chroot: the link is resolved inside the container
        if _kind(src) is None:
            raise CpError(f"Could not find the file {path} in container {container}",
                          hint=f"it is a symlink to {os.readlink(path)[:200]}, which does not exist")
    out = os.fdopen(fd, "wb", buffering=CHUNK)
    try:
        w = cparchive.Writer(out, proc_fd=proc_fd)
        w.add_tree(src, top_name(path))
        w.close()
        out.flush()
    except BrokenPipeError:
        raise CpError("the client went away")
    except OSError as exc:
        raise CpError(f"cannot copy {container}:{path}: {exc.strerror}"
                      + (f": {exc.filename}" if isinstance(exc.filename, str) else ""))
    finally:
        try:
            out.close()
        except OSError:
            pass
    return {"skipped": w.skipped}


def receive(where: Dict[str, Any], dest: str, archive: bool, raw: bool, container: str,
            fd: int) -> Dict[str, Any]:
    """tcr cp ... CONTAINER:DEST: extract the tar arriving on fd per docker's rules. raw (`-`):
    the client's own tar, extracted as it is into the directory DEST."""
    from tcr.containers import cparchive, cpplan

    enter_root(where)
    info = cpplan.dest_info(dest, _kind, os.readlink)
    inp = os.fdopen(fd, "rb", buffering=CHUNK)
    tar = cparchive.open_stream(inp)
    it = cparchive.members(tar)
    first = None
    if raw:
        if not (info.exists and info.is_dir):
            raise CpError(f'destination "{container}:{dest}" must be a directory')
        target, rename = info.path, None
    else:
        first = next(it, None)
        if first is None:
            raise CpError("invalid archive: no entries")
        top = cpplan.names(first.name)
        if len(top) > 1:
            raise CpError("invalid copy source content: the first entry must be the source itself")
        p = cpplan.plan(first.isdir(), top, info, dest)
        target, rename = p.dir, p.rename
    if _kind(target) is None:
        raise CpError(f"Could not find the file {target} in container {container}")
    ex = cparchive.Extractor(target, rename, owners=None if archive else (0, 0), keep_owners=archive,
                             devices=True)
    try:
        if first is not None:
            ex.add(tar, first)
        for ti in it:
            ex.add(tar, ti)
        ex.finish()
    except OSError as exc:
        raise CpError(f"cannot copy to {container}:{dest}: {exc.strerror}"
                      + (f": {exc.filename}" if isinstance(exc.filename, str) else ""))
    except Exception as exc:
        bad = cparchive.bad_archive(exc)  # a truncated or corrupt stream: one line, exit 1
        if bad is not None:
            raise bad from None
        raise
    finally:
        ex.close()
    return {"entries": ex.count}
