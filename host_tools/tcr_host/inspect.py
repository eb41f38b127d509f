"""`tcr-create-image inspect FILE.sqfs`: read image-info.json (and config.json) without mounting."""

import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from tcr.common import jsonc
from tcr.common.errors import InvalidArgument, TcrError
from tcr.formats.image_info import MAX_SIZE, ImageInfo

MAX_CONFIG = 4 * 1024 * 1024


@dataclass(frozen=True)
class Inspection:
    path: str
    size: int
    info: ImageInfo
    config: Optional[Dict[str, Any]]
    checksum: str  # "ok", "mismatch", "missing", "not checked"

    def to_dict(self) -> Dict[str, Any]:
        return {"path": self.path, "size": self.size, "imageInfo": self.info.to_dict(), "config": self.config,
                "checksum": self.checksum}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Inspection":
        return cls(str(d["path"]), int(d["size"]), ImageInfo.from_dict(d["imageInfo"]), d.get("config"),
                   str(d["checksum"]))


def _read(img, path: str, limit: int) -> Optional[bytes]:
    node = img.select(path)
    if node is None or not node.is_file:
        return None
    if node.size > limit:
        raise InvalidArgument(f"{path} in the image is larger than {limit} bytes")
    return bytes(node.read_bytes())


def sidecar_status(path: str, verify: bool) -> str:
    side = path + ".sha256"
    if not os.path.exists(side):
        return "missing"
    if not verify:
        return "not checked"
    from tcr_host.build import sha256_file

    with open(side) as f:
        want = f.read(200).split()[:1]
    return "ok" if want and want[0].lower() == sha256_file(path) else "mismatch"


def inspect_image(path: str, verify: bool = False) -> Inspection:
    try:
        from PySquashfsImage import SquashFsImage
    except ImportError:
        raise TcrError("reading squashfs needs the Python package PySquashfsImage",
                       hint="pip install PySquashfsImage")
    if not os.path.isfile(path):
        raise TcrError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise TcrError(f"cannot read {path}: {exc.strerror}")
    if magic != b"hsqs":
        raise InvalidArgument(f"{path} is not a squashfs image")
    try:
        img = SquashFsImage.from_file(path)
    except OSError as exc:
        raise TcrError(f"cannot read {path}: {exc.strerror or exc}")
    except Exception as exc:  # the library raises assorted types on garbage
        raise InvalidArgument(f"{path} is not a squashfs image ({exc.__class__.__name__})")
    try:
        data = _read(img, "/image-info.json", MAX_SIZE)
        if data is None:
            raise InvalidArgument(f"{path} has no image-info.json (not a tcr image)")
        info = ImageInfo.from_json(data)
        raw = _read(img, f"/{info.bundle_path}/config.json", MAX_CONFIG)
        config = None
        if raw is not None:
            try:
                config = jsonc.loads(raw)
            except ValueError:
                config = None
    finally:
        img.close()
    return Inspection(os.path.abspath(path), os.path.getsize(path), info, config,
                      sidecar_status(path, verify))


def render(ins: Inspection) -> str:
    info = ins.info
    rows: List[tuple] = [
        ("File", f"{ins.path} ({ins.size / 1e6:.1f} MB)"),
        ("Image", info.reference),
        ("Id", info.id),
        ("Digest", info.digest),
        ("Arch", info.arch),
        ("Created", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info.created))),
        ("Bundle", info.bundle_path),
    ]
    proc = (ins.config or {}).get("process") if isinstance(ins.config, dict) else None
    if isinstance(proc, dict):
        user = proc.get("user") or {}
        rows += [
            ("Command", " ".join(str(a) for a in proc.get("args") or [])),
            ("User", f"{user.get('uid', 0)}:{user.get('gid', 0)}"),
            ("Workdir", str(proc.get("cwd", "/"))),
        ]
        for i, e in enumerate(proc.get("env") or []):
            rows.append(("Env" if i == 0 else "", str(e)))
    rows.append(("Checksum", ins.checksum))
    return "\n".join(f"{k + ':' if k else '':<10} {v}" for k, v in rows)
