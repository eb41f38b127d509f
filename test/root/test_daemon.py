"""tcrd end to end through the real `tcr` client: images, the state-root lock, crashes, SIGTERM."""

import json
import os
import subprocess
import sys

import pytest

from tcr.kernel import loopdev, mountinfo
from test.fixtures.daemon import _env
from test.fixtures.images import c_tool_sqfs, variant_digest
from test.fixtures.process import wait_for

pytestmark = pytest.mark.root


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r.stdout


def loops_of(root):
    return sorted(n for n, bf in loopdev.attached().items() if bf.startswith(root + "/"))


def test_load_ls_inspect_verify_rm(tcrd, tmp_path):
    src = c_tool_sqfs(tmp_path, sidecar=True, name="bb.sqfs")
    out = ok(tcrd.cli("image", "load", "bb.sqfs", cwd=str(tmp_path)))  # relative to the client's cwd
    iid = out.splitlines()[0]
    assert len(iid) == 16 and "Loaded image: docker.io/library/busybox:latest" in out

    table = ok(tcrd.cli("image", "ls"))
    head, row = table.splitlines()
    assert head.split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE", "ARCH"]
    assert row.split()[:3] == ["docker.io/library/busybox", "latest", iid] and row.split()[-1] == "amd64"
    assert ok(tcrd.cli("images")) == table

    items = json.loads(ok(tcrd.cli("image", "ls", "--format", "json")))
    got = [(i["Id"], i["Repository"], i["Tag"]) for i in items]
    assert got == [(iid, "docker.io/library/busybox", "latest")]
    assert json.loads(ok(tcrd.cli("image", "ls", "--json"))) == items

    info = json.loads(ok(tcrd.cli("image", "inspect", "busybox")))[0]
    assert info["id"] == iid and info["mounted"] is True and info["source"] == src
    assert os.path.isfile(os.path.join(info["rootfs"], "bin", "busybox"))

    assert ok(tcrd.cli("image", "verify", iid[:6])).startswith(f"{iid}: OK")

    assert ok(tcrd.cli("image", "rm", "busybox")) == iid + "\n"
    assert not os.path.exists(info["mountpoint"]) and loops_of(tcrd.root) == []
    assert ok(tcrd.cli("image", "ls", "-q")) == ""


def test_errors_are_clear_and_change_nothing(tcrd, tmp_path):
    r = tcrd.cli("image", "rm", "nope")
    assert r.returncode != 0 and "image nope not found" in r.stderr
    r = tcrd.cli("image", "load", str(tmp_path / "missing.sqfs"))
    assert r.returncode != 0 and "no such file" in r.stderr
    r = tcrd.cli("image", "frobnicate")
    assert r.returncode != 0 and "unknown subcommand" in r.stderr
    r = tcrd.cli("image", "verify", "nope")
    assert r.returncode != 0 and "not found" in r.stderr
    assert ok(tcrd.cli("image", "ls", "-q")) == ""


def test_arm64_image_is_refused(tcrd, tmp_path):
    r = tcrd.cli("image", "load", c_tool_sqfs(tmp_path, arch="arm64"))
    assert r.returncode != 0
    assert "image architecture arm64 cannot run on this amd64 host" in r.stderr
    assert ok(tcrd.cli("image", "ls", "-q")) == "" and loops_of(tcrd.root) == []


def test_tag_takeover(tcrd, tmp_path):
    old = ok(tcrd.cli("image", "load", c_tool_sqfs(tmp_path))).split()[0]
    new = ok(tcrd.cli("image", "load", c_tool_sqfs(tmp_path, digest=variant_digest("v2")))).split()[0]
    rows = {line.split()[2]: line.split()[1] for line in ok(tcrd.cli("image", "ls")).splitlines()[1:]}
    assert rows == {new: "latest", old: "<none>"}
    assert json.loads(ok(tcrd.cli("image", "inspect", "busybox:latest")))[0]["id"] == new
    assert json.loads(ok(tcrd.cli("image", "inspect", old)))[0]["mounted"] is True


def test_second_daemon_on_the_same_root_is_refused(tcrd):
    r = subprocess.run([sys.executable, "-m", "tcr.daemon.main", "--root", tcrd.root, "--socket",
                        os.path.join(tcrd.base, "other.sock"), "--run-dir", os.path.join(tcrd.base, "run2"),
                        "--no-compat-socket"], env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert f"state root {tcrd.root} is in use by tcrd (pid {tcrd.pid})" in r.stderr
    assert ok(tcrd.cli("image", "ls", "-q")) == ""  # the first one is unharmed


def test_kill9_and_restart_keeps_images_mounted_without_new_loop_devices(tcrd, tmp_path):
    a = ok(tcrd.cli("image", "load", c_tool_sqfs(tmp_path))).split()[0]
    other = c_tool_sqfs(tmp_path, tag="other", digest=variant_digest("other"))
    b = ok(tcrd.cli("image", "load", other)).split()[0]
    loops = loops_of(tcrd.root)
    mounts = [m.mount_point for m in mountinfo.under(tcrd.root)]
    assert len(loops) == 2 and len(mounts) == 2
    tcrd.kill9()
    tcrd.start()
    assert loops_of(tcrd.root) == loops
    assert [m.mount_point for m in mountinfo.under(tcrd.root)] == mounts
    assert sorted(ok(tcrd.cli("image", "ls", "-q")).split()) == sorted([a, b])
    assert json.loads(ok(tcrd.cli("image", "inspect", "busybox:other")))[0]["id"] == b


def test_restart_remounts_images_unmounted_while_it_was_down(tcrd, tmp_path):
    iid = ok(tcrd.cli("image", "load", c_tool_sqfs(tmp_path))).split()[0]
    assert tcrd.stop() == 0
    mnt = os.path.join(tcrd.root, "images", iid, "mnt")
    assert mountinfo.find(mnt) is not None  # SIGTERM leaves images mounted
    subprocess.run(["umount", mnt], check=True)
    tcrd.start()
    info = json.loads(ok(tcrd.cli("image", "inspect", iid)))[0]
    assert info["mounted"] is True and len(loops_of(tcrd.root)) == 1


def test_sigterm_exits_0_and_removes_the_pidfile(tcrd):
    # tcrd writes the pid file right after it listens: the fixture saw the socket, maybe not this yet
    wait_for(lambda: os.path.exists(tcrd.pidfile), what="the pid file")
    with open(tcrd.pidfile) as f:
        assert int(f.read()) == tcrd.pid
    assert tcrd.stop() == 0
    assert not os.path.exists(tcrd.pidfile) and not os.path.exists(tcrd.socket)


def test_check_flag(tcrd):
    r = subprocess.run([sys.executable, "-m", "tcr.daemon.main", "--check"], env=_env(), capture_output=True,
                       text=True, timeout=60)
    assert "squashfs" in r.stdout and "cgroups" in r.stdout and "crun" in r.stdout
    assert r.returncode == (0 if "problem(s)" not in r.stdout else 1)


def test_damaged_record_does_not_stop_the_daemon(tcrd, tmp_path):
    iid = ok(tcrd.cli("image", "load", c_tool_sqfs(tmp_path))).split()[0]
    assert tcrd.stop() == 0
    bad = os.path.join(tcrd.root, "images", "0000000000000000.json")
    with open(bad, "w") as f:
        f.write("{not json")
    tcrd.start()
    assert ok(tcrd.cli("image", "ls", "-q")).split() == [iid]
    assert os.path.exists(bad + ".corrupt") and "damaged" in tcrd.log()
