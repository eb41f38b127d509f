"""A container's directory, its overlayfs root, and the command check behind exit codes 126/127.

<root>/containers/<id>/
  bundle/config.json        final OCI config (root.path points at ../merged or the image rootfs)
  upper/ work/ merged/      overlayfs: lower = the image's (read-only squashfs) rootfs
  etc/hostname hosts resolv.conf
  log.fifo container.log[.N]
  pid                        crun --pid-file
"""

from __future__ import annotations

import errno
import os
import stat

from tcr.common.errors import InvalidArgument
from tcr.common.record import dataclass
from tcr.containers.ociconfig import walk_in_root
from tcr.kernel import mount as _mount

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Optional, Sequence, Tuple


@dataclass(frozen=True)
class ContainerPaths:
    dir: str

    @classmethod
    def of(cls, root: str, cid: str) -> ContainerPaths:
        return cls(os.path.join(root, "containers", cid))

    @property
    def bundle(self) -> str:
        return os.path.join(self.dir, "bundle")

    @property
    def config(self) -> str:
        return os.path.join(self.bundle, "config.json")

    @property
    def upper(self) -> str:
        return os.path.join(self.dir, "upper")

    @property
    def work(self) -> str:
        return os.path.join(self.dir, "work")

    @property
    def merged(self) -> str:
        return os.path.join(self.dir, "merged")

    @property
    def etc(self) -> str:
        return os.path.join(self.dir, "etc")

    @property
    def hostname(self) -> str:
        return os.path.join(self.etc, "hostname")

    @property
    def hosts(self) -> str:
        return os.path.join(self.etc, "hosts")

    @property
    def resolv(self) -> str:
        return os.path.join(self.etc, "resolv.conf")

    @property
    def log_fifo(self) -> str:
        return os.path.join(self.dir, "log.fifo")

    @property
    def err_fifo(self) -> str:
        return os.path.join(self.dir, "err.fifo")

    @property
    def console_sock(self) -> str:
        return os.path.join(self.dir, "console.sock")

    @property
    def log(self) -> str:
        return os.path.join(self.dir, "container.log")

    @property
    def pid_file(self) -> str:
        return os.path.join(self.dir, "pid")


def overlay_options(lower: str, upper: str, work: str) -> str:
    for p in (lower, upper, work):
        if any(c in p for c in ",:\n"):
            raise ValueError(f"path not usable in overlay options: {p!r}")
    # index=off: the lower is a squashfs that may be remounted on another loop device after a
    # reboot; with the index on, overlayfs would refuse the upper dir then.
    return f"lowerdir={lower},upperdir={upper},workdir={work},index=off"


def mount_overlay(lower: str, paths: ContainerPaths) -> None:
    if is_mounted(paths.merged):
        return
    for d in (paths.upper, paths.work, paths.merged):
        os.makedirs(d, mode=0o755, exist_ok=True)
    _mount.mount("overlay", paths.merged, "overlay", _mount.MS_NODEV,
                 overlay_options(lower, paths.upper, paths.work))


def umount_overlay(paths: ContainerPaths) -> None:
    """Unmount merged; lazily (MNT_DETACH) when something still holds it."""
    while is_mounted(paths.merged):
        try:
            _mount.umount(paths.merged)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                _mount.umount_quiet(paths.merged, _mount.MNT_DETACH)
            elif exc.errno in (errno.EINVAL, errno.ENOENT):
                return
            else:
                raise


def is_mounted(path: str) -> bool:
    """path is a mount point (compares st_dev with the parent: no mountinfo parse)."""
    try:
        st = os.lstat(path)
        parent = os.lstat(os.path.dirname(path.rstrip("/")) or "/")
    except OSError:
        return False
    return st.st_dev != parent.st_dev or st.st_ino == parent.st_ino


# ---- command check --------------------------------------------------------------------------

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


if TYPE_CHECKING:
    Binds = Sequence[Tuple[str, str]]


def resolve_in_root(rootfs: str, path: str, max_links: int = 40, binds: Binds = ()) -> Optional[str]:
    """Host path of `path` as seen inside rootfs (symlinks followed inside the root; a component
    under a bind mount or volume looked up in its host source), or None if missing or looping."""
    try:
        return walk_in_root(rootfs, path, max_links, must_exist=True, binds=binds)
    except InvalidArgument:
        return None


def check_command(rootfs: str, argv: Sequence[str], env: Sequence[str], cwd: str = "/",
                  binds: Binds = ()) -> Optional[int]:
    """None if argv[0] looks runnable in the container, else docker's code: 127 not found, 126 not
    executable. binds: (container path, host source) of the bind mounts and volumes, whose content
    the container sees instead of the image's.

    Done by tcrd before handing crun to the client, because crun itself reports both as exit 1.
    """
    if not argv:
        return 127
    cmd = argv[0]
    if "/" in cmd:
        full = cmd if cmd.startswith("/") else os.path.join(cwd or "/", cmd)
        return _check_file(resolve_in_root(rootfs, full, binds=binds))
    path = DEFAULT_PATH
    for e in env:
        if e.startswith("PATH="):
            path = e[5:]
    for d in path.split(":"):
        if not d:
            continue
        host = resolve_in_root(rootfs, os.path.join(d if d.startswith("/") else "/" + d, cmd), binds=binds)
        if host is not None and os.path.isfile(host):
            return _check_file(host)
    return 127


def _check_file(host: Optional[str]) -> Optional[int]:
    if host is None:
        return 127
    try:
        st = os.stat(host)
    except OSError:
        return 127
    if not stat.S_ISREG(st.st_mode) or not (st.st_mode & 0o111):
        return 126
    return None
