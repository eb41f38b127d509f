"""Read and validate an image's metadata before it is mounted.

From the .sqfs file with PySquashfsImage (imported lazily), without scanning the whole tree: only
the directories on the looked-up paths are read. When the file's compressor is not available in
Python (e.g. zstd without the `zstandard` module on a board), read_file() raises NeedsMount and the
caller mounts the image privately and validates it with read_dir() instead.
"""

from __future__ import annotations

import os

from tcr.common import fileread
from tcr.common.errors import InvalidArgument
from tcr.formats.image_info import MAX_SIZE, ImageInfo

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Optional, Tuple

SQUASHFS_MAGIC = b"hsqs"
INFO_NAME = "image-info.json"


class NeedsMount(Exception):
    """This Python cannot decompress the image; validate it through a mount instead."""


def check_magic(path: str) -> None:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except IsADirectoryError:
        raise InvalidArgument(f"{path} is a directory, not a squashfs image")
    except FileNotFoundError:
        raise InvalidArgument(f"{path}: no such file")
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror}")
    if head != SQUASHFS_MAGIC:
        raise InvalidArgument(f"{path} is not a squashfs image")


def _validate_bundle(path: str, info: ImageInfo, kind_of) -> None:
    """kind_of(relpath) -> 'dir' | 'file' | 'other' | None."""
    b = info.bundle_path
    if kind_of(b) != "dir":
        raise InvalidArgument(f"{path}: bundle directory '{b}' is missing from the image")
    if kind_of(f"{b}/config.json") != "file":
        raise InvalidArgument(f"{path}: '{b}/config.json' is missing from the image")
    if kind_of(f"{b}/rootfs") != "dir":
        raise InvalidArgument(f"{path}: '{b}/rootfs/' is missing from the image")


def _lazy_image_class() -> Any:
    from tcr.common.siteimport import import_module

    import_module("PySquashfsImage")  # also beside an installed tcrd that runs without site
    from PySquashfsImage import SquashFsImage
    from PySquashfsImage.const import Type
    from PySquashfsImage.macro import SQUASHFS_INODE_BLK, SQUASHFS_INODE_OFFSET

    class LazyImage(SquashFsImage):  # type: ignore[misc,valid-type]
        """SquashFsImage without the eager scan of every directory at open time."""

        def _initialize(self) -> None:
            self._fd.seek(self._offset)
            self._read_super()
            self._read_uids_guids()
            self._read_fragment_table()

        def lookup(self, rel: str) -> Optional[Tuple[int, int, int]]:
            """(type, inode block, inode offset) of rel, or None. Symlinks are not followed."""
            root = self._sblk.root_inode
            cur = (int(Type.DIR), SQUASHFS_INODE_BLK(root), SQUASHFS_INODE_OFFSET(root))
            for part in [p for p in rel.split("/") if p]:
                if cur[0] != Type.DIR:
                    return None
                d = self._opendir(cur[1], cur[2])
                want = part.encode()
                for e in d.entries:
                    if e["name"] == want:
                        cur = (int(e["type"]), e["start_block"], e["offset"])
                        break
                else:
                    return None
            return cur

        def kind(self, rel: str) -> Optional[str]:
            hit = self.lookup(rel)
            if hit is None:
                return None
            return {int(Type.DIR): "dir", int(Type.FILE): "file"}.get(hit[0], "other")

        def read(self, rel: str, limit: int) -> bytes:
            hit = self.lookup(rel)
            if hit is None or hit[0] != Type.FILE:
                raise FileNotFoundError(rel)
            inode = self._read_inode(hit[1], hit[2])
            if inode.file_size > limit:
                raise ValueError(f"{rel} is larger than {limit} bytes")
            return self.read_file(inode)

    return LazyImage


def read_file(path: str) -> ImageInfo:
    """Validate the squashfs file at path without mounting it. Raises InvalidArgument or NeedsMount."""
    check_magic(path)
    try:
        cls = _lazy_image_class()
    except ImportError:
        raise NeedsMount("PySquashfsImage is not installed")
    f = open(path, "rb")  # noqa: SIM115 - the image object owns it from here (img.close())
    try:
        try:
            img = cls(f)
        except ImportError:  # its compressor module (zstandard, lz4, lzo) may be in another site dir
            from tcr.common.siteimport import add_site

            if not add_site():
                raise
            f.seek(0)
            img = cls(f)
    except ImportError as exc:  # compressor module missing (zstandard, lz4, lzo)
        f.close()
        raise NeedsMount(str(exc))
    except Exception as exc:  # PySquashfsImage raises assorted errors on corrupt input
        f.close()
        raise InvalidArgument(f"{path}: damaged squashfs image ({type(exc).__name__}: {exc})")
    try:
        try:
            if img.kind(INFO_NAME) != "file":
                raise InvalidArgument(f"{path}: no {INFO_NAME} in the image (not a tcr image?)")
            data = img.read(INFO_NAME, MAX_SIZE)
        except ImportError as exc:
            raise NeedsMount(str(exc))
        except InvalidArgument:
            raise
        except Exception as exc:
            raise InvalidArgument(f"{path}: cannot read {INFO_NAME} ({type(exc).__name__}: {exc})")
        info = ImageInfo.from_json(data)
        _validate_bundle(path, info, img.kind)
        return info
    finally:
        img.close()


def read_dir(path: str, mnt: str) -> ImageInfo:
    """Validate a mounted image at mnt (the NeedsMount fallback). path is for messages."""
    p = os.path.join(mnt, INFO_NAME)
    if not os.path.isfile(p) or os.path.islink(p):
        raise InvalidArgument(f"{path}: no {INFO_NAME} in the image (not a tcr image?)")
    # Bounded and non-blocking even on a hostile image (a FIFO or a huge file at that name).
    data = fileread.read_bytes(p, fileread.IMAGE_INFO_CAP, what=f"{path}: {INFO_NAME}")
    info = ImageInfo.from_json(data)

    def kind_of(rel: str) -> Optional[str]:
        full = os.path.join(mnt, rel)
        if os.path.islink(full):
            return "other"
        if os.path.isdir(full):
            return "dir"
        if os.path.isfile(full):
            return "file"
        return "other" if os.path.lexists(full) else None

    _validate_bundle(path, info, kind_of)
    return info
