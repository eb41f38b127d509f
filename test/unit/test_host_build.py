"""tcr-create-image end to end WITHOUT root: synthetic OCI layouts (tar headers carry uid 1000,
device nodes, xattrs) -> squashfs, read back with PySquashfsImage. Also the CLI, inspect, errors,
image-info samples and the XXH64 cross-check."""

import glob
import json
import os
import random
import subprocess
import sys
import tarfile

import pytest
import xxhash

from tcr.common.errors import ImageNotFound, TcrError
from tcr.formats.image_info import ImageInfo
from tcr.formats.xxh64 import image_id as py_image_id
from tcr_host.build import BuildResult, create_image
from tcr_host.inspect import Inspection, inspect_image
from test.fixtures.oci_layout import make_layer, write_layout
from test.fixtures.oci_layout import tar_entry as E

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = os.path.join(ROOT, "test", "samples", "image-info")
PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
GROUP = b"root:x:0:\napp:x:1000:\nvideo:x:44:app\n"
CONFIG = {"Entrypoint": ["/bin/app"], "Cmd": ["--port", "80"], "Env": ["PATH=/bin", "MODE=test"],
          "WorkingDir": "/home/app", "User": "app"}


def synthetic_layout(dest: str) -> str:
    """Three layers (gzip, zstd, plain) exercising everything the flattener must get right."""
    l1 = make_layer([
        E("./"), E("bin/"), E("bin/app", b"#!/bin/sh\necho hi\n", mode=0o4755,
                              xattrs={"user.origin": "layer1"}),
        E("etc/"), E("etc/passwd", PASSWD), E("etc/group", GROUP),
        E("dev/"), E("dev/null", type=tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
        E("home/"), E("home/app/", uid=1000, gid=1000),
        E("home/app/owned.txt", b"mine\n", uid=1000, gid=1000, mode=0o640),
        E("data/"), E("data/a", b"hard linked\n"), E("data/b", type=tarfile.LNKTYPE, linkname="data/a"),
        E("data/link", type=tarfile.SYMTYPE, linkname="a"),
        E("data/orig", b"survives via link\n", uid=7), E("data/gone.txt", b"bye\n"),
        E("data/opq/"), E("data/opq/old.txt", b"old\n"),
        E("big", os.urandom(300_000)),
    ], "gzip")
    l2 = make_layer([
        E("data/"), E("data/.wh.gone.txt", b""), E("data/opq/"), E("data/opq/.wh..wh..opq", b""),
        E("data/opq/new.txt", b"new\n"), E("data/c", type=tarfile.LNKTYPE, linkname="data/orig"),
    ], "zstd")
    l3 = make_layer([E("data/"), E("data/.wh.orig", b""), E("empty", b"")], None)
    write_layout(dest, [l1, l2, l3], CONFIG, tag="latest", arch="amd64")
    write_layout(dest, [l1], {"Cmd": ["/bin/app"]}, tag="arm", arch="arm", variant="v7")
    return dest


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    return synthetic_layout(str(tmp_path_factory.mktemp("layout") / "synth"))


@pytest.fixture(scope="module")
def built(layout, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("out") / "synth.sqfs")
    return create_image(f"oci:{layout}:latest", out, created=1700000001, comp_level=3)


def squash(path):
    from PySquashfsImage import SquashFsImage

    return SquashFsImage.from_file(path)


def cli(*args, env=None, cwd=None):
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "target"), os.path.join(ROOT, "host_tools")])
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "tcr_host.cli", *args], capture_output=True, text=True,
                          env=e, cwd=cwd, stdin=subprocess.DEVNULL, timeout=120)


def test_rootfs_contents(built):
    img = squash(built.path)
    try:
        r = "/bundle/rootfs"
        owned = img.select(f"{r}/home/app/owned.txt")
        assert (owned.uid, owned.gid, owned.mode & 0o7777) == (1000, 1000, 0o640)
        assert owned.read_bytes() == b"mine\n"
        home = img.select(f"{r}/home/app")
        assert (home.uid, home.gid) == (1000, 1000)
        assert img.select(f"{r}/data/gone.txt") is None
        assert img.select(f"{r}/data/opq/old.txt") is None
        assert img.select(f"{r}/data/opq/new.txt").read_bytes() == b"new\n"
        a, b = img.select(f"{r}/data/a"), img.select(f"{r}/data/b")
        assert a.inode.inode_number == b.inode.inode_number and b.read_bytes() == b"hard linked\n"
        assert img.select(f"{r}/data/link").readlink() in (b"a", "a")
        assert img.select(f"{r}/data/orig") is None
        c = img.select(f"{r}/data/c")  # its link target was whited out one layer later
        assert c.read_bytes() == b"survives via link\n" and c.uid == 7
        null = img.select(f"{r}/dev/null")
        assert null.is_char_device and (null.major, null.minor) == (1, 3) and null.mode & 0o777 == 0o666
        app = img.select(f"{r}/bin/app")
        assert app.mode & 0o7777 == 0o4755 and app.time == 1700000000
        assert len(img.select(f"{r}/big").read_bytes()) == 300_000
        assert img.select(f"{r}/empty").size == 0
        assert img.select(r).is_dir
    finally:
        img.close()


