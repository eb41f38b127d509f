"""VolumeManager without a daemon: records, create/rm/prune rules, seeding, crash adoption; and the
port-holding sockets (loopback only)."""

import errno
import os
import socket

import pytest

from tcr.common.errors import InUse, InvalidArgument
from tcr.daemon.state import StateStore
from tcr.kernel import portsock
from tcr.volumes.manager import VolumeManager, VolumeNotFound
from tcr.volumes.record import KIND, VolumeRecord


def make(tmp_path, users=()):
    root = str(tmp_path / "state")
    return VolumeManager(root, StateStore(root), lambda: list(users))


def test_record_round_trip():
    r = VolumeRecord("v", 1.5, (("a", "1"),), True, True)
    assert VolumeRecord.from_dict(r.to_dict()) == r
    with pytest.raises(ValueError):
        VolumeRecord.from_dict({"name": "v", "labels": "x"})


def test_create_is_idempotent_and_persisted(tmp_path):
    vm = make(tmp_path)
    a = vm.create("data", (("k", "v"),))
    assert vm.create("data") == a and os.path.isdir(vm.data_dir("data"))
    anon = vm.create(anonymous=True)
    assert len(anon.name) == 64 and anon.anonymous
    again = make(tmp_path)
    assert [r.name for r in again.records()] == sorted(["data", anon.name]) and again.get("data").labels == (
        ("k", "v"),
    )
    for bad in ("../escape", "data.json", "x.corrupt"):
        with pytest.raises(InvalidArgument):
            vm.create(bad)
    with pytest.raises(VolumeNotFound):
        vm.get("nope")


def test_rm_refuses_a_used_volume_and_prune_rules(tmp_path):
    users = [("web", "used")]
    vm = make(tmp_path, users)
    for n in ("used", "named"):
        vm.create(n)
    anon = vm.create(anonymous=True).name
    with pytest.raises(InUse, match="web"):
        vm.remove("used")
    assert vm.prune() == [anon]
    assert vm.prune(all_unused=True) == ["named"]
    assert [r.name for r in vm.records()] == ["used"]
    users.clear()
    vm.remove("used")
    assert os.listdir(vm.dir) == []


def test_seed_once_from_the_image(tmp_path):
    img = tmp_path / "rootfs"
    (img / "srv" / "sub").mkdir(parents=True)
    (img / "srv" / "sub" / "f").write_text("image")
    os.symlink("srv", img / "link")
    vm = make(tmp_path)
    vm.create("v")
    vm.seed("v", str(img), "/link")  # followed inside the image
    assert (tmp_path / "state" / KIND / "v" / "_data" / "sub" / "f").read_text() == "image"
    (img / "srv" / "sub" / "f").write_text("newer image")
    os.unlink(os.path.join(vm.data_dir("v"), "sub", "f"))
    vm.seed("v", str(img), "/srv")  # seeded already: never again, even if emptied
    assert not os.path.exists(os.path.join(vm.data_dir("v"), "sub", "f"))
    vm.create("w")
    vm.seed("w", str(img), "/missing")  # nothing there: stays empty, marked seeded
    assert os.listdir(vm.data_dir("w")) == [] and vm.get("w").seeded


def test_a_seed_cut_short_leaves_the_volume_empty_and_unseeded(tmp_path, monkeypatch):
    from tcr.common import run as runmod
    from tcr.common.errors import CommandError

    img = tmp_path / "rootfs"
    (img / "srv").mkdir(parents=True)
    (img / "srv" / "f").write_text("image")
    vm = make(tmp_path)
    vm.create("v")
    real = runmod.run

    def enospc(argv, **kw):  # half a copy, then "No space left on device"
        dst = argv[-1]
        with open(os.path.join(dst, "half"), "w") as f:
            f.write("x")
        raise CommandError(argv, 1, "cp: error writing 'half': No space left on device")

    monkeypatch.setattr(runmod, "run", enospc)
    with pytest.raises(CommandError):
        vm.seed("v", str(img), "/srv")
    assert os.listdir(vm.data_dir("v")) == [] and not vm.get("v").seeded
    assert sorted(os.listdir(os.path.dirname(vm.data_dir("v")))) == ["_data"]
    monkeypatch.setattr(runmod, "run", real)
    vm.seed("v", str(img), "/srv")  # the next start seeds it fully
    assert os.listdir(vm.data_dir("v")) == ["f"] and vm.get("v").seeded


def test_a_directory_without_record_is_adopted(tmp_path):
    vm = make(tmp_path)
    os.makedirs(os.path.join(vm.dir, "orphan", "_data"))
    assert "orphan" in make(tmp_path).vols  # data is never thrown away by a rollback


# ---- port holding -------------------------------------------------------------------------------


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_held_port_cannot_be_bound_by_others(proto):
    s = portsock.hold("127.0.0.1", 0, proto)
    port = s.getsockname()[1]
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    try:
        other = socket.socket(socket.AF_INET, kind)
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError) as exc:
            other.bind(("127.0.0.1", port))
        assert exc.value.errno == errno.EADDRINUSE
        other.close()
        if proto == "tcp":  # bound, not listening: a stray connection is refused, not queued
            c = socket.socket()
            with pytest.raises(ConnectionRefusedError):
                c.connect(("127.0.0.1", port))
            c.close()
        else:  # every datagram is dropped by the filter: nothing queues in tcrd
            c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            c.sendto(b"x" * 100, ("127.0.0.1", port))
            c.close()
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.recv(200)
    finally:
        s.close()
    again = socket.socket(socket.AF_INET, kind)
    again.bind(("127.0.0.1", port))
    again.close()


def test_hold_a_foreign_address_fails():
    with pytest.raises(OSError) as exc:
        portsock.hold("192.0.2.7", 0, "tcp")
    assert exc.value.errno == errno.EADDRNOTAVAIL


def test_held_ports_make_room_under_the_open_file_limit(tmp_path):
    """Each held port is an open file of tcrd: the soft limit is raised up to the hard one, and
    beyond that the publish is refused in one line (run in a child: rlimits are per process)."""
    import subprocess
    import sys

    code = f"""
import resource, types
from tcr.common.errors import InvalidArgument
from tcr.daemon.state import StateStore
from tcr.network.manager import NetworkManager
from tcr.network.published import _fd_room
resource.setrlimit(resource.RLIMIT_NOFILE, (300, 400))
d = types.SimpleNamespace(root={str(tmp_path)!r}, run_dir={str(tmp_path / "run")!r}, loop=None,
                          store=StateStore({str(tmp_path)!r}))
m = NetworkManager(d)
_fd_room(m, 60)
print(resource.getrlimit(resource.RLIMIT_NOFILE))
try:
    _fd_room(m, 200)
except InvalidArgument as e:
    print(e.message)
"""
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "..", "target"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.stdout.splitlines() == [
        "(400, 400)",
        "cannot publish 200 more port(s): tcrd holds 0 already and its open-file limit is 400",
    ], r.stderr
