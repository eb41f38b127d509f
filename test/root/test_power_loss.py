"""Power-loss safety of the state files.

1. Every write is atomic and durable: write_atomic() writes a temp file in the same directory,
   fsyncs it, renames it over the target and fsyncs the directory, in that order (checked by
   tracing the calls), and a writer SIGKILLed at random moments always leaves the old or the new
   record, never a torn one; its leftover temp files are swept at the next load.
2. Damaged records of every kind (images, networks, containers) - empty, truncated, zero-filled
   (what a power cut on a delayed-allocation filesystem leaves), random bytes, wrong JSON shape,
   wrong kind, unusable data - are reported by tcrd at start-up in one log line naming the file,
   moved aside (<file>.corrupt) where they cannot be read, and the daemon keeps serving every
   healthy record.
"""

import json
import os
import random
import signal
import subprocess
import sys

import pytest

from test.fixtures.daemon import loops_under, mounts_under

TARGET = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "target")


# ---- 1. atomic and durable -------------------------------------------------------------------


def test_write_atomic_fsyncs_file_then_renames_then_fsyncs_dir(tmp_path, monkeypatch):
    from tcr.common import atomic

    calls = []
    real_fsync, real_rename, real_open = os.fsync, os.rename, os.open
    fds = {}

    def t_open(path, flags, mode=0o777, *a, **kw):
        fd = real_open(path, flags, mode, *a, **kw)
        fds[fd] = str(path)
        return fd

    def t_fsync(fd):
        calls.append(("fsync", fds.get(fd, "?")))
        return real_fsync(fd)

    def t_rename(a, b):
        calls.append(("rename", str(a), str(b)))
        return real_rename(a, b)

    monkeypatch.setattr(os, "open", t_open)
    monkeypatch.setattr(os, "fsync", t_fsync)
    monkeypatch.setattr(os, "rename", t_rename)
    target = tmp_path / "rec.json"
    target.write_text("old")
    atomic.write_atomic(str(target), "new")
    monkeypatch.undo()
    assert target.read_text() == "new"
    assert len(calls) == 3, calls
    (k1, f1), (k2, src, dst), (k3, d3) = calls
    assert k1 == "fsync" and os.path.dirname(f1) == str(tmp_path) and f1 != str(target)  # the temp file
    assert k2 == "rename" and src == f1 and dst == str(target)
    assert k3 == "fsync" and d3 == str(tmp_path)  # the directory entry is durable too
    assert os.listdir(tmp_path) == ["rec.json"]


WRITER = r"""
import sys
from tcr.daemon.state import StateStore
s = StateStore(sys.argv[1])
i = 0
pad = "x" * int(sys.argv[2])
while True:
    s.save("images", "rec", {"i": i, "pad": pad, "tail": i})
    if i == 0:
        print("ready", flush=True)
    i += 1
"""


def test_sigkill_during_writes_leaves_old_or_new_record(tmp_path):
    from tcr.daemon.state import StateStore

    rng = random.Random(7)
    env = dict(os.environ, PYTHONPATH=TARGET)
    seen = set()
    for round_ in range(12):
        root = tmp_path / f"r{round_}"
        p = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(rng.choice((10, 5000, 200000)))],
                             env=env, stdout=subprocess.PIPE, text=True)
        try:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
            # Let it write for a random while, then cut it off mid-flight (test pacing, not an assertion).
            try:
                p.wait(timeout=rng.uniform(0.0, 0.15))
            except subprocess.TimeoutExpired:
                pass
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()
        store = StateStore(str(root))
        records, errors = store.load_all("images")
        assert errors == [], errors
        d = records["rec"]
        assert d["i"] == d["tail"] and isinstance(d["i"], int)
        seen.add(d["i"] > 0)
        leftovers = [n for n in os.listdir(root / "images") if n != "rec.json"]
        assert leftovers == [], f"temp files not swept: {leftovers}"
    assert True in seen  # the writer really got going in some rounds


# ---- 2. damaged records, per kind ------------------------------------------------------------

