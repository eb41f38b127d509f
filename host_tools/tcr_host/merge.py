"""The two passes over the layers: scan headers into a Tree (verifying blobs), then stream data.

Layers are read straight from the OCI layout's blob files and decompressed in memory; nothing is
unpacked to disk. Pass 2 skips layers that contribute no file data and stops reading a layer as
soon as its last needed member has been copied.
"""

import sys
import tarfile
import zlib
from typing import Callable, Optional, Sequence

from tcr_host.flatten import Plan, Tree, scan_layer
from tcr_host.layers import CHUNK, MalformedLayer, VerifyingReader, check_media_type, decompressed, short
from tcr_host.layout import Layer, Layout
from tcr_host.tarout import TarWriter

OnBytes = Optional[Callable[[int], None]]


def _format_errors() -> tuple:
    errs: list = [tarfile.TarError, EOFError, zlib.error]
    zstd = sys.modules.get("zstandard")
    if zstd is not None:
        errs.append(zstd.ZstdError)
    return tuple(errs)


def _open_tar(stream) -> tarfile.TarFile:
    return tarfile.open(fileobj=stream, mode="r|", bufsize=CHUNK, encoding="utf-8", errors="surrogateescape")


def scan(layout: Layout, layers: Sequence[Layer], on_bytes: OnBytes = None) -> Tree:
    """Pass 1: apply every layer's headers to a new Tree; each blob's digest is checked."""
    tree = Tree()
    for i, layer in enumerate(layers):
        check_media_type(layer.media_type, layer.digest)
        raw = VerifyingReader(layout.blob_path(layer.digest), layer.digest, on_bytes)
        try:
            stream = decompressed(raw, layer.digest)
            try:
                tf = _open_tar(stream)
            except tarfile.ReadError as exc:
                if "empty file" not in str(exc):
                    raise
                tf = None  # a zero-byte layer: nothing to apply
            if tf is not None:
                scan_layer(tree, i, tf, layer.digest)
            raw.verify()
        except FileNotFoundError:
            raise MalformedLayer(f"layer {short(layer.digest)} is missing from {layout.path}")
        except MalformedLayer:
            raise
        except _format_errors() as exc:
            raise MalformedLayer(f"layer {short(layer.digest)} is not a valid tar archive ({exc})")
        finally:
            raw.close()
    return tree


def stream(layout: Layout, layers: Sequence[Layer], plan: Plan, writer: TarWriter) -> None:
    """Pass 2: copy the data of every planned regular file from its layer into writer."""
    for i, layer in enumerate(layers):
        needed = plan.data.get(i)
        if not needed:
            continue
        raw = VerifyingReader(layout.blob_path(layer.digest), layer.digest)
        remaining = len(needed)
        try:
            tf = _open_tar(decompressed(raw, layer.digest))
            for ordinal, m in enumerate(tf):
                head = needed.get(ordinal)
                if head is None:
                    continue
                if m.size != head.size:  # the blob changed under us between the passes
                    raise MalformedLayer(f"layer {short(layer.digest)} changed while building")
                writer.add(head, tf.extractfile(m))  # type: ignore[arg-type]
                remaining -= 1
                if not remaining:
                    break
        except MalformedLayer:
            raise
        except _format_errors() as exc:
            raise MalformedLayer(f"layer {short(layer.digest)} is not a valid tar archive ({exc})")
        finally:
            raw.close()
        if remaining:
            raise MalformedLayer(f"layer {short(layer.digest)} changed while building")
