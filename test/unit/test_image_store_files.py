"""tcr.images.store file work and tcr.kernel.fsverity, on real files (no root needed)."""

import errno
import hashlib
import os
import struct

import pytest

from tcr.common.errors import InvalidArgument, TcrError
from tcr.images import store, storedfile
from tcr.images.record import StoredFile
from tcr.kernel import fsverity


def _file(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


@pytest.mark.parametrize("reflink", [True, False])
def test_copy_fd_copies_every_byte(tmp_path, reflink):
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = _file(tmp_path, "src", data)
    dst = str(tmp_path / "dst")
    fi = os.open(src, os.O_RDONLY)
    fo = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    try:
        method = store.copy_fd(fi, fo, len(data), allow_reflink=reflink)
    finally:
        os.close(fi)
        os.close(fo)
    assert method in (("reflink", "copy_file_range", "read/write") if reflink else
                      ("copy_file_range", "read/write"))
    with open(dst, "rb") as f:
        assert f.read() == data


def test_copy_fd_falls_back_to_read_write(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "copy_file_range", raising=False)
    data = b"abc" * 100000
    src = _file(tmp_path, "src", data)
    fi = os.open(src, os.O_RDONLY)
    fo = os.open(str(tmp_path / "dst"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert store.copy_fd(fi, fo, len(data), allow_reflink=False) == "read/write"
    finally:
        os.close(fi)
        os.close(fo)
    assert (tmp_path / "dst").read_bytes() == data


def test_copy_fd_notices_a_file_that_shrank(tmp_path):
    src = _file(tmp_path, "src", b"x" * 1000)
    fi = os.open(src, os.O_RDONLY)
    fo = os.open(str(tmp_path / "dst"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(InvalidArgument, match="changed size"):
            store.copy_fd(fi, fo, 5000, allow_reflink=False)
    finally:
        os.close(fi)
        os.close(fo)


def test_sha256_file_matches_hashlib_and_refuses_non_regular(tmp_path):
    data = os.urandom(5 * 1024 * 1024)
    p = _file(tmp_path, "f", data)
    assert store.sha256_file(p) == hashlib.sha256(data).hexdigest()
    with pytest.raises(InvalidArgument, match="not a regular file"):
        store.sha256_file(str(tmp_path))


def test_sidecar_reading(tmp_path):
    h = "ab" * 32
    assert store.read_sidecar(str(tmp_path / "none.sha256")) is None
    assert store.read_sidecar(_file(tmp_path, "a.sha256", f"{h}  a.sqfs\n".encode())) == h
    with pytest.raises(InvalidArgument, match="no sha256 hex digest"):
        store.read_sidecar(_file(tmp_path, "b.sha256", b"hello\n"))
    with pytest.raises(InvalidArgument, match="too large"):
        store.read_sidecar(_file(tmp_path, "c.sha256", b"a" * 10000))
    fifo = str(tmp_path / "d.sha256")
    os.mkfifo(fifo)
    with pytest.raises(InvalidArgument, match="not a regular file"):
        store.read_sidecar(fifo)  # never blocks on a FIFO


def test_check_unchanged_sees_every_kind_of_change(tmp_path):
    p = _file(tmp_path, "img", b"squash" * 1000)
    os.chmod(p, 0o444)
    if os.geteuid() != 0:
        pytest.skip("the fingerprint also requires a root-owned file")
    fp = storedfile.fingerprint(p, "", False)
    assert storedfile.check_unchanged(p, fp) is None
    st = os.stat(p)
    os.chmod(p, 0o644)
    with open(p, "r+b") as f:
        f.write(b"X")
    os.chmod(p, 0o444)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back: the ctime still tells
    assert "ctime" in storedfile.check_unchanged(p, fp)
    with open(p, "ab") as f:
        f.write(b"more")
    why = storedfile.check_unchanged(p, fp)
    assert "size" in why and "modification time" in why
    os.link(p, str(tmp_path / "second"))
    assert "one link" in storedfile.check_unchanged(p, storedfile.fingerprint(p, "", False))
    os.unlink(p)
    assert "cannot stat" in storedfile.check_unchanged(p, fp)


def test_verify_compares_with_sidecar_and_recorded_digest(tmp_path):
    data = b"image bytes" * 1000
    p = _file(tmp_path, "img", data)
    good = hashlib.sha256(data).hexdigest()
    rec = StoredFile(size=len(data), mtime_ns=0, ctime_ns=0, ino=0, sha256=good)
    assert store.verify(p, rec, None) == {"sha256": good}
    side = _file(tmp_path, "img.sha256", f"{'0' * 64}  img\n".encode())
    with pytest.raises(TcrError, match="MISMATCH.*sidecar says 0000"):
        store.verify(p, rec, side)
    with pytest.raises(TcrError, match="MISMATCH.*recorded at load"):
        store.verify(p, StoredFile(1, 0, 0, 0, "1" * 64), None)
    with pytest.raises(InvalidArgument, match="no checksum to compare with"):
        store.verify(p, StoredFile(1, 0, 0, 0, ""), None)


def test_fsverity_enable_arg_layout():
    arg = fsverity.enable_arg(4096)
    assert len(arg) == 128  # struct fsverity_enable_arg
    version, alg, block, salt_size = struct.unpack_from("=IIII", arg)
    assert (version, alg, block, salt_size) == (1, fsverity.FS_VERITY_HASH_ALG_SHA256, 4096, 0)
    assert arg[16:] == bytes(112)


def test_fsverity_enable_reports_why_it_cannot(tmp_path, monkeypatch):
    p = _file(tmp_path, "f", b"x" * 8192)
    ok, why = fsverity.enable(p)  # tmpfs/ext4 without the feature, or a kernel without it
    if ok:
        assert fsverity.is_enabled(p) is True
    else:
        assert why and "\n" not in why

    def refuse(fd, req, arg):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(fsverity.fcntl, "ioctl", refuse)
    assert fsverity.enable(p) == (False, "the kernel or filesystem has no fs-verity (EOPNOTSUPP)")
