"""Remove a directory tree without following symlinks, without shutil.

shutil costs the daemon ~0.5 MB resident (it imports bz2, lzma, fnmatch and their libraries at
import time) for the one rmtree each `rm` needs. Same safety as shutil.rmtree's fd-based walk: each
directory is opened relative to its parent with O_NOFOLLOW, entries are removed through dir_fd, so a
symlink planted in a container's upper dir (by the container) is removed, never followed.
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: str) -> bool:
    """Remove path and everything under it, best effort (like rmtree(ignore_errors=True)).

    Returns True when path is gone afterwards. A symlink at `path` itself is removed, not followed.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        try:
            os.unlink(path)
        except OSError:
            return False
        return True
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        return False
    try:
        _clear(fd)
    finally:
        os.close(fd)
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


def _clear(top: int) -> None:
    """Remove every entry under the open directory top (best effort). Iterative, with one
    directory open at a time: a container can nest directories deeper than Python's recursion
    limit and than the fds tcrd may open; the way back up is `..`, checked against the inode."""
    cur = os.dup(top)
    stack = [(_entries(cur), "", os.fstat(cur).st_ino)]  # (names left, name in parent, own inode)
    try:
        while stack:
            names, own_name, own_ino = stack[-1]
            if not names:
                stack.pop()
                if not stack:
                    break
                try:  # back to the parent; it must be the directory we came from
                    parent = os.open("..", _DIR_FLAGS, dir_fd=cur)
                except OSError:
                    return
                os.close(cur)
                cur = parent
                if os.fstat(cur).st_ino != stack[-1][2]:
                    return  # moved under us: stop rather than delete elsewhere
                try:
                    os.rmdir(own_name, dir_fd=cur)
                except OSError:
                    pass
                continue
            name = names.pop()
            try:
                st = os.stat(name, dir_fd=cur, follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                try:
                    os.unlink(name, dir_fd=cur)
                except OSError:
                    pass
                continue
            try:
                sub = os.open(name, _DIR_FLAGS, dir_fd=cur)
            except OSError:
                continue
            if os.fstat(sub).st_ino != st.st_ino:  # replaced between stat and open: leave it
                os.close(sub)
                continue
            os.close(cur)
            cur = sub
            stack.append((_entries(cur), name, st.st_ino))
    finally:
        os.close(cur)


def _entries(dfd: int) -> List[str]:
    try:
        return os.listdir(dfd)
    except OSError:
        return []


def make_private_dir(parent: str, prefix: str) -> str:
    """A new directory parent/prefixXXXXXXXX, mode 0700 (tempfile.mkdtemp without tempfile, which
    costs tcrd ~0.5 MB resident with shutil, random and weakref)."""
    for _ in range(100):
        path = os.path.join(parent, prefix + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free name for a directory in {parent}")
