"""`tcr cp` on a real tcrd + crun: both directions, running and stopped containers, `-` tar
streams, permissions and mtimes, docker's path rules, errors, a hostile container (planted
symlinks, device nodes) and hostile archives, and a big file with bounded daemon memory.
"""

import io
import os
import signal
import stat
import subprocess
import tarfile
import time

import pytest

from test.fixtures.process import wait_for
from test.root.test_containers import cli, d, inspect  # noqa: F401  (d: the image-loaded daemon)
from test.root.test_ssh_remote import sshd  # noqa: F401  (an sshd whose sessions reach d)

pytestmark = pytest.mark.root

SLEEPER = ["busybox", "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]


def run_d(d, name, *extra, setup=""):
    script = ((setup + "; " if setup else "")
              + "trap 'exit 0' TERM; touch /tmp/.ready; while true; do sleep 0.1; done")
    cli(d, "run", "-d", "--name", name, "--network", "none", *extra, "busybox", "sh", "-c", script)
    wait_for(lambda: d.cli("exec", name, "test", "-e", "/tmp/.ready").returncode == 0, what=f"{name} ready")


def sh(d, name, script):
    return cli(d, "exec", name, "sh", "-c", script).stdout


def raw(d, *args, input=None, cwd=None):
    """The client with bytes in and out (tar streams)."""
    return subprocess.run(d.cli_argv(*args), env=d.cli_env(), input=input, capture_output=True,
                          cwd=cwd or d.base, timeout=300,
                          stdin=None if input is not None else subprocess.DEVNULL)


def stopped(d, name, setup):
    """A container that ran `setup` and exited."""
    cli(d, "run", "-d", "--name", name, "--network", "none", "busybox", "sh", "-c", setup)
    wait_for(lambda: inspect(d, name)["state"] == "exited", what=f"{name} exits")


def test_cp_from_container_docker_rules(d, tmp_path):
    run_d(d, "cpf", setup="busybox mkdir -p /data/dir/sub && echo hello > /data/dir/a && "
          "busybox chmod 640 /data/dir/a && echo deep > /data/dir/sub/b && "
          "busybox chmod 750 /data/dir/sub && "
          "busybox ln -s a /data/dir/link && busybox touch -d '2020-01-02 03:04:05' /data/dir/a && "
          "echo file > /data/f && busybox chmod 604 /data/f && busybox ln -s /data/f /data/flink")
    out = tmp_path / "out"
    out.mkdir()
    # file -> new name; file -> into an existing dir; file -> over an existing file
    cli(d, "cp", "cpf:/data/f", str(out / "g"))
    assert (out / "g").read_text() == "file\n" and stat.S_IMODE((out / "g").stat().st_mode) == 0o604
    cli(d, "cp", "cpf:/data/f", str(out))
    assert (out / "f").read_text() == "file\n"
    (out / "over").write_text("old content, longer than the new one\n")
    cli(d, "cp", "cpf:/data/f", str(out / "over"))
    assert (out / "over").read_text() == "file\n"
    # dir -> new name (its contents), dir -> into an existing dir, dir/. -> contents into a dir
    cli(d, "cp", "cpf:/data/dir", str(out / "newdir"))
    assert (out / "newdir" / "a").read_text() == "hello\n"
    assert (out / "newdir" / "sub" / "b").read_text() == "deep\n"
    assert stat.S_IMODE((out / "newdir" / "a").stat().st_mode) == 0o640
    assert stat.S_IMODE((out / "newdir" / "sub").stat().st_mode) == 0o750
    assert (out / "newdir" / "a").stat().st_mtime == time.mktime((2020, 1, 2, 3, 4, 5, 0, 0, -1))
    assert os.readlink(out / "newdir" / "link") == "a"
    (out / "exists").mkdir()
    cli(d, "cp", "cpf:/data/dir", str(out / "exists"))
    assert (out / "exists" / "dir" / "sub" / "b").read_text() == "deep\n"
    (out / "contents").mkdir()
    cli(d, "cp", "cpf:/data/dir/.", str(out / "contents"))
    assert (out / "contents" / "a").read_text() == "hello\n" and not (out / "contents" / "dir").exists()
    # a symlink is copied as a link; -L copies what it points to, under the link's name
    cli(d, "cp", "cpf:/data/flink", str(out / "l1"))
    assert os.readlink(out / "l1") == "/data/f"
    cli(d, "cp", "-L", "cpf:/data/flink", str(out / "l2"))
    assert (out / "l2").read_text() == "file\n" and not (out / "l2").is_symlink()
    cli(d, "cp", "-L", "cpf:/data/flink", str(out / "exists"))
    assert (out / "exists" / "flink").read_text() == "file\n"
    # relative local paths are the client's
    assert d.cli("cp", "cpf:/data/f", "rel-copy", cwd=str(out)).returncode == 0
    assert (out / "rel-copy").read_text() == "file\n"
    # errors, one line, exit 1
    r = cli(d, "cp", "cpf:/data/dir", str(out / "g"), ok=False)
    assert r.returncode == 1 and "cannot copy a directory to a file" in r.stderr
    r = cli(d, "cp", "cpf:/data/f", str(out / "nodir") + "/", ok=False)
    assert r.returncode == 1 and "no such directory" in r.stderr and not (out / "nodir").exists()
    r = cli(d, "cp", "cpf:/data/f", str(out / "missing" / "x"), ok=False)
    assert r.returncode == 1 and "no such directory" in r.stderr
    r = cli(d, "cp", "cpf:/nosuch", str(out), ok=False)
    assert r.returncode == 1 and r.stderr.strip() == "tcr: Could not find the file /nosuch in container cpf"
    r = cli(d, "cp", "nosuchctr:/data/f", str(out), ok=False)
    assert r.returncode == 1 and "no such container: nosuchctr" in r.stderr
    r = cli(d, "cp", "--bogus", "cpf:/data/f", str(out), ok=False)
    assert r.returncode == 125
    r = cli(d, "cp", "cpf:/data/f/", str(out / "t"), ok=False)
    assert r.returncode == 1 and "not a directory" in r.stderr
    r = cli(d, "cp", str(out), str(out / "y"), ok=False)
    assert r.returncode == 1 and "must specify at least one container" in r.stderr


def _tree(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_text("alpha\n")
    os.chmod(src / "a", 0o751)
    (src / "sub" / "b").write_text("beta\n")
    os.chmod(src / "sub", 0o705)
    os.symlink("a", src / "link")
    os.utime(src / "a", (1577934245, 1577934245))
    os.chown(src / "a", 1234, 2345)
    return src


def test_cp_to_running_container(d, tmp_path):
    src = _tree(tmp_path)
    run_d(d, "cpt", setup="busybox mkdir -p /dst/existing && echo old > /dst/file")
    cli(d, "cp", str(src / "a"), "cpt:/dst/newfile")
    assert sh(d, "cpt", "cat /dst/newfile") == "alpha\n"
    assert sh(d, "cpt", "busybox stat -c '%a %u %g %Y' /dst/newfile") == "751 0 0 1577934245\n"
    cli(d, "cp", "-a", str(src / "a"), "cpt:/dst/kept")
    assert sh(d, "cpt", "busybox stat -c '%a %u %g' /dst/kept") == "751 1234 2345\n"
    cli(d, "cp", str(src / "a"), "cpt:/dst/file")  # over an existing file
    assert sh(d, "cpt", "cat /dst/file") == "alpha\n"
    cli(d, "cp", str(src), "cpt:/dst/existing")  # into an existing dir
    assert sh(d, "cpt", "cat /dst/existing/src/sub/b; busybox readlink /dst/existing/src/link") == "beta\na\n"
    assert sh(d, "cpt", "busybox stat -c %a /dst/existing/src/sub") == "705\n"
    cli(d, "cp", str(src), "cpt:/dst/renamed")  # to a new name
    assert sh(d, "cpt", "cat /dst/renamed/a") == "alpha\n"
    cli(d, "cp", str(src) + "/.", "cpt:/dst/existing")  # the contents
    assert sh(d, "cpt", "cat /dst/existing/a") == "alpha\n"
    r = cli(d, "cp", str(src), "cpt:/dst/file", ok=False)
    assert r.returncode == 1 and "cannot copy a directory to a file" in r.stderr
    r = cli(d, "cp", str(src / "a"), "cpt:/nosuchdir/x", ok=False)
    assert r.returncode == 1 and "no such directory: /nosuchdir" in r.stderr
    r = cli(d, "cp", str(src / "a"), "cpt:/dst/newdir/", ok=False)
    assert r.returncode == 1 and "no such directory" in r.stderr
    r = cli(d, "cp", str(tmp_path / "nosuch"), "cpt:/dst", ok=False)
    assert r.returncode == 1 and "no such file or directory" in r.stderr
    assert "newdir" not in sh(d, "cpt", "ls /dst")
    # nothing half-written: no temporary files left behind
    assert ".tcr-cp" not in sh(d, "cpt", "ls -a /dst /dst/existing")


def test_cp_running_container_goes_to_its_mounts(d, tmp_path):
    """A path under a volume or bind mount of a running container is the mount (as docker)."""
    bind = tmp_path / "bind"
    bind.mkdir()
    run_d(d, "cpm", "-v", f"{bind}:/mnt/b", "--tmpfs", "/scratch")
    f = tmp_path / "f"
    f.write_text("to the mount\n")
    cli(d, "cp", str(f), "cpm:/mnt/b/in-bind")
    assert (bind / "in-bind").read_text() == "to the mount\n"
    cli(d, "cp", str(f), "cpm:/scratch/in-tmpfs")
    assert sh(d, "cpm", "cat /scratch/in-tmpfs") == "to the mount\n"
    (bind / "from-host").write_text("host side\n")
    cli(d, "cp", "cpm:/mnt/b/from-host", str(tmp_path / "back"))
    assert (tmp_path / "back").read_text() == "host side\n"


def _mountinfo():
    with open("/proc/self/mountinfo") as f:
        return f.read()


def test_cp_stopped_containers(d, tmp_path):
    src = _tree(tmp_path)
    stopped(d, "cps", "mkdir -p /made && echo inside > /made/x")
    mounts_before = _mountinfo().count("/cps")
    cli(d, "cp", "cps:/made/x", str(tmp_path / "x"))
    assert (tmp_path / "x").read_text() == "inside\n"
    cli(d, "cp", str(src), "cps:/made/")
    cli(d, "create", "--name", "cpc", "--network", "none", "busybox", "true")
    cli(d, "cp", "cpc:/etc/passwd", str(tmp_path / "passwd"))  # never started: the image's files
    assert (tmp_path / "passwd").read_text().startswith("root:")
    cli(d, "cp", str(src / "a"), "cpc:/a")
    # the overlay mounted for the copy is gone again
    cid = inspect(d, "cps")["id"]
    assert cid not in _mountinfo()
    assert mounts_before == 0
    cli(d, "start", "cps")
    wait_for(lambda: inspect(d, "cps")["state"] == "exited", what="cps exits again")
    cli(d, "cp", "cps:/made/src/sub/b", str(tmp_path / "b"))
    assert (tmp_path / "b").read_text() == "beta\n"
    cli(d, "start", "cpc")
    cli(d, "cp", "cpc:/a", str(tmp_path / "a2"))
    assert (tmp_path / "a2").read_text() == "alpha\n"


def test_cp_tar_streams(d, tmp_path):
    run_d(d, "cpz", setup="busybox mkdir -p /d/s && echo one > /d/one && echo two > /d/s/two")
    r = raw(d, "cp", "cpz:/d", "-")
    assert r.returncode == 0, r.stderr
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf:
        names = tf.getnames()
        assert names[0] == "d" and "d/one" in names and "d/s/two" in names
        assert tf.extractfile("d/s/two").read() == b"two\n"
    r = raw(d, "cp", "cpz:/d/.", "-")
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf:
        assert "./one" in tf.getnames()
    # a tar on stdin is extracted as it is into a directory
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("in/x.txt")
        ti.size = 3
        ti.mode = 0o600
        tf.addfile(ti, io.BytesIO(b"xyz"))
    r = raw(d, "cp", "-", "cpz:/d", input=buf.getvalue())
    assert r.returncode == 0, r.stderr
    assert sh(d, "cpz", "cat /d/in/x.txt; busybox stat -c %a /d/in/x.txt") == "xyz600\n"
    r = raw(d, "cp", "-", "cpz:/d/one", input=buf.getvalue())
    assert r.returncode == 1 and b'must be a directory' in r.stderr
    r = raw(d, "cp", "-", "cpz:/d", input=b"this is not a tar archive" * 100)
    assert r.returncode == 1 and b"invalid archive" in r.stderr
    # the tar work was the workers': tcrd itself never loaded tarfile
    held = cli(d, "_modules").stdout.split()
    assert "tcr.commands.cp" in held and "tarfile" not in held
    assert "tcr.containers.cparchive" not in held and "tcr.containers.cpworker" not in held


# ---- a hostile container ------------------------------------------------------------------------

PLANT = ("busybox ln -s /etc /tmp/x && busybox ln -s ../../../../../../.. /tmp/up && "
         "busybox ln -s {secret} /tmp/secret && busybox ln -s ../../../../../../..{secret} /tmp/secret2 && "
         "busybox ln -s {hostdir} /tmp/out && busybox ln -s /etc/tcr-cp-evil /tmp/evil && "
         "busybox ln -s ../../../../../etc/tcr-cp-evil2 /tmp/evil2 && echo ctr > /etc/marker")


@pytest.fixture
def host_bait(tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("HOST SECRET\n")
    hostdir = tmp_path / "host-dir"
    hostdir.mkdir()
    evil = ["/etc/tcr-cp-evil", "/etc/tcr-cp-evil2", "/etc/tcr-cp-through", "/etc/tcr-cp-abs",
            "/etc/tcr-cp-dotdot"]
    for p in evil:
        assert not os.path.lexists(p)
    yield secret, hostdir
    left = [p for p in evil if os.path.lexists(p)]
    for p in left:
        os.unlink(p)
    assert not left, f"tcr cp wrote outside the container: {left}"
    assert os.listdir(hostdir) == [], "tcr cp wrote into a host directory through a planted symlink"
    assert secret.read_text() == "HOST SECRET\n"


@pytest.mark.parametrize("state", ["running", "stopped"])
def test_cp_planted_symlinks_stay_inside(d, tmp_path, host_bait, state):
    secret, hostdir = host_bait
    setup = PLANT.format(secret=secret, hostdir=hostdir)
    name = "cph" + state[0]
    if state == "running":
        run_d(d, name, setup=setup)
    else:
        stopped(d, name, setup)
    out = tmp_path / "out"
    out.mkdir()
    # reading: every planted path resolves inside the container
    cli(d, "cp", f"{name}:/tmp/x/.", str(out / "etc"))
    assert (out / "etc" / "marker").read_text() == "ctr\n"
    with open("/etc/passwd") as f:
        assert (out / "etc" / "passwd").read_text() != f.read()
    cli(d, "cp", f"{name}:/tmp/up/etc/marker", str(out / "m2"))
    assert (out / "m2").read_text() == "ctr\n"
    for path in ("/tmp/up" + str(secret), "/tmp/secret/.", "/tmp/secret2/."):
        r = cli(d, "cp", f"{name}:{path}", str(out / "leak"), ok=False)
        assert r.returncode == 1 and not (out / "leak").exists(), (path, r.stderr)
    r = cli(d, "cp", "-L", f"{name}:/tmp/secret2", str(out / "leak"), ok=False)
    assert r.returncode == 1 and "Could not find the file" in r.stderr and not (out / "leak").exists()
    cli(d, "cp", f"{name}:/tmp/secret", str(out / "link"))  # the link itself, as a link
    assert os.readlink(out / "link") == str(secret)
    # writing: through every planted link, only into the container
    f = tmp_path / "payload"
    f.write_text("payload\n")
    for dest in ("/tmp/out/evil", "/tmp/up" + str(hostdir) + "/evil", "/tmp/out"):
        cli(d, "cp", str(f), f"{name}:{dest}", ok=False)
    cli(d, "cp", str(f), f"{name}:/tmp/evil")  # a link to /etc/tcr-cp-evil: the container's
    cli(d, "cp", str(f), f"{name}:/tmp/evil2")
    cli(d, "cp", str(f), f"{name}:/tmp/x/tcr-cp-through")
    cli(d, "cp", str(f), f"{name}:/tmp/up/etc/tcr-cp-abs")
    if state == "stopped":
        cli(d, "start", name)
        wait_for(lambda: inspect(d, name)["state"] == "exited", what=f"{name} exits")
    for p in ("/etc/tcr-cp-evil", "/etc/tcr-cp-evil2", "/etc/tcr-cp-through", "/etc/tcr-cp-abs"):
        cli(d, "cp", f"{name}:{p}", str(out / "check"))
        assert (out / "check").read_text() == "payload\n"
        (out / "check").unlink()
    # (host_bait checks that nothing reached the host)


def _tar(*members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for m in members:
            ti = tarfile.TarInfo(m["name"])
            ti.type = m.get("type", tarfile.REGTYPE)
            ti.linkname = m.get("link", "")
            data = m.get("data", b"")
            ti.size = len(data) if ti.type == tarfile.REGTYPE else 0
            ti.mode = 0o644
            ti.devmajor, ti.devminor = m.get("dev", (0, 0))
            tf.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    return buf.getvalue()


@pytest.mark.parametrize("members,why", [
    ([{"name": "/etc/tcr-cp-abs", "data": b"x"}], "absolute"),
    ([{"name": "../../../../etc/tcr-cp-dotdot", "data": b"x"}], ".."),
    ([{"name": "l", "type": tarfile.SYMTYPE, "link": "/etc"},
      {"name": "l/tcr-cp-through", "data": b"x"}], "symlink the archive created"),
    ([{"name": "l", "type": tarfile.SYMTYPE, "link": "../../../../etc"},
      {"name": "l/tcr-cp-through", "data": b"x"}], "symlink the archive created"),
    ([{"name": "h", "type": tarfile.LNKTYPE, "link": "/etc/passwd"}], "absolute"),
    ([{"name": "h", "type": tarfile.LNKTYPE, "link": "../../etc/passwd"}], ".."),
    ([{"name": "h", "type": tarfile.LNKTYPE, "link": "etc/passwd"}], "did not contain"),
])
def test_cp_hostile_archive_is_refused(d, tmp_path, host_bait, members, why):
    run_d(d, "cpa")
    r = raw(d, "cp", "-", "cpa:/tmp", input=_tar(*members))
    assert r.returncode == 1 and why.encode() in r.stderr, r.stderr
    assert r.stderr[-1:] == b"\n" and r.stderr.count(b"\n") == 1
    assert sh(d, "cpa", "ls /etc | grep tcr-cp || true") == ""
    assert sh(d, "cpa", "cat /etc/passwd").startswith("root:")
    r = raw(d, "cp", "-", "cpa:/", input=_tar({"name": "h", "type": tarfile.LNKTYPE, "link": "etc/passwd"}))
    assert r.returncode == 1


def test_cp_device_nodes_from_a_container_are_not_made_on_the_host(d, tmp_path):
    run_d(d, "cpdev", setup="busybox mkdir /tmp/dev && busybox mknod /tmp/dev/disk b 7 0 && "
          "busybox mknod /tmp/dev/fifo p && echo ok > /tmp/dev/file")
    out = tmp_path / "devs"
    r = cli(d, "cp", "cpdev:/tmp/dev", str(out))
    assert "skipped 1 device node" in r.stderr
    assert sorted(os.listdir(out)) == ["fifo", "file"] and stat.S_ISFIFO((out / "fifo").lstat().st_mode)
    # a device node sent into the container is made there (its root may make them itself)
    # set-id bits from a container reach the host only with -a
    sh(d, "cpdev", "cp /bin/busybox /tmp/suid && busybox chmod 6755 /tmp/suid")
    cli(d, "cp", "cpdev:/tmp/suid", str(tmp_path / "plain"))
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o755
    cli(d, "cp", "-a", "cpdev:/tmp/suid", str(tmp_path / "kept"))
    assert stat.S_IMODE((tmp_path / "kept").stat().st_mode) == 0o6755
    dev = _tar({"name": "null2", "type": tarfile.CHRTYPE, "dev": (1, 3)})
    r = raw(d, "cp", "-", "cpdev:/tmp", input=dev)
    assert r.returncode == 0, r.stderr
    assert sh(d, "cpdev", "busybox stat -c '%F %t:%T' /tmp/null2") == "character special file 1:3\n"


def _rss_kb(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(field)


def _worker_of(d):
    """A forked worker of tcrd: a child with tcrd's own command line (containers have theirs)."""
    with open(f"/proc/{d.pid}/cmdline", "rb") as f:
        mine = f.read()
    try:
        with open(f"/proc/{d.pid}/task/{d.pid}/children") as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        return None
    for k in kids:
        try:
            with open(f"/proc/{k}/cmdline", "rb") as f:
                if f.read() == mine:
                    return k
        except OSError:
            continue
    return None


def test_cp_big_file_streams_with_bounded_daemon_memory(d, tmp_path):
    """200 MB each way; tcrd's peak RSS (VmHWM) grows by a few MB at most: the data is streamed,
    never held (the tar work is the worker's, a separate process)."""
    import hashlib

    big = tmp_path / "big"
    h = hashlib.sha256()
    with open(big, "wb") as f:
        for i in range(200):
            block = hashlib.sha256(str(i).encode()).digest() * (1 << 15)  # 1 MiB, not all zeros
            h.update(block)
            f.write(block)
    run_d(d, "cpbig")
    cold = _rss_kb(d.pid)
    (tmp_path / "small").write_text("warm-up\n")  # the first cp loads its modules (measured apart)
    cli(d, "cp", str(tmp_path / "small"), "cpbig:/tmp/small")
    cli(d, "cp", "cpbig:/tmp/small", str(tmp_path / "small2"))
    warm = _rss_kb(d.pid)
    with open(f"/proc/{d.pid}/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS now
    base = _rss_kb(d.pid, "VmHWM")
    t0 = time.monotonic()
    cli(d, "cp", str(big), "cpbig:/tmp/big")
    t1 = time.monotonic()
    assert sh(d, "cpbig", "busybox sha256sum /tmp/big").split()[0] == h.hexdigest()
    t2 = time.monotonic()
    cli(d, "cp", "cpbig:/tmp/big", str(tmp_path / "back"))
    t3 = time.monotonic()
    with open(tmp_path / "back", "rb") as f:
        h2 = hashlib.sha256()
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h2.update(chunk)
    assert h2.hexdigest() == h.hexdigest()
    r = raw(d, "cp", "cpbig:/tmp/big", "-")
    assert r.returncode == 0 and len(r.stdout) > 200 << 20
    # a client that stops reading: tcrd stops reading the worker (back-pressure), holds ~1 MiB
    p = subprocess.Popen(d.cli_argv("cp", "cpbig:/tmp/big", "-"), env=d.cli_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        first = p.stdout.read(1 << 20)
        time.sleep(2)  # (not a timed assertion: only time for tcrd to fill what it may)
        stalled = _rss_kb(d.pid, "VmHWM")
        n = len(first) + sum(len(c) for c in iter(lambda: p.stdout.read(1 << 20), b""))
    finally:
        p.stdout.close()
        p.wait(60)
    assert p.returncode == 0 and n > 200 << 20
    assert stalled - base < 16 * 1024
    # a worker that stops reading (a slow disk): tcrd stops reading the client, holds ~256 KiB
    p = subprocess.Popen(d.cli_argv("cp", str(big), "cpbig:/tmp/big2"), env=d.cli_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: _worker_of(d) is not None, what="the cp worker")
        w = _worker_of(d)
        os.kill(w, signal.SIGSTOP)
        try:
            time.sleep(2)  # (no timed assertion: time for the client to fill what tcrd may take)
            stalled_in = _rss_kb(d.pid, "VmHWM")
        finally:
            os.kill(w, signal.SIGCONT)
        assert p.wait(120) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(30)
    assert stalled_in - base < 16 * 1024
    assert sh(d, "cpbig", "busybox sha256sum /tmp/big2").split()[0] == h.hexdigest()
    peak = _rss_kb(d.pid, "VmHWM")
    growth = peak - base
    print(f"tcrd RSS {cold} kB, after a first small cp {warm} kB; peak during 3 x 200 MB copies "
          f"{peak} kB (+{growth} kB); "
          f"in {t1 - t0:.1f} s, out {t3 - t2:.1f} s")
    assert growth < 16 * 1024, f"tcrd grew by {growth} kB while copying 200 MB"


def test_cp_stopped_container_sees_its_volumes(d, tmp_path):
    bind = tmp_path / "bind"
    bind.mkdir()
    robind = tmp_path / "robind"
    robind.mkdir()
    (robind / "keep").write_text("read-only\n")
    cli(d, "run", "-d", "--name", "cpv", "--network", "none", "-v", "cpvol:/vol", "-v", f"{bind}:/b",
        "-v", f"{robind}:/ro:ro", "busybox", "sh", "-c", "echo in-volume > /vol/v && echo in-bind > /b/x")
    wait_for(lambda: inspect(d, "cpv")["state"] == "exited", what="cpv exits")
    cli(d, "cp", "cpv:/vol/v", str(tmp_path / "v"))
    assert (tmp_path / "v").read_text() == "in-volume\n"
    cli(d, "cp", "cpv:/b/x", str(tmp_path / "x"))
    assert (tmp_path / "x").read_text() == "in-bind\n"
    f = tmp_path / "f"
    f.write_text("new\n")
    cli(d, "cp", str(f), "cpv:/b/new")
    assert (bind / "new").read_text() == "new\n"
    cli(d, "cp", str(f), "cpv:/vol/new")
    r = cli(d, "cp", str(f), "cpv:/ro/new", ok=False)
    assert r.returncode == 1 and "Read-only file system" in r.stderr and not (robind / "new").exists()
    cli(d, "rm", "cpv")
    back = cli(d, "run", "--rm", "--network", "none", "-v", "cpvol:/vol", "busybox", "cat", "/vol/new")
    assert back.stdout == "new\n"
    cli(d, "volume", "rm", "cpvol")


def test_cp_over_ssh_copies_to_and_from_the_client_machine(d, sshd, tmp_path):
    """`tcr -H ssh://board cp` with a local path: the local side is the client's machine (docker's
    client does the same); relative paths are the client's, not the remote login directory's."""
    from test.root.test_ssh_remote import local_tcr

    run_d(d, "cpssh", setup="busybox mkdir -p /s && echo remote > /s/r")
    assert not os.path.exists("/root/cpssh-got")
    r = local_tcr(sshd, "cp", "cpssh:/s", "cpssh-got", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "cpssh-got" / "r").read_text() == "remote\n" and not os.path.exists("/root/cpssh-got")
    (tmp_path / "up").write_text("up\n")
    r = local_tcr(sshd, "cp", "up", "cpssh:/s/uploaded", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert sh(d, "cpssh", "cat /s/uploaded") == "up\n"
    r = local_tcr(sshd, "cp", "cpssh:/nosuch", "x", cwd=str(tmp_path))
    assert r.returncode == 1 and "Could not find the file /nosuch in container cpssh" in r.stderr
    r = local_tcr(sshd, "cp", "nosuch-file", "cpssh:/s", cwd=str(tmp_path))
    assert r.returncode == 1 and r.stderr.strip().endswith("no such file or directory")
    assert r.stderr.count("\n") == 1


def test_cp_client_killed_mid_stream_leaves_nothing_half_written(d):
    run_d(d, "cpkill")
    ti = tarfile.TarInfo("partial")
    ti.size = 10 << 20
    header = ti.tobuf(tarfile.PAX_FORMAT)
    p = subprocess.Popen(d.cli_argv("cp", "-", "cpkill:/tmp"), env=d.cli_env(), stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        p.stdin.write(header + b"x" * (1 << 20))
        p.stdin.flush()
        wait_for(lambda: ".tcr-cp" in sh(d, "cpkill", "ls -a /tmp"), what="the copy's temporary file")
    finally:
        p.kill()
        p.wait(30)
        p.stdin.close()
    wait_for(lambda: ".tcr-cp" not in sh(d, "cpkill", "ls -a /tmp"), what="the temporary file removed")
    assert "partial" not in sh(d, "cpkill", "ls -a /tmp")


def test_cp_says_what_it_copied_on_a_terminal_only(d, tmp_path):
    import pty

    run_d(d, "cptty", setup="echo x > /tmp/x")
    master, slave = pty.openpty()
    try:
        r = subprocess.run(d.cli_argv("cp", "cptty:/tmp/x", str(tmp_path / "x")), env=d.cli_env(),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, timeout=60)
        os.close(slave)
        slave = -1
        said = os.read(master, 4096).decode()
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert r.returncode == 0 and said.strip() == f"Successfully copied 10.24kB to {tmp_path / 'x'}"
    r = cli(d, "cp", "cptty:/tmp/x", str(tmp_path / "y"))  # not a terminal: quiet
    assert r.stderr == "" and r.stdout == ""
    r = cli(d, "cp", "-q", str(tmp_path / "y"), "cptty:/tmp/y")
    assert r.stderr == ""


def test_cp_paused_container(d, tmp_path):
    run_d(d, "cpp", setup="echo paused > /tmp/p")
    cli(d, "pause", "cpp")
    try:
        cli(d, "cp", "cpp:/tmp/p", str(tmp_path / "p"))
        assert (tmp_path / "p").read_text() == "paused\n"
        cli(d, "cp", str(tmp_path / "p"), "cpp:/tmp/q")
    finally:
        cli(d, "unpause", "cpp")
    assert sh(d, "cpp", "cat /tmp/q") == "paused\n"


def test_cp_full_filesystem_in_the_container_is_one_line_and_leaves_nothing(d, tmp_path):
    run_d(d, "cpfull", "--tmpfs", "/small:size=64k", setup="echo old > /small/keep")
    big = tmp_path / "big"
    big.write_bytes(b"z" * (1 << 20))
    r = cli(d, "cp", str(big), "cpfull:/small/big", ok=False)
    assert r.returncode == 1 and "No space left on device" in r.stderr and r.stderr.count("\n") == 1
    assert sh(d, "cpfull", "ls -a /small").split() == [".", "..", "keep"]
    big.write_bytes(b"z" * 100)  # there is room for a small one, over the old file
    cli(d, "cp", str(big), "cpfull:/small/keep")
    assert sh(d, "cpfull", "busybox wc -c < /small/keep").strip() == "100"



def test_cp_into_a_c_client_interactive_run(d, tmp_path):
    """A C client's foreground run: the client execs crun itself (no pid file); cp finds the
    container's init through `crun state`."""
    import sys

    script = (
        "import json, os, socket\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
        f"s.connect({d.socket!r})\n"
        "req = {'id': 1, 'method': 'run', 'params': {'args': ['--name', 'cpc1', '--network', 'none', "
        "'busybox', 'sh', '-c', 'echo from-c > /tmp/c; touch /tmp/.ready; exec sleep 60'], "
        "'pwd': '/', 'pid': os.getpid()}}\n"
        "s.send(json.dumps(req).encode())\n"
        "args = json.loads(s.recv(1 << 20))['result']['execArgs']\n"
        "s.close()\n"
        "os.execvp(args[0], args)\n")
    p = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: d.cli("exec", "cpc1", "test", "-e", "/tmp/.ready").returncode == 0, what="cpc1")
        cli(d, "cp", "cpc1:/tmp/c", str(tmp_path / "c"))
        assert (tmp_path / "c").read_text() == "from-c\n"
    finally:
        p.kill()
        p.wait(30)
    wait_for(lambda: "cpc1" not in d.cli("ps").stdout, what="cpc1 cleaned up")
