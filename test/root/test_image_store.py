"""The image store owns its images (issue 11 §1, §3 image side, §5; issue 15 incoming/ cleanup).

Through a real tcrd: a loaded file is the store's own root-only inode; `--move` takes only a
file nobody else can reach; a damaged file with a sidecar is refused; a stored file changed while
tcrd was down is refused and shown as broken, never mounted; long work runs in a forked worker
(tcr ps answers while it runs); uploads never stay in incoming/.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile

import pytest

from test.fixtures.images import c_tool_sqfs, variant_digest, write_sidecar
from test.fixtures.process import NOBODY, in_child, wait_for
from test.root.test_ssh_remote import sshd  # noqa: F401,F811  (fixture)

pytestmark = pytest.mark.root


def _stored(tcrd, iid):
    return os.path.join(tcrd.root, "images", iid, "image.sqfs")


def _load(tcrd, path, *flags):
    r = tcrd.cli("image", "load", "-q", *flags, path)
    assert r.returncode == 0, r.stderr + tcrd.log()
    return r.stdout.strip()


def _staging_dirs(tcrd):
    d = os.path.join(tcrd.root, "images")
    return [n for n in os.listdir(d) if n.startswith(".load-")] if os.path.isdir(d) else []


def big_sqfs(tmpdir, mb, label="big", sidecar=True):
    """A valid image padded to `mb` MB (squashfs ignores bytes after its bytes_used)."""
    p = c_tool_sqfs(tmpdir, digest=variant_digest(f"{label}{mb}"), name=f"{label}{mb}.sqfs")
    pattern = bytes(range(256)) * 4096  # 1 MB of non-zero bytes: never a sparse hole
    with open(p, "ab") as f:
        while f.tell() < mb * 1024 * 1024:
            f.write(pattern)
    if sidecar:
        write_sidecar(p)
    return p


def _children(pid):
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def worker_of(tcrd):
    """A forked worker of tcrd (a child running tcrd's own command line), or None."""
    me = _cmdline(tcrd.pid)
    for c in _children(tcrd.pid):
        if _cmdline(c) == me:
            return c
    return None


def _flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x55]))


# ---- §1 the store owns its images ------------------------------------------------------------

@pytest.fixture
def public_dir():
    """A directory other users can reach (pytest's tmp_path is under a 0700 directory)."""
    d = tempfile.mkdtemp(prefix=f"tcr-store-{os.getpid()}-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_load_gives_the_store_its_own_root_only_inode(tcrd, tmp_path, public_dir):
    """Was: a hard link to the user's file; its owner could rewrite what root containers run."""
    src = c_tool_sqfs(public_dir, sidecar=True)
    os.chown(src, NOBODY, NOBODY)
    os.chmod(src, 0o666)
    iid = _load(tcrd, src)
    stored = _stored(tcrd, iid)
    st = os.stat(stored)
    assert st.st_ino != os.stat(src).st_ino and st.st_nlink == 1
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o444)
    assert os.stat(os.path.dirname(stored)).st_mode & 0o777 == 0o700
    # The user can neither reach the stored file nor change it through their own.
    assert in_child(lambda: str(os.access(stored, os.R_OK) or os.access(stored, os.W_OK))) == "False"
    other = c_tool_sqfs(str(tmp_path), digest=variant_digest("planted"), name="planted.sqfs")
    with open(other, "rb") as f:
        planted = f.read()

    def rewrite():
        with open(src, "r+b") as f:  # the scp-to-the-same-path flow: same inode, new bytes
            f.write(planted)
        return "written"

    assert in_child(rewrite) == "written"
    r = tcrd.cli("image", "verify", iid)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr


