"""The stored image file as the daemon sees it: its name, mode and mount flags, its fingerprint
and the cheap check before a remount.

Split from tcr.images.store, whose copying, hashing and validation (and tcr.images.reader,
tcr.kernel.fsverity) run only in the image store's worker: the daemon imports this small module
and the worker imports store after the fork, so that code never stays resident in tcrd
(docs/profile.md).
"""

from __future__ import annotations

import os
import stat

from tcr.images.record import StoredFile
from tcr.kernel import mount as kmount

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Optional

STORED_NAME = "image.sqfs"
STORED_MODE = 0o444
MOUNT_FLAGS = kmount.MS_RDONLY | kmount.MS_NODEV | kmount.MS_NOSUID


def fingerprint(path: str, sha256: str, verity: bool) -> StoredFile:
    st = os.stat(path, follow_symlinks=False)
    return StoredFile(size=st.st_size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, ino=st.st_ino,
                      sha256=sha256, verity=verity)


def check_unchanged(path: str, want: StoredFile) -> Optional[str]:
    """Cheap check before a remount: None when path is still the file that was stored, else why not."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError as exc:
        return f"cannot stat it: {exc.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return "it is no longer a regular file"
    diffs = []
    if st.st_ino != want.ino:
        diffs.append("replaced by another file")
    if st.st_size != want.size:
        diffs.append(f"size {want.size} -> {st.st_size}")
    if st.st_mtime_ns != want.mtime_ns:
        diffs.append("modification time changed")
    elif st.st_ctime_ns != want.ctime_ns:
        diffs.append("inode changed (ctime)")
    if st.st_uid != 0 or st.st_mode & 0o222 or st.st_nlink != 1:
        diffs.append("no longer root's read-only file with one link")
    if want.verity:
        from tcr.kernel import fsverity  # only for files stored with fs-verity on

        if fsverity.is_enabled(path) is False:
            diffs.append("fs-verity is off")
    return "; ".join(diffs) if diffs else None
