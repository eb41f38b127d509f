"""tcr-create-image on the real busybox fixture (uid 1000 owner, whiteouts, opaque dir, hard
links), pulled from a real registry on 127.0.0.1 and read from the OCI layout, as root and as an
unprivileged user (setpriv to nobody): ownership survives either way."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from tcr.common.errors import ImageNotFound, TcrError
from tcr_host.build import create_image

pytestmark = pytest.mark.root

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOBODY = 65534


def check_busybox(path, arch="amd64"):
    from PySquashfsImage import SquashFsImage

    img = SquashFsImage.from_file(path)
    try:
        r = "/bundle/rootfs"
        owned = img.select(f"{r}/home/user/owned.txt")
        assert (owned.uid, owned.gid, owned.mode & 0o7777) == (1000, 1000, 0o640)
        assert img.select(f"{r}/data/gone.txt") is None
        assert img.select(f"{r}/data/opq/old.txt") is None
        assert img.select(f"{r}/data/opq/new.txt").read_bytes() == b"layer 2\n"
        a, b = img.select(f"{r}/data/a"), img.select(f"{r}/data/b")
        assert a.inode.inode_number == b.inode.inode_number and a.read_bytes() == b"hard linked\n"
        link = img.select(f"{r}/data/link")
        assert link.is_symlink and link.readlink() in ("a", b"a")
        assert img.select(f"{r}/bin/busybox").mode & 0o111
        assert img.select(f"{r}/tmp").mode & 0o7777 == 0o1777
        info = json.loads(img.select("/image-info.json").read_bytes())
        cfg = json.loads(img.select("/bundle/config.json").read_bytes())
    finally:
        img.close()
    assert info["version"] == 1 and info["bundlePath"] == "bundle" and isinstance(info["created"], int)
    im = info["image"]
    assert all(isinstance(im[k], str) for k in ("id", "registry", "repository", "tag", "digest", "arch"))
    assert im["arch"] == arch and im["digest"].startswith("sha256:") and len(im["id"]) == 16
    p = cfg["process"]
    assert p["args"] == ["/bin/sh"] and p["cwd"] == "/home/user"
    assert "TCR_FIXTURE=1" in p["env"] and p["user"] == {"uid": 0, "gid": 0}
    assert cfg["root"]["path"] == "rootfs"
    return info


def test_build_from_registry(registry, tmp_path):
    res = create_image(f"{registry}/tcr-test/busybox:latest", str(tmp_path / "bb.sqfs"), tls_verify=False)
    info = check_busybox(res.path)
    assert (info["image"]["registry"], info["image"]["repository"], info["image"]["tag"]) == \
        (registry, "tcr-test/busybox", "latest")
    assert sorted(os.listdir(tmp_path)) == ["bb.sqfs", "bb.sqfs.sha256"]  # the pull's work dir is gone


def test_build_from_layout(busybox_layout, tmp_path):
    res = create_image(f"oci:{busybox_layout}:latest", str(tmp_path / "bb.sqfs"))
    info = check_busybox(res.path)
    with open(os.path.join(busybox_layout, "index.json")) as f:
        want = [m["digest"] for m in json.load(f)["manifests"]
                if m["annotations"]["org.opencontainers.image.ref.name"] == "latest"]
    assert info["image"]["digest"] == want[0]


def test_multi_arch_from_registry(registry, tmp_path):
    res = create_image(f"docker://{registry}/tcr-test/busybox:multi", str(tmp_path / "a.sqfs"),
                       tls_verify=False, arch="arm64")
    check_busybox(res.path, arch="arm64")
    with pytest.raises(ImageNotFound, match="arm/v7"):
        create_image(f"{registry}/tcr-test/busybox:multi", str(tmp_path / "b.sqfs"), tls_verify=False,
                     arch="arm/v7")
    with pytest.raises(ImageNotFound, match="is for linux/arm64, not linux/amd64"):
        create_image(f"{registry}/tcr-test/busybox:arm64", str(tmp_path / "c.sqfs"), tls_verify=False,
                     arch="amd64")
    with pytest.raises(ImageNotFound, match="image not found"):
        create_image(f"{registry}/tcr-test/nothing:here", str(tmp_path / "d.sqfs"), tls_verify=False)
    assert sorted(os.listdir(tmp_path)) == ["a.sqfs", "a.sqfs.sha256"]


def _as_nobody(args, cwd):
    # XDG_RUNTIME_DIR as a login session has it (skopeo looks for auth.json there)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": cwd, "TMPDIR": cwd, "XDG_RUNTIME_DIR": cwd,
           "PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "target"), os.path.join(ROOT, "host_tools")])}
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           sys.executable, "-m", "tcr_host.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, stdin=subprocess.DEVNULL, timeout=120)


@pytest.fixture
def nobody_dir():
    d = tempfile.mkdtemp(prefix=f"tcr-host-nobody-{os.getpid()}-")
    os.chown(d, NOBODY, NOBODY)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_non_root_keeps_ownership(busybox_layout, registry, nobody_dir):
    lay = os.path.join(nobody_dir, "layout")
    shutil.copytree(busybox_layout, lay)  # the cached layout's blobs are root-only (0600)
    for dirpath, _, names in os.walk(lay):
        os.chmod(dirpath, 0o755)
        for n in names:
            os.chmod(os.path.join(dirpath, n), 0o644)
    r = _as_nobody([f"oci:{lay}:latest", "-o", "layout.sqfs"], nobody_dir)
    assert r.returncode == 0, r.stderr
    out = os.path.join(nobody_dir, "layout.sqfs")
    assert os.stat(out).st_uid == NOBODY
    check_busybox(out)
    r = _as_nobody([f"{registry}/tcr-test/busybox:latest", "--tls-verify=false", "-o", "reg.sqfs", "--json"],
                   nobody_dir)
    assert r.returncode == 0, r.stderr
    r2 = _as_nobody([f"oci:{busybox_layout}:latest", "-o", "denied.sqfs"], nobody_dir)
    assert r2.returncode == 1 and "Permission denied" in r2.stderr and "internal error" not in r2.stderr
    assert json.loads(r.stdout)["path"] == os.path.join(nobody_dir, "reg.sqfs")
    check_busybox(os.path.join(nobody_dir, "reg.sqfs"))


def test_disk_full_leaves_nothing(busybox_layout, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tcr-host-test", str(mnt)], check=True)
    try:
        with pytest.raises(TcrError, match="no space left"):
            create_image(f"oci:{busybox_layout}:latest", str(mnt / "bb.sqfs"), comp_level=1)
        assert os.listdir(mnt) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.parametrize("transport", ["oci-archive", "docker-archive"])
def test_build_from_archives(busybox_layout, tmp_path, transport):
    """The two archive transports end to end: the fixture layout exported with skopeo, then built."""
    from test.fixtures.registry import skopeo_policy_args

    archive = str(tmp_path / f"busybox-{transport}.tar")
    dest = f"{transport}:{archive}" + (":tcr-test/busybox:latest" if transport == "docker-archive" else "")
    subprocess.run(["skopeo", *skopeo_policy_args(), "copy", "--quiet", f"oci:{busybox_layout}:latest", dest],
                   check=True, stdin=subprocess.DEVNULL, capture_output=True)
    res = create_image(f"{transport}:{archive}", str(tmp_path / "bb.sqfs"))
    info = check_busybox(res.path)
    assert info["image"]["arch"] == "amd64"
    assert sorted(os.listdir(tmp_path)) == sorted([os.path.basename(archive), "bb.sqfs", "bb.sqfs.sha256"])