def test_damaged_file_with_a_sidecar_is_refused_and_leaves_nothing(tcrd, tmp_path):
    """Was: loaded with exit 0, crashed at run time."""
    src = c_tool_sqfs(str(tmp_path), sidecar=True)
    _flip_byte(src, os.path.getsize(src) // 2)
    r = tcrd.cli("image", "load", src)
    assert r.returncode != 0
    assert "checksum mismatch" in r.stderr and "\n" not in r.stderr.strip().split("\nhint:")[0], r.stderr
    assert tcrd.cli("image", "ls", "-q").stdout == ""
    assert _staging_dirs(tcrd) == [] and os.listdir(os.path.join(tcrd.root, "images")) == []


def test_move_takes_the_inode_in_o1(tcrd, tmp_path):
    src = c_tool_sqfs(str(tmp_path), sidecar=True)
    ino = os.stat(src).st_ino
    iid = _load(tcrd, src, "--move")
    assert not os.path.exists(src)
    st = os.stat(_stored(tcrd, iid))
    assert st.st_ino == ino and st.st_nlink == 1 and st.st_mode & 0o7777 == 0o444
    r = tcrd.cli("image", "verify", iid)
    assert r.returncode == 0, r.stderr


def test_move_refuses_files_others_can_reach(tcrd, tmp_path):
    owned = c_tool_sqfs(str(tmp_path), name="owned.sqfs")
    os.chown(owned, NOBODY, NOBODY)
    r = tcrd.cli("image", "load", "--move", owned)
    assert r.returncode != 0 and "not owned by root" in r.stderr, r.stderr
    assert os.path.isfile(owned)
    linked = c_tool_sqfs(str(tmp_path), name="linked.sqfs")
    os.link(linked, str(tmp_path / "second-name.sqfs"))
    r = tcrd.cli("image", "load", "--move", linked)
    assert r.returncode != 0 and "other hard link" in r.stderr, r.stderr
    assert os.path.isfile(linked)
    link = str(tmp_path / "symlink.sqfs")
    os.symlink(linked, link)
    r = tcrd.cli("image", "load", "--move", link)
    assert r.returncode != 0 and "symbolic link" in r.stderr, r.stderr
    shm = tempfile.mkdtemp(dir="/dev/shm")
    try:
        if os.stat(shm).st_dev != os.stat(tcrd.root).st_dev:
            far = c_tool_sqfs(shm)
            r = tcrd.cli("image", "load", "--move", far)
            assert r.returncode != 0 and "another filesystem" in r.stderr, r.stderr
            assert os.path.isfile(far)
    finally:
        shutil.rmtree(shm)
    # A refused --move (damaged content) gives the file back under its name.
    bad = c_tool_sqfs(str(tmp_path), name="bad.sqfs", sidecar=True)
    _flip_byte(bad, os.path.getsize(bad) // 2)
    with open(bad, "rb") as f:
        before = f.read()
    r = tcrd.cli("image", "load", "--move", bad)
    assert r.returncode != 0 and "checksum mismatch" in r.stderr, r.stderr
    with open(bad, "rb") as f:
        assert f.read() == before
    assert tcrd.cli("image", "ls", "-q").stdout == "" and _staging_dirs(tcrd) == []


def test_a_stored_file_changed_while_tcrd_was_down_is_broken_never_mounted(tcrd, tmp_path):
    """Was: remounted unchecked at the next boot."""
    iid = _load(tcrd, c_tool_sqfs(str(tmp_path)))
    ok = _load(tcrd, c_tool_sqfs(str(tmp_path), digest=variant_digest("untouched")))
    tcrd.kill9()
    for i in (iid, ok):  # what a reboot does: nothing is mounted any more
        subprocess.run(["umount", os.path.join(tcrd.root, "images", i, "mnt")], check=True)
    stored = _stored(tcrd, iid)
    st = os.stat(stored)
    # A careful attacker: same size, mtime put back; only the inode's ctime tells.
    os.chmod(stored, 0o644)
    _flip_byte(stored, st.st_size - 100)
    os.chmod(stored, 0o444)
    os.utime(stored, ns=(st.st_atime_ns, st.st_mtime_ns))
    tcrd.start()
    info = json.loads(tcrd.cli("image", "inspect", iid).stdout)[0]
    assert info["mounted"] is False and "changed since it was loaded" in info["broken"], info
    assert json.loads(tcrd.cli("image", "inspect", ok).stdout)[0]["mounted"] is True
    r = tcrd.cli("image", "ls")
    assert r.returncode == 0 and f"image {iid} is broken" in r.stderr, r.stderr
    listed = json.loads(tcrd.cli("image", "ls", "--json").stdout)
    assert {i["Id"]: bool(i["Broken"]) for i in listed} == {iid: True, ok: False}
    r = tcrd.cli("run", "--rm", iid, "true")
    assert r.returncode == 125 and "broken" in r.stderr, r.stderr
    assert tcrd.cli("ps", "-aq").stdout == ""
    r = tcrd.cli("image", "rm", iid)
    assert r.returncode == 0, r.stderr


# ---- §3 long work in a worker -----------------------------------------------------------------

def test_ps_answers_while_a_load_and_a_verify_run_in_a_worker(tcrd, tmp_path):
    """Was: copying/hashing on the event loop stalled every other client."""
    src = big_sqfs(str(tmp_path), 64)
    env_cli = tcrd.cli  # same client as the fixture, run in the background below
    iid = ""
    for verb in ("load", "verify"):
        args = ["image", "load", "-q", src] if verb == "load" else ["image", "verify", iid]
        proc = subprocess.Popen([*_cli_argv(tcrd), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=_cli_env())
        try:
            w = wait_for(lambda: worker_of(tcrd), 30, f"a worker process for image {verb}")
            os.kill(w, signal.SIGSTOP)  # the worker is stuck mid-work: tcrd must still answer
            try:
                assert env_cli("ps").returncode == 0
                assert env_cli("image", "ls").returncode == 0
                assert proc.poll() is None  # the load/verify is still waiting for its worker
            finally:
                os.kill(w, signal.SIGCONT)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        if verb == "load":
            iid = out.strip()
        else:
            assert "OK" in out


def test_a_killed_worker_is_one_clear_error_and_leaves_nothing(tcrd, tmp_path):
    src = big_sqfs(str(tmp_path), 64)
    proc = subprocess.Popen([*_cli_argv(tcrd), "image", "load", src], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_cli_env())
    try:
        w = wait_for(lambda: worker_of(tcrd), 30, "a worker process")
        os.kill(w, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert "image load: worker process killed by signal 9 (SIGKILL)" in err, err
    assert tcrd.cli("image", "ls", "-q").stdout == "" and _staging_dirs(tcrd) == []
    assert os.path.isfile(src)


def _cli_argv(tcrd):
    import sys

    return [sys.executable, "-m", "tcr.cli.main", "--socket", tcrd.socket]


def _cli_env():
    from test.fixtures.daemon import _env

    return _env()


# ---- §5 no growth: PySquashfsImage and decompressors never enter tcrd ------------------------

def _maps(pid):
    with open(f"/proc/{pid}/maps") as f:
        return f.read()


def test_tcrd_never_maps_the_squashfs_reader_or_its_decompressors(tcrd, tmp_path):
    """Was: PySquashfsImage + zstandard lived in tcrd and grew it by ~27 MB over 700 loads."""
    pytest.importorskip("zstandard")
    iid = _load(tcrd, c_tool_sqfs(str(tmp_path), sidecar=True))
    assert tcrd.cli("image", "verify", iid).returncode == 0
    maps = _maps(tcrd.pid)
    assert "zstandard" not in maps and "libcrypto" not in maps, [ln for ln in maps.splitlines()
                                                                   if "zstandard" in ln or "crypto" in ln]


# ---- issue 15: uploads never stay in incoming/ ---------------------------------------------------

def test_refused_or_repeated_uploads_leave_nothing_in_incoming(tcrd, tmp_path):
    """The daemon-side path of `tcr -H ... image load` (the file is already in <root>/incoming)."""
    r = tcrd.cli("_incoming")
    assert r.returncode == 0, r.stderr
    incoming = r.stdout.strip()

    def upload(path):
        dst = os.path.join(incoming, os.path.basename(path))
        shutil.copyfile(path, dst)
        if os.path.exists(path + ".sha256"):
            shutil.copyfile(path + ".sha256", dst + ".sha256")
        return dst

    wrong = upload(c_tool_sqfs(str(tmp_path), arch="arm64", sidecar=True))
    r = tcrd.cli("image", "load", wrong)
    assert r.returncode != 0 and "arm64" in r.stderr, r.stderr
    assert os.listdir(incoming) == []
    first = _load(tcrd, c_tool_sqfs(str(tmp_path), name="first.sqfs"))
    again = upload(c_tool_sqfs(str(tmp_path), name="again.sqfs", sidecar=True))
    assert _load(tcrd, again) == first  # already loaded: a no-op, and the upload goes
    assert os.listdir(incoming) == []
    damaged = upload(c_tool_sqfs(str(tmp_path), digest=variant_digest("dmg"), name="d.sqfs", sidecar=True))
    _flip_byte(damaged, os.path.getsize(damaged) // 2)
    assert tcrd.cli("image", "load", damaged).returncode != 0
    assert os.listdir(incoming) == []
    good = upload(c_tool_sqfs(str(tmp_path), digest=variant_digest("up"), name="up.sqfs", sidecar=True))
    ino = os.stat(good).st_ino
    iid = _load(tcrd, good)
    assert os.listdir(incoming) == [] and os.stat(_stored(tcrd, iid)).st_ino == ino  # moved, not copied
    assert _staging_dirs(tcrd) == []


def test_refused_or_repeated_loads_over_ssh_leave_nothing_in_incoming(tcrd, sshd, tmp_path):  # noqa: F811
    """issue 15: `tcr -H ssh://... image load` of a wrong-arch or already-loaded image."""
    from test.root.test_ssh_remote import local_tcr

    wrong = c_tool_sqfs(str(tmp_path), arch="arm64", name="wrong.sqfs", sidecar=True)
    r = local_tcr(sshd, "image", "load", wrong)
    assert r.returncode != 0 and "arm64" in r.stderr, r.stderr
    incoming = os.path.join(tcrd.root, "incoming")
    assert os.listdir(incoming) == []
    good = c_tool_sqfs(str(tmp_path), name="good.sqfs", sidecar=True)
    r = local_tcr(sshd, "image", "load", good)
    assert r.returncode == 0, r.stderr
    r2 = local_tcr(sshd, "image", "load", good)
    assert r2.returncode == 0 and r2.stdout == r.stdout, r2.stderr
    assert os.listdir(incoming) == []


# ---- §3 bounded reads of what an image carries ---------------------------------------------------

def test_a_huge_config_json_in_an_image_is_refused_in_one_line(tcrd, tmp_path):
    """Was: a 1 MB config.json made every `tcr run` take seconds and stalled all clients."""
    from test.fixtures.images import _bundle, image_info
    from test.fixtures.oci_layout import busybox_layout

    src = os.path.join(str(tmp_path), "src")
    shutil.copytree(os.path.join(_bundle("amd64", busybox_layout()), "bundle"), os.path.join(src, "bundle"),
                    symlinks=True)
    cfg_path = os.path.join(src, "bundle", "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg.setdefault("annotations", {})["padding"] = "x" * (1024 * 1024)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    with open(os.path.join(src, "image-info.json"), "w") as f:
        json.dump(image_info(digest=variant_digest("huge-config")), f)
    out = os.path.join(str(tmp_path), "huge-config.sqfs")
    subprocess.run(["mksquashfs", os.path.join(src, "bundle"), os.path.join(src, "image-info.json"), out,
                    "-noappend", "-comp", "gzip", "-quiet", "-no-progress"], check=True,
                   stdout=subprocess.DEVNULL)
    iid = _load(tcrd, out)
    r = tcrd.cli("run", "--rm", "--network", "none", iid, "true")
    assert r.returncode == 125, (r.stdout, r.stderr)
    assert "config.json of image" in r.stderr and "too large" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2, r.stderr
    assert tcrd.cli("ps", "-aq").stdout == ""


def test_concurrent_loads_of_one_image_give_one_image(tcrd, tmp_path):
    """Two workers stage the same image at once: the second to finish returns the first's record."""
    a = c_tool_sqfs(str(tmp_path), name="a.sqfs", sidecar=True)
    b = c_tool_sqfs(str(tmp_path), name="b.sqfs", sidecar=True)
    procs = [subprocess.Popen([*_cli_argv(tcrd), "image", "load", "-q", p], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=_cli_env()) for p in (a, b)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0] == outs[1][0]
    iid = outs[0][0].strip()
    assert tcrd.cli("image", "ls", "-q").stdout.split() == [iid]
    assert sorted(os.listdir(os.path.join(tcrd.root, "images"))) == [iid, iid + ".json"]
