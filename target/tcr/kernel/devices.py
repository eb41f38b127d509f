"""Host device nodes for --device and --privileged: stat them into (type, major, minor, mode, owner).

Stdlib only. A node on a devpts file system (a pty slave, e.g. what socat makes for a serial
simulator) is marked `bind`: the pty driver refuses to open a copy made with mknod elsewhere (EIO).
"""

from __future__ import annotations

import os
import stat

from tcr.common.record import dataclass

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Iterator, List, Optional

DEVPTS_MAGIC = 0x1CD1
# docker's /dev walk for --privileged skips these: they are mounted fresh in every container
SKIP_DIRS = ("pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev")


@dataclass(frozen=True)
class Node:  # a record, not a NamedTuple: typing stays out of the daemon
    host_path: str
    type: str  # c | b
    major: int
    minor: int
    mode: int  # permission bits
    uid: int
    gid: int
    devpts: bool


def _on_devpts(path: str) -> bool:
    # No statfs in the stdlib: a devpts node has major 136-143 (Unix98 pty slaves) and lives on a
    # mount whose fs type is devpts; mountinfo would cost a parse, the major range is enough.
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and 136 <= os.major(st.st_rdev) <= 143


def node(path: str) -> Optional[Node]:
    """The device node at path (symlinks followed, like /dev/serial/by-id/...), or None if the path
    is not a character or block device."""
    st = os.stat(path)
    if stat.S_ISCHR(st.st_mode):
        typ = "c"
    elif stat.S_ISBLK(st.st_mode):
        typ = "b"
    else:
        return None
    real = os.path.realpath(path)
    return Node(real, typ, os.major(st.st_rdev), os.minor(st.st_rdev), stat.S_IMODE(st.st_mode), st.st_uid,
                st.st_gid, typ == "c" and _on_devpts(real))


def walk(top: str) -> Iterator[Node]:
    """Every device node under the directory top (not following symlinked dirs)."""
    for dirpath, dirnames, filenames in os.walk(top):
        if dirpath == top:
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            try:
                if os.path.islink(p):
                    continue
                n = node(p)
            except OSError:
                continue
            if n is not None:
                yield n


def all_host_devices(top: str = "/dev") -> List[Node]:
    return [n for n in walk(top) if not n.devpts and os.path.basename(n.host_path) != "console"]
