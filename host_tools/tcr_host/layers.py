"""Open layer blobs as decompressed byte streams, verifying their digest while they are read.

Compression is recognised by magic bytes (gzip, zstd, plain tar), the media type only has to be a
layer type. Reads use large chunks; nothing is copied to disk.
"""

import hashlib
import io
import zlib
from typing import Callable, Optional

from tcr.common.errors import InvalidArgument

CHUNK = 1 << 20  # compressed bytes per read
MAX_OUT = 4 << 20  # decompressed bytes per step (bounds memory on highly compressible data)

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

_LAYER_TYPES = (
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar",
)


class MalformedLayer(InvalidArgument):
    pass


def check_media_type(media_type: str, digest: str) -> None:
    base = media_type.split("+", 1)[0]
    if base.endswith(".gzip") or base.endswith(".zstd"):
        base = base.rsplit(".", 1)[0]
    if media_type and base not in _LAYER_TYPES:
        raise MalformedLayer(f"layer {short(digest)} has unsupported media type {media_type!r}")


def short(digest: str) -> str:
    algo, _, hexd = digest.partition(":")
    return f"{algo}:{hexd[:12]}"


class VerifyingReader(io.RawIOBase):
    """Reads a blob file, hashing and counting; verify() drains the rest and checks the digest."""

    def __init__(self, path: str, digest: str, on_bytes: Optional[Callable[[int], None]] = None):
        super().__init__()
        self._f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self.digest = digest
        algo, _, self._hex = digest.partition(":")
        self._h = hashlib.new(algo)
        self._on_bytes = on_bytes
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = self._f.readinto(b)
        if n:
            self._h.update(memoryview(b)[:n])
            self.count += n
            if self._on_bytes:
                self._on_bytes(n)
        return n or 0

    def verify(self) -> None:
        buf = bytearray(CHUNK)
        while self.readinto(buf):
            pass
        if self._h.hexdigest() != self._hex:
            raise MalformedLayer(f"layer {short(self.digest)} does not match its digest (corrupt blob)")

    def close(self) -> None:
        self._f.close()
        super().close()


class _Inflate(io.RawIOBase):
    """gzip (multi-member) decompression with big reads and bounded output per step."""

    def __init__(self, src, digest: str):
        super().__init__()
        self._src = src
        self._digest = digest
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._buf = memoryview(b"")
        self._pending = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        while not self._buf:
            if self._done:
                return 0
            self._step()
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def _step(self) -> None:
        try:
            if self._d.unconsumed_tail:
                out = self._d.decompress(self._d.unconsumed_tail, MAX_OUT)
            elif self._d.eof:
                rest = self._d.unused_data or self._src.read(CHUNK)
                if not rest or not rest.strip(b"\0"):  # end, or zero padding after the last member
                    self._done = True
                    return
                self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                out = self._d.decompress(rest, MAX_OUT)
            else:
                data = self._src.read(CHUNK)
                if not data:
                    raise MalformedLayer(f"layer {short(self._digest)} is truncated (gzip stream ends early)")
                out = self._d.decompress(data, MAX_OUT)
        except zlib.error as exc:
            raise MalformedLayer(f"layer {short(self._digest)} is not valid gzip ({exc})")
        self._buf = memoryview(out)


class _Peek:
    """Lets us look at the first bytes of a raw stream and then read it from the start."""

    def __init__(self, raw, n: int):
        self._raw = raw
        self.head = raw.read(n) or b""
        self._off = 0

    def read(self, n: int = -1) -> bytes:
        if self._off < len(self.head):
            part = self.head[self._off:] if n < 0 else self.head[self._off:self._off + n]
            self._off += len(part)
            if n < 0:
                return part + (self._raw.read() or b"")
            return part
        return self._raw.read(n) or b""


def decompressed(raw, digest: str):
    """A buffered binary stream of the layer's tar bytes (gzip/zstd/plain by magic)."""
    peek = _Peek(raw, 4)
    head = peek.head
    if head.startswith(_GZIP_MAGIC):
        return io.BufferedReader(_Inflate(peek, digest), CHUNK)
    if head.startswith(_ZSTD_MAGIC):
        try:
            import zstandard
        except ImportError:
            raise InvalidArgument("zstd-compressed layers need the Python package 'zstandard'",
                                  hint="pip install zstandard (or apt-get install python3-zstandard)")
        reader = zstandard.ZstdDecompressor().stream_reader(
            peek, read_size=CHUNK, read_across_frames=True)  # type: ignore[arg-type]
        return io.BufferedReader(reader, CHUNK)  # type: ignore[arg-type]
    return io.BufferedReader(_RawAdapter(peek), CHUNK)


class _RawAdapter(io.RawIOBase):
    def __init__(self, src):
        super().__init__()
        self._src = src

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self._src.read(len(b))
        n = len(data)
        b[:n] = data
        return n