def test_xattrs_kept(built):
    # PySquashfsImage does not decode xattrs; squashfs-tools-ng's sqfs2tar does (no root needed)
    tar = subprocess.run(["sqfs2tar", built.path], capture_output=True, check=True, timeout=60).stdout
    import io

    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        app = tf.getmember("bundle/rootfs/bin/app")
        owned = tf.getmember("bundle/rootfs/home/app/owned.txt")
    assert app.pax_headers.get("SCHILY.xattr.user.origin") == "layer1"
    assert (owned.uid, owned.gid, owned.mode) == (1000, 1000, 0o640)


def test_image_info_and_config(built, layout):
    ins = inspect_image(built.path, verify=True)
    info = ins.info
    assert info == built.info
    with open(os.path.join(layout, "index.json")) as f:
        digest = [m["digest"] for m in json.load(f)["manifests"]
                  if m["annotations"]["org.opencontainers.image.ref.name"] == "latest"][0]
    assert info.digest == digest and info.id == xxhash.xxh64_hexdigest(digest.encode()) == py_image_id(digest)
    assert (info.registry, info.repository, info.tag, info.arch) == ("localhost", "synth", "latest", "amd64")
    assert info.bundle_path == "bundle" and info.created == 1700000001 and info.version == 1
    raw = squash(built.path).select("/image-info.json").read_bytes()
    d = json.loads(raw)
    assert isinstance(d["created"], int) and isinstance(d["version"], int)
    keys = ("id", "registry", "repository", "tag", "digest", "arch")
    assert all(isinstance(d["image"][k], str) for k in keys)
    p = ins.config["process"]
    assert p["args"] == ["/bin/app", "--port", "80"]
    assert p["env"] == ["PATH=/bin", "TERM=xterm", "MODE=test", "HOME=/home/app"]
    assert p["cwd"] == "/home/app" and p["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [44]}
    assert ins.checksum == "ok"


def test_sidecar_and_permissions(built):
    with open(built.path + ".sha256") as f:
        line = f.read()
    assert line == f"{built.sha256}  {os.path.basename(built.path)}\n"
    assert os.stat(built.path).st_mode & 0o777 == 0o666 & ~_umask()
    assert not glob.glob(os.path.join(os.path.dirname(built.path), ".*"))  # no temp leftovers


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_result_and_inspection_round_trip(built):
    assert BuildResult.from_dict(json.loads(json.dumps(built.to_dict()))) == built
    ins = inspect_image(built.path)
    assert Inspection.from_dict(json.loads(json.dumps(ins.to_dict()))) == ins
    assert ins.checksum == "not checked"


def test_arch_selection_from_layout(layout, tmp_path):
    res = create_image(f"oci:{layout}:arm", str(tmp_path / "a.sqfs"), arch="arm/v7", name="x/app:1")
    assert res.info.arch == "arm/v7" and (res.info.registry, res.info.repository, res.info.tag) == \
        ("docker.io", "x/app", "1")
    with pytest.raises(ImageNotFound, match="linux/arm/v7, not linux/arm64"):
        create_image(f"oci:{layout}:arm", str(tmp_path / "b.sqfs"), arch="arm64")
    with pytest.raises(ImageNotFound, match="no image tagged 'nope'"):
        create_image(f"oci:{layout}:nope", str(tmp_path / "c.sqfs"))
    assert sorted(os.listdir(tmp_path)) == ["a.sqfs", "a.sqfs.sha256"]


def test_index_selection(layout, tmp_path):
    from test.fixtures.oci_layout import add_index_tag

    lay = str(tmp_path / "lay")
    synthetic_layout(lay)
    add_index_tag(lay, "multi", [("latest", "amd64", ""), ("arm", "arm", "v7")])
    assert create_image(f"oci:{lay}:multi", str(tmp_path / "x.sqfs"), arch="arm/v7").info.arch == "arm/v7"
    assert create_image(f"oci:{lay}:multi", str(tmp_path / "y.sqfs"), arch="amd64").info.arch == "amd64"
    with pytest.raises(ImageNotFound, match="has no image for linux/arm64"):
        create_image(f"oci:{lay}:multi", str(tmp_path / "z.sqfs"), arch="arm64")
    assert not os.path.exists(tmp_path / "z.sqfs")


def test_output_exists_needs_force(layout, tmp_path):
    out = tmp_path / "o.sqfs"
    out.write_bytes(b"precious")
    with pytest.raises(TcrError, match="already exists"):
        create_image(f"oci:{layout}:latest", str(out))
    assert out.read_bytes() == b"precious"
    create_image(f"oci:{layout}:latest", str(out), force=True)
    assert out.read_bytes()[:4] == b"hsqs"


def _bad_layout(tmp_path, layer):
    lay = str(tmp_path / "bad")
    write_layout(lay, [layer], {"Cmd": ["/x"]})
    return lay


def test_traversal_refused_and_no_output(tmp_path):
    ti, data = E("ok", b"fine")
    evil = make_layer([(ti, data), E("../../etc/evil", b"pwned")], "gzip")
    lay = _bad_layout(tmp_path, evil)
    out = tmp_path / "out"
    out.mkdir()
    r = cli(f"oci:{lay}:latest", "-o", str(out / "e.sqfs"))
    assert r.returncode == 1, r.stderr
    assert "refusing path traversal" in r.stderr and "'../../etc/evil'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert os.listdir(out) == []


def test_corrupt_and_mismatched_layers(tmp_path):
    good, mt = make_layer([E("f", b"data" * 1000)], "gzip")
    lay = _bad_layout(tmp_path, (good[:40] + b"\xff" * 10 + good[50:], mt))
    # the blob is stored under its own digest, so only the gzip stream is broken
    with pytest.raises(TcrError, match="not valid gzip|not a valid tar|truncated"):
        create_image(f"oci:{lay}:latest", str(tmp_path / "x.sqfs"))
    lay2 = str(tmp_path / "bad2")
    write_layout(lay2, [(good, mt)], {})
    blob = glob.glob(os.path.join(lay2, "blobs/sha256/*"))
    for p in blob:  # flip one byte of the layer blob: its digest no longer matches
        with open(p, "rb") as f:
            data = f.read()
        if data == good:
            with open(p, "wb") as f:
                f.write(good[:-9] + bytes([good[-9] ^ 1]) + good[-8:])
    with pytest.raises(TcrError, match="digest|gzip|tar"):
        create_image(f"oci:{lay2}:latest", str(tmp_path / "y.sqfs"))
    assert not [p for p in os.listdir(tmp_path) if p.endswith(("sqfs", ".tmp", "sha256"))]


def test_cli_non_tty_prints_path_and_json(layout, tmp_path):
    r = cli(f"oci:{layout}:latest", "--comp-level", "1", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{tmp_path}/synth_latest.sqfs\n" and r.stderr == ""
    r = cli(f"oci:{layout}:latest", "-f", "--json", "-o", str(tmp_path / "j.sqfs"))
    d = json.loads(r.stdout)
    assert d["path"] == str(tmp_path / "j.sqfs") and d["image"]["image"]["arch"] == "amd64"
    r = cli("inspect", str(tmp_path / "j.sqfs"), "--json", "--verify")
    assert r.returncode == 0 and json.loads(r.stdout)["checksum"] == "ok"
    r = cli("inspect", str(tmp_path / "j.sqfs"))
    assert "Image:" in r.stdout and "localhost/synth:latest" in r.stdout
    assert "User:      1000:1000" in r.stdout


def test_cli_errors_and_exit_codes(layout, tmp_path):
    r = cli("--no-such-flag", "x")
    assert r.returncode == 2 and "error:" in r.stderr
    r = cli(f"oci:{layout}:latest", "--arch", "pdp11")
    assert r.returncode == 2 and "unknown architecture" in r.stderr
    r = cli(f"oci:{tmp_path}/none:latest", "-o", str(tmp_path / "n.sqfs"))
    assert r.returncode == 1 and "does not exist" in r.stderr
    (tmp_path / "junk.sqfs").write_bytes(b"not squashfs" * 100)
    r = cli("inspect", str(tmp_path / "junk.sqfs"))
    assert r.returncode == 1 and "not a squashfs image" in r.stderr and "Traceback" not in r.stderr


def test_missing_tools_reported_before_work(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    r = cli("docker://127.0.0.1:1/x:y", "-o", str(tmp_path / "m.sqfs"), env={"PATH": str(empty)})
    assert r.returncode == 1
    assert "skopeo (apt-get install skopeo)" in r.stderr
    assert "tar2sqfs (apt-get install squashfs-tools-ng)" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["bin"]


@pytest.mark.parametrize("name", ["ctool_busybox.json", "tcr_busybox.json", "future_keys.json"])
def test_image_info_samples(name):
    with open(os.path.join(SAMPLES, name), "rb") as f:
        info = ImageInfo.from_json(f.read())
    assert info.id == xxhash.xxh64_hexdigest(info.digest.encode())
    assert ImageInfo.from_dict(info.to_dict()) == info
    assert ImageInfo.from_json(info.to_json().encode()) == info


def test_xxh64_pure_python_matches_xxhash():
    rnd = random.Random(42)
    for n in list(range(0, 70)) + [100, 255, 1000]:
        data = bytes(rnd.randrange(256) for _ in range(n))
        from tcr.formats.xxh64 import xxh64

        assert format(xxh64(data), "016x") == xxhash.xxh64_hexdigest(data, seed=0)
        assert xxh64(data, seed=12345) == xxhash.xxh64_intdigest(data, seed=12345)
