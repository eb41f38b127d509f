"""Image records, lookup rules, arch rules and pre-mount validation (no root needed)."""

import sys

import pytest

from tcr.common.errors import IMAGE_NOT_FOUND, ImageNotFound, InvalidArgument
from tcr.formats.image_info import ImageInfo
from tcr.formats.xxh64 import image_id
from tcr.images import reader, refs
from tcr.images.manager import parse_sidecar
from tcr.images.record import ImageRecord, StoredFile, arch_runnable, check_arch, native_arch
from test.fixtures.images import tiny_sqfs

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def info(digest=D1, registry="docker.io", repository="library/busybox", tag="latest", arch="amd64"):
    return ImageInfo(id=image_id(digest), registry=registry, repository=repository, tag=tag, digest=digest,
                     arch=arch, created=1700000000)


def rec(i, tags=None, loaded_at=1):
    t = tuple(tags) if tags is not None else ((f"{i.name}:{i.tag}",) if i.tag else ())
    return ImageRecord(id=i.id, info=i, source="/x.sqfs", stored=f"/r/images/{i.id}/image.sqfs",
                       mountpoint=f"/r/images/{i.id}/mnt", loop="/dev/loop3", loaded_at=loaded_at, tags=t,
                       size=1234, stored_file=StoredFile(size=1234, mtime_ns=1_700_000_000_123_456_789,
                                                         ctime_ns=1_700_000_001_000_000_000, ino=77,
                                                         sha256="ab" * 32, verity=False))


# ---- records -------------------------------------------------------------------------------------

def test_record_round_trip():
    r = rec(info())
    assert ImageRecord.from_dict(r.to_dict()) == r
    assert r.to_dict()["version"] == 2
    assert r.to_dict()["storedFile"] == {"size": 1234, "mtimeNs": 1_700_000_000_123_456_789,
                                         "ctimeNs": 1_700_000_001_000_000_000, "ino": 77,
                                         "sha256": "ab" * 32, "verity": False}
    assert r.bundle == f"/r/images/{r.id}/mnt/bundle" and r.rootfs.endswith("/bundle/rootfs")
    assert r.config_path.endswith("/bundle/config.json") and r.sidecar.endswith("image.sqfs.sha256")


def test_version_1_record_is_read_without_fingerprint():
    d = rec(info()).to_dict()
    d["version"] = 1
    del d["storedFile"]
    r = ImageRecord.from_dict(d)
    assert r.version == 1 and r.stored_file is None
    assert "storedFile" not in r.to_dict()


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(version=3),
    lambda d: d.update(version=True),
    lambda d: d.pop("storedFile"),
    lambda d: d["storedFile"].update(size=-1),
    lambda d: d["storedFile"].update(ino="7"),
    lambda d: d["storedFile"].update(sha256="xyz"),
    lambda d: d["storedFile"].update(sha256="AB" * 32),
    lambda d: d["storedFile"].update(verity=1),
    lambda d: d.update(id="0" * 16),
    lambda d: d.update(tags="x"),
    lambda d: d.update(size=-1),
    lambda d: d.update(loadedAt="1"),
    lambda d: d.pop("stored"),
    lambda d: d["info"].update(version=9),
])
def test_record_from_dict_rejects_bad_input(mutate):
    d = rec(info()).to_dict()
    mutate(d)
    with pytest.raises(InvalidArgument):
        ImageRecord.from_dict(d)


def test_display_ref_without_tag_uses_digest():
    r = rec(info(), tags=())
    assert r.display_ref == f"docker.io/library/busybox@{D1}"


# ---- lookup ---------------------------------------------------------------------------------------

@pytest.fixture
def recs():
    a = rec(info(D1))
    b = rec(info(D2, tag="1.36"))
    c = rec(info(D3, registry="ghcr.io", repository="me/app", tag="v1"))
    return [a, b, c]


def test_lookup_by_full_id_and_prefix(recs):
    a = recs[0]
    assert refs.resolve(recs, a.id) is a
    assert refs.resolve(recs, a.id[:4]) is a
    with pytest.raises(ImageNotFound):
        refs.resolve(recs, a.id[:3])  # shorter than 4 is never a prefix lookup


def test_ambiguous_prefix():
    x = rec(info(D1))
    y = rec(info(D2))
    object.__setattr__(y, "id", x.id[:5] + "f" * 11)
    with pytest.raises(InvalidArgument, match="ambiguous"):
        refs.resolve([x, y], x.id[:5])


@pytest.mark.parametrize("ref", ["busybox", "busybox:latest", "library/busybox", "docker.io/library/busybox",
                                 "docker.io/library/busybox:latest"])
def test_short_names_and_default_tag(recs, ref):
    assert refs.resolve(recs, ref) is recs[0]


def test_tags_and_registries(recs):
    assert refs.resolve(recs, "busybox:1.36") is recs[1]
    assert refs.resolve(recs, "ghcr.io/me/app:v1") is recs[2]
    with pytest.raises(ImageNotFound):
        refs.resolve(recs, "me/app:v1")  # that would be docker.io/me/app
    with pytest.raises(ImageNotFound):
        refs.resolve(recs, "ghcr.io/me/app")  # :latest does not exist