DAMAGE = {
    "empty": lambda raw: b"",
    "truncated": lambda raw: raw[: len(raw) // 2],
    "zero-filled": lambda raw: b"\0" * len(raw),
    "random-bytes": lambda raw: bytes(random.Random(len(raw)).randrange(256) for _ in range(len(raw))),
    "json-array": lambda raw: b"[1, 2, 3]\n",
    "no-version": lambda raw: json.dumps({"kind": "x", "data": {}}).encode(),
    "data-not-object": lambda raw: json.dumps({"version": 1, "kind": _kind_of(raw), "data": [1]}).encode(),
    "wrong-kind": lambda raw: json.dumps({"version": 1, "kind": "elsewhere",
                                          "data": json.loads(raw)["data"]}).encode(),
}
# Parse fine as state files but the record inside is unusable (the manager rejects it).
def _unusable(raw: bytes) -> bytes:
    return json.dumps({"version": 1, "kind": _kind_of(raw), "data": {"id": 5, "junk": True}}).encode()


def _kind_of(raw: bytes) -> str:
    return json.loads(raw)["kind"]


def _damage(path: str, how: str) -> None:
    with open(path, "rb") as f:
        raw = f.read()
    new = _unusable(raw) if how == "unusable" else DAMAGE[how](raw)
    with open(path, "wb") as f:
        f.write(new)


def _sqfs(tmp, label):
    from test.root.test_bad_images import bundle, good_info, sqfs

    digest = "sha256:" + __import__("hashlib").sha256(label.encode()).hexdigest()
    return sqfs(tmp, label, bundle(good_info(image={"digest": digest, "repository": f"library/{label}"})))


@pytest.mark.root
def test_damaged_image_records_are_reported_and_the_rest_served(tcrd, tmp_path):
    variants = list(DAMAGE) + ["unusable"]
    ids = {}
    for label in ["healthy"] + variants:
        r = tcrd.cli("image", "load", "-q", _sqfs(tmp_path, label))
        assert r.returncode == 0, r.stderr
        ids[label] = r.stdout.strip()
    # A write cut off before its rename leaves a temp file beside the record.
    stray = os.path.join(tcrd.root, "images", f".{ids['healthy']}.json.tmp4242")
    tcrd.kill9()
    with open(stray, "wb") as f:
        f.write(b'{"version": 1, "ki')
    for label in variants:
        _damage(os.path.join(tcrd.root, "images", ids[label] + ".json"), label)
    tcrd.start()
    log = tcrd.log()
    r = tcrd.cli("image", "ls", "-q")
    assert r.returncode == 0 and r.stdout.split() == [ids["healthy"]], (r.stdout, log)
    r = tcrd.cli("image", "inspect", ids["healthy"])
    assert r.returncode == 0 and json.loads(r.stdout)[0]["mounted"] is True, r.stdout
    for label in variants:
        path = os.path.join(tcrd.root, "images", ids[label] + ".json")
        lines = [ln for ln in log.splitlines() if "WARNING" in ln and (
            path in ln or f"image record {ids[label]}" in ln)]
        assert lines, f"{label}: damaged {path} not reported:\n{log}"
        assert os.path.exists(path + ".corrupt") and not os.path.exists(path), label
    assert not os.path.exists(stray)
    # What the damaged records described is rolled back (their mounts and loop devices are gone).
    healthy_mnt = os.path.join(tcrd.root, "images", ids["healthy"], "mnt")
    assert mounts_under(tcrd.base) == [healthy_mnt]
    assert len(loops_under(tcrd.base)) == 1
    # And the daemon goes on serving: a new load works.
    r = tcrd.cli("image", "load", "-q", _sqfs(tmp_path, "after"))
    assert r.returncode == 0, r.stderr


@pytest.mark.root
def test_newer_version_image_record_is_left_alone(tcrd, tmp_path):
    """A record written by a newer tcr is not damage: reported, left in place, its image untouched."""
    r = tcrd.cli("image", "load", "-q", _sqfs(tmp_path, "future"))
    assert r.returncode == 0, r.stderr
    iid = r.stdout.strip()
    path = os.path.join(tcrd.root, "images", iid + ".json")
    tcrd.kill9()
    with open(path) as f:
        doc = json.load(f)
    doc["version"] = 99
    with open(path, "w") as f:
        json.dump(doc, f)
    tcrd.start()
    assert any(path in ln and "newer" in ln for ln in tcrd.log().splitlines()), tcrd.log()
    assert os.path.exists(path)
    with open(path) as f:
        assert json.load(f)["version"] == 99
    # Its stored file must survive for the newer tcr that wrote the record.
    assert os.path.exists(os.path.join(tcrd.root, "images", iid, "image.sqfs")), \
        "the image file of a newer-version record was deleted as an orphan"
    # Tidy up by hand (this tcr does not manage the image): unmount, drop the record.
    tcrd.kill9()
    from tcr.kernel import mount as kmount

    for m in mounts_under(tcrd.base):
        kmount.umount_quiet(m, kmount.UMOUNT_NOFOLLOW | kmount.MNT_DETACH)
    os.unlink(path)


def _network_cleanup(tcrd, names):
    for n in names:
        tcrd.cli("network", "rm", n)


@pytest.mark.root
def test_damaged_network_records_are_reported_and_the_rest_served(tcrd):
    from test.root.test_crash_points import kernel_leaks

    variants = ["empty", "truncated", "zero-filled", "random-bytes", "wrong-kind", "unusable"]
    suffix = f"{os.getpid() % 10000}"
    names = {label: f"pl{i}-{suffix}" for i, label in enumerate(["healthy"] + variants)}
    try:
        for i, name in enumerate(names.values()):
            r = tcrd.cli("network", "create", "--subnet", f"10.197.{i}.0/24", name)
            assert r.returncode == 0, r.stderr
        tcrd.kill9()
        for label in variants:
            _damage(os.path.join(tcrd.root, "networks", names[label] + ".json"), label)
        tcrd.start()
        log = tcrd.log()
        r = tcrd.cli("network", "ls", "-q")
        assert r.returncode == 0, r.stderr
        assert names["healthy"] in r.stdout.split()
        for label in variants:
            assert names[label] not in r.stdout.split(), label
            assert any(names[label] in ln and "WARNING" in ln for ln in log.splitlines()), \
                f"{label}: not reported\n{log}"
        r = tcrd.cli("network", "inspect", names["healthy"])
        assert r.returncode == 0, r.stderr
        # Kernel objects of the lost networks (bridges) must not outlive their records.
        leaks = kernel_leaks(tcrd, networks={names["healthy"]})
        assert leaks == [], leaks
    finally:
        _network_cleanup(tcrd, list(names.values()))
        from test.root.test_crash_points import force_clean_network

        force_clean_network(tcrd)


@pytest.mark.root
def test_damaged_container_records_are_reported_and_the_rest_served(tcrd, tmp_path):
    from test.fixtures.images import c_tool_sqfs
    from test.root.test_crash_points import force_clean_network, kernel_leaks

    r = tcrd.cli("image", "load", "-q", c_tool_sqfs(tmp_path))
    assert r.returncode == 0, r.stderr
    iid = r.stdout.strip()
    variants = ["empty", "truncated", "zero-filled", "random-bytes", "wrong-kind", "unusable"]
    ids = {}
    try:
        r = tcrd.cli("run", "-d", "--name", "pl-healthy", "busybox", "sleep", "600")
        assert r.returncode == 0, r.stderr
        ids["healthy"] = r.stdout.strip().splitlines()[0]
        r = tcrd.cli("create", "--name", "pl-created", "busybox", "true")
        assert r.returncode == 0, r.stderr
        ids["created"] = r.stdout.strip().splitlines()[0]
        for label in variants:
            r = tcrd.cli("run", "-d", "--name", f"pl-{label}", "busybox", "sleep", "600")
            assert r.returncode == 0, r.stderr
            ids[label] = r.stdout.strip().splitlines()[0]
        full = {label: _full_id(tcrd, cid) for label, cid in ids.items()}
        tcrd.kill9()  # the containers keep running without their daemon
        for label in variants:
            _damage(os.path.join(tcrd.root, "containers", full[label] + ".json"), label)
        tcrd.start()
        log = tcrd.log()
        r = tcrd.cli("ps", "-a", "--format", "json")
        assert r.returncode == 0, r.stderr
        names = {c.get("Names") or c.get("Name") or c.get("name") for c in json.loads(r.stdout)}
        assert names == {"pl-healthy", "pl-created"}, (names, log)
        for label in variants:
            assert any(full[label] in ln and ("WARNING" in ln or "ERROR" in ln) for ln in log.splitlines()), \
                f"{label}: damaged container record not reported in the log\n{log}"
        # The healthy one was re-adopted and still works; the created one still starts.
        r = tcrd.cli("exec", "pl-healthy", "true")
        assert r.returncode == 0, r.stderr
        # The damaged ones' processes, mounts, netns and leases are gone (rolled back).
        leaks = kernel_leaks(tcrd, networks=["tcr_default"], containers=[full["healthy"]], images=[iid])
        assert leaks == [], leaks
    finally:
        for n in ["pl-healthy", "pl-created"] + [f"pl-{v}" for v in variants]:
            tcrd.cli("rm", "-f", n)
        for n in tcrd.cli("network", "ls", "-q").stdout.split():
            tcrd.cli("network", "rm", n)
        force_clean_network(tcrd)


def _full_id(tcrd, ref: str) -> str:
    r = tcrd.cli("inspect", ref)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    d = d[0] if isinstance(d, list) else d
    return d.get("Id") or d.get("id")


NO_UJSON = r"""
import os, sys, tempfile
sys.modules["ujson"] = None  # a board without the optional ujson: tcr.common.jsonc uses stdlib json
from tcr.common.errors import TcrError
from tcr.daemon.state import StateStore
from tcr.formats.image_info import ImageInfo
deep = b"[" * 100000 + b"]" * 100000
what = sys.argv[1]
if what == "state":
    d = tempfile.mkdtemp()
    os.makedirs(os.path.join(d, "images"))
    with open(os.path.join(d, "images", "deep.json"), "wb") as f:
        f.write(deep)
    records, errors = StateStore(d).load_all("images")
    print("OK" if records == {} and len(errors) == 1 and "deep.json" in errors[0] else f"BAD {errors}")
else:
    try:
        ImageInfo.from_json(b'{"version":1,"x":' + deep[:30000] + b"}")
        print("BAD accepted")
    except TcrError as exc:
        print("OK" if "image-info.json" in str(exc) else f"BAD {exc}")
"""


@pytest.mark.parametrize("what", ["state", "image-info"])
def test_deeply_nested_json_without_ujson_is_reported_as_damage(what):
    r = subprocess.run([sys.executable, "-c", NO_UJSON, what], env=dict(os.environ, PYTHONPATH=TARGET),
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "OK", (r.stdout, r.stderr[-500:])
