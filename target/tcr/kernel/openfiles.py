"""Which of some files a live process holds open, from the /proc/PID/fd links.

tcrd asks this once at start-up for the uploads left in <root>/incoming: a client that is still
copying (sftp-server or `scp -t` on the board, the stdin spooler of `tcr image load`) holds its
file open; anything nobody holds is left over. Files are matched by (device, inode), so a
process in another mount namespace or a path through a symlink still counts.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Dict, Iterable, Tuple


def holders(files: Iterable[Tuple[int, int]], proc: str = "/proc") -> Dict[Tuple[int, int], int]:
    """{(st_dev, st_ino): pid} for each of files that some process has open (one pid each)."""
    want = set(files)
    out: Dict[Tuple[int, int], int] = {}
    if not want:
        return out
    try:
        pids = os.listdir(proc)
    except OSError:
        return out
    for pid in pids:
        if not pid.isdigit():
            continue
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # exited meanwhile
            continue
        for fd in fds:
            try:
                st = os.stat(f"{fd_dir}/{fd}")  # follows the link to the open file; opens nothing
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in want:
                out.setdefault(key, int(pid))
    return out