def test_lookup_by_digest(recs):
    assert refs.resolve(recs, D2) is recs[1]
    assert refs.resolve(recs, f"busybox@{D2}") is recs[1]
    with pytest.raises(ImageNotFound):
        refs.resolve(recs, f"alpine@{D2}")


def test_an_image_that_lost_its_tag_is_found_by_id_only():
    old = rec(info(D1), tags=())
    new = rec(info(D2, tag="latest"))
    assert refs.resolve([old, new], "busybox") is new
    assert refs.resolve([old, new], old.id) is old


def test_not_found_and_invalid():
    with pytest.raises(ImageNotFound) as ei:
        refs.resolve([], "nope")
    assert ei.value.code == IMAGE_NOT_FOUND and "nope" in str(ei.value)
    for bad in ("", "a b", "x" * 600):
        with pytest.raises(InvalidArgument):
            refs.resolve([], bad)


def test_split_ref_keeps_registry_ports():
    assert refs.split_ref("localhost:5000/app") == ("localhost:5000/app", None, None)
    assert refs.split_ref("localhost:5000/app:v2") == ("localhost:5000/app", "v2", None)
    assert refs.split_ref(f"app@{D1}") == ("app", None, D1)


# ---- arch ------------------------------------------------------------------------------------------

def test_native_arch_mapping():
    assert native_arch("x86_64") == "amd64"
    assert native_arch("aarch64") == "arm64"
    assert native_arch("armv7l") == "arm/v7"
    assert native_arch("riscv64") == "riscv64"


def test_arch_runnable():
    assert arch_runnable("amd64", "x86_64")
    assert not arch_runnable("arm64", "x86_64")
    assert arch_runnable("arm", "armv7l") and arch_runnable("arm/v7", "armv7l")
    assert not arch_runnable("arm64", "armv7l")
    assert arch_runnable("arm64", "aarch64")


def test_check_arch_names_both():
    with pytest.raises(InvalidArgument) as ei:
        check_arch("arm64", "x86_64")
    assert "arm64" in str(ei.value) and "amd64" in str(ei.value) and "x86_64" in str(ei.value)


# ---- validation before mounting ---------------------------------------------------------------------

GOOD = {"version": 1, "image": {"registry": "docker.io", "repository": "library/tiny", "tag": "latest",
                                "digest": D1, "arch": "amd64"}, "bundlePath": "bundle", "created": 1}


def test_reads_a_valid_image_without_id(tmp_path):
    i = reader.read_file(tiny_sqfs(tmp_path, GOOD))
    assert i.id == image_id(D1) and i.repository == "library/tiny"


@pytest.mark.parametrize("kw,msg", [
    ({"with_config": False}, "config.json"),
    ({"with_rootfs": False}, "rootfs"),
    ({"raw_info": b"{nope"}, "not valid JSON"),
    ({"raw_info": b'{"version": 2}'}, "unsupported version"),
    ({"bundle": "other"}, "bundle directory 'bundle' is missing"),
])
def test_invalid_images_are_refused_with_a_clear_error(tmp_path, kw, msg):
    p = tiny_sqfs(tmp_path, None if "raw_info" in kw else GOOD, **kw)
    with pytest.raises(InvalidArgument, match=msg):
        reader.read_file(p)


def test_missing_image_info(tmp_path):
    p = tiny_sqfs(tmp_path, None)
    with pytest.raises(InvalidArgument, match="no image-info.json"):
        reader.read_file(p)


def test_not_a_squashfs(tmp_path):
    p = tmp_path / "x.sqfs"
    p.write_bytes(b"hello world" * 100)
    with pytest.raises(InvalidArgument, match="not a squashfs image"):
        reader.read_file(str(p))
    with pytest.raises(InvalidArgument, match="no such file"):
        reader.read_file(str(tmp_path / "missing.sqfs"))


def test_truncated_squashfs_is_refused(tmp_path):
    p = tiny_sqfs(tmp_path, GOOD)
    with open(p, "r+b") as f:
        f.truncate(200)
    with pytest.raises(InvalidArgument):
        reader.read_file(p)


def test_zstd_without_zstandard_asks_for_a_mount(tmp_path, monkeypatch):
    p = tiny_sqfs(tmp_path, GOOD, comp="zstd")
    assert reader.read_file(p).id == image_id(D1)  # with zstandard: read directly
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import zstandard -> ImportError
    with pytest.raises(reader.NeedsMount):
        reader.read_file(p)


def test_read_dir_validates_the_same_way(tmp_path):
    import json
    import os

    mnt = tmp_path / "mnt"
    os.makedirs(mnt / "bundle" / "rootfs")
    (mnt / "image-info.json").write_text(json.dumps(GOOD))
    with pytest.raises(InvalidArgument, match="config.json"):
        reader.read_dir("img", str(mnt))
    (mnt / "bundle" / "config.json").write_text("{}")
    assert reader.read_dir("img", str(mnt)).id == image_id(D1)


def test_parse_sidecar():
    h = "a" * 64
    assert parse_sidecar(f"{h}  busybox.sqfs\n") == h
    assert parse_sidecar(f"sha256:{h.upper()}") == h
    for bad in ("", "xyz  f", "a" * 63):
        with pytest.raises(ValueError):
            parse_sidecar(bad)
