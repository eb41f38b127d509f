"""A minimal streaming tar writer (PAX headers from tarfile, data copied in large chunks)."""

import tarfile
import time
from typing import BinaryIO, Callable, Optional

from tcr_host.layers import CHUNK, MalformedLayer

BLOCK = 512
_ZEROS = bytes(BLOCK)


class TarWriter:
    def __init__(self, out: BinaryIO, on_bytes: Optional[Callable[[int], None]] = None):
        self._out = out
        self._on_bytes = on_bytes
        self.entries = 0
        self.bytes = 0

    def add(self, info: tarfile.TarInfo, src: Optional[BinaryIO] = None) -> None:
        """Write info's header and, for regular files, exactly info.size bytes from src."""
        self._out.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        self.entries += 1
        if info.type != tarfile.REGTYPE or info.size == 0:
            return
        if src is None:
            raise ValueError(f"no data source for {info.name}")
        remaining = info.size
        while remaining:
            chunk = src.read(min(CHUNK, remaining))
            if not chunk:
                raise MalformedLayer(f"layer data for {info.name!r} ends early (truncated layer)")
            self._out.write(chunk)
            remaining -= len(chunk)
            if self._on_bytes:
                self._on_bytes(len(chunk))
        self.bytes += info.size
        pad = -info.size % BLOCK
        if pad:
            self._out.write(_ZEROS[:pad])

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644, mtime: Optional[int] = None) -> None:
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        ti.mode = mode
        ti.mtime = int(time.time()) if mtime is None else mtime
        import io

        self.add(ti, io.BytesIO(data))

    def add_dir(self, name: str, mode: int = 0o755, mtime: Optional[int] = None) -> None:
        ti = tarfile.TarInfo(name)
        ti.type = tarfile.DIRTYPE
        ti.mode = mode
        ti.mtime = int(time.time()) if mtime is None else mtime
        self.add(ti)

    def close(self) -> None:
        self._out.write(_ZEROS * 2)  # end-of-archive marker
        self._out.flush()
