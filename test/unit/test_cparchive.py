"""tcr cp's archives (tcr.containers.cparchive): a round trip, and hostile archives that must not
write outside the destination (no root needed: the extractor's own checks, without a chroot)."""

import io
import os
import stat
import tarfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcr.containers import cparchive
from tcr.containers.cpplan import CpError, Plan


def _tar(*members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, extra in members:
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.mode = 0o644
            if kind == tarfile.REGTYPE:
                ti.size = len(extra)
                tf.addfile(ti, io.BytesIO(extra))
            else:
                ti.linkname = extra.decode() if extra else ""
                tf.addfile(ti)
    return buf.getvalue()


def extract(data, dest, rename=None, devices=False):
    tar = cparchive.open_stream(io.BytesIO(data))
    ex = cparchive.Extractor(str(dest), rename, devices=devices)
    try:
        for ti in cparchive.members(tar):
            ex.add(tar, ti)
        ex.finish()
    finally:
        ex.close()
    return ex


def test_round_trip_keeps_modes_times_links(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_bytes(b"alpha" * 30000)
    os.chmod(src / "a", 0o4751)
    os.chmod(src / "sub", 0o705)
    os.link(src / "a", src / "sub" / "hard")
    os.symlink("../a", src / "sub" / "sym")
    os.mkfifo(src / "fifo")
    os.utime(src / "a", (1577934245, 1577934245))
    os.utime(src / "sub", (1500000000, 1500000000))
    buf = io.BytesIO()
    w = cparchive.Writer(buf)
    w.add_tree(str(src), "src")
    w.close()
    out = tmp_path / "out"
    out.mkdir()
    extract(buf.getvalue(), out, Plan(str(out), ["src"], ["copy"]).rename)
    c = out / "copy"
    assert (c / "a").read_bytes() == b"alpha" * 30000
    assert stat.S_IMODE((c / "a").stat().st_mode) == 0o4751 and (c / "a").stat().st_mtime == 1577934245
    assert stat.S_IMODE((c / "sub").stat().st_mode) == 0o705 and (c / "sub").stat().st_mtime == 1500000000
    assert (c / "sub" / "hard").stat().st_ino == (c / "a").stat().st_ino
    assert os.readlink(c / "sub" / "sym") == "../a" and stat.S_ISFIFO((c / "fifo").lstat().st_mode)
    assert not [n for n in os.listdir(c) if n.startswith(".tcr-cp")]


@pytest.mark.parametrize("members,why", [
    ([("/abs", tarfile.REGTYPE, b"x")], "absolute"),
    ([("../up", tarfile.REGTYPE, b"x")], "'..'"),
    ([("a/../../up", tarfile.REGTYPE, b"x")], "'..'"),
    ([("l", tarfile.SYMTYPE, b"/"), ("l/up", tarfile.REGTYPE, b"x")], "symlink the archive created"),
    ([("l", tarfile.SYMTYPE, b".."), ("l/up", tarfile.REGTYPE, b"x")], "symlink the archive created"),
    ([("d", tarfile.DIRTYPE, b""), ("d/l", tarfile.SYMTYPE, b"../.."), ("d/l/up", tarfile.REGTYPE, b"x")],
     "symlink the archive created"),
    ([("h", tarfile.LNKTYPE, b"../outside")], "'..'"),
    ([("h", tarfile.LNKTYPE, b"/etc/passwd")], "absolute"),
    ([("h", tarfile.LNKTYPE, b"outside")], "did not contain"),
])
def test_hostile_archives_are_refused(tmp_path, members, why):
    dest = tmp_path / "a" / "b" / "dest"
    dest.mkdir(parents=True)
    (dest / "outside").write_text("x")
    with pytest.raises(CpError, match=why):
        extract(_tar(*members), dest)
    assert sorted(os.listdir(tmp_path / "a" / "b")) == ["dest"]
    assert sorted(os.listdir(tmp_path / "a")) == ["b"]
    assert not (tmp_path / "up").exists()


def test_a_symlink_already_there_is_followed_as_docker(tmp_path):
    dest = tmp_path / "dest"
    (tmp_path / "real").mkdir()
    dest.mkdir()
    os.symlink("../real", dest / "l")
    extract(_tar(("l/f", tarfile.REGTYPE, b"x")), dest)
    assert (tmp_path / "real" / "f").read_text() == "x"


def test_type_conflicts_and_overwrite(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("old")
    with pytest.raises(CpError, match="cannot overwrite directory"):
        extract(_tar(("d", tarfile.REGTYPE, b"x")), tmp_path)
    with pytest.raises(CpError, match="cannot overwrite non-directory"):
        extract(_tar(("f", tarfile.DIRTYPE, b"")), tmp_path)
    os.symlink("f", tmp_path / "s")
    extract(_tar(("s", tarfile.REGTYPE, b"new")), tmp_path)  # replaces the link, not its target
    assert (tmp_path / "f").read_text() == "old" and (tmp_path / "s").read_text() == "new"


def test_setid_bits_only_when_asked(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("s")
        ti.mode, ti.size = 0o6755, 1
        tf.addfile(ti, io.BytesIO(b"x"))
    for setid, want in ((False, 0o755), (True, 0o6755)):
        out = tmp_path / str(setid)
        out.mkdir()
        tar = cparchive.open_stream(io.BytesIO(buf.getvalue()))
        ex = cparchive.Extractor(str(out), setid=setid)
        for m in cparchive.members(tar):
            ex.add(tar, m)
        ex.close()
        assert stat.S_IMODE((out / "s").stat().st_mode) == want


def test_devices_are_skipped_unless_allowed(tmp_path):
    ex = extract(_tar(("null", tarfile.CHRTYPE, b""), ("blk", tarfile.BLKTYPE, b"")), tmp_path)
    assert ex.skipped_devices == 2 and os.listdir(tmp_path) == []


def test_truncated_stream_leaves_no_file(tmp_path):
    data = _tar(("big", tarfile.REGTYPE, b"y" * 100000))
    with pytest.raises(CpError, match="invalid archive"):
        try:
            extract(data[:40000], tmp_path)
        except Exception as exc:
            raise cparchive.bad_archive(exc) or exc
    assert os.listdir(tmp_path) == []


def test_garbage_is_one_error():
    with pytest.raises(CpError, match="invalid archive"):
        cparchive.open_stream(io.BytesIO(b"not a tar" * 200))


# ---- the recorded wire samples (docs/formats.md, "Attach channel": tcr cp) ------------------------

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples", "rpc")


def _lines(name):
    with open(os.path.join(SAMPLES, name), "rb") as f:
        return [ln for ln in f.read().split(b"\n") if ln]


class _Conn:
    def __init__(self):
        self.sent = []
        self.channel = None

    def send_raw(self, data):
        self.sent.append(data)


@pytest.mark.parametrize("name,direction", [("cp_from", "from"), ("cp_to", "to")])
def test_cp_samples_both_ways(tmp_path, name, direction):
    from tcr.rpc import channel as chmod
    from tcr.rpc import client
    from tcr.rpc.protocol import decode_request

    (raw,) = _lines(name + ".request")
    req = decode_request(raw)
    assert req.method == "cp" and req.attach
    lines = _lines(name + ".channel")
    ann = client.parse_reply(client.loads(lines[0]))
    info = ann["cp"]
    assert ann["kind"] == "attach" and ann["stdin"] is (direction == "to")
    assert info["direction"] == direction and info["container"] == "web" and info["archive"] is False
    assert set(info) == {"direction", "local", "container", "path", "archive", "followLink", "quiet"}
    conn = _Conn()
    chmod.Channel(conn, 1).open(stdin=direction == "to", extra={"cp": info})
    assert conn.sent == lines[:1]  # tcrd writes exactly these bytes
    assert client.parse_reply(client.loads(lines[-1]))["exit_code"] == 0
    if direction == "from":
        data = lines[1]
        assert data[:1] == b"\x01"
    else:
        frames = _lines(name + ".input")
        assert frames[-1] == b"\x00" and frames[0][:1] == b"\x00"
        got = []
        ch = chmod.Channel(_Conn(), 1)
        ch.on_input = got.append
        for f in frames:
            ch.on_message(f)
        assert got[-1] == b"" and len(got) == 2
        data = b"\x00" + got[0]
    # the tar: its first member is the source itself; extracted per docker's rule (new name)
    tar = cparchive.open_stream(io.BytesIO(data[1:]))
    first = next(cparchive.members(tar))
    assert first.name == "conf" and first.isdir()
    ex = cparchive.Extractor(str(tmp_path), Plan(str(tmp_path), ["conf"], ["copy"]).rename)
    ex.add(tar, first)
    for ti in cparchive.members(tar):
        ex.add(tar, ti)
    ex.finish()
    ex.close()
    assert (tmp_path / "copy" / "app.ini").read_text() == "port=8080"
    assert stat.S_IMODE((tmp_path / "copy" / "app.ini").stat().st_mode) == 0o640
    assert (tmp_path / "copy").stat().st_mtime == 1764600000


_PART = st.sampled_from(["a", "b", "..", ".", "", "l"])
_MEMBER = st.tuples(
    st.lists(_PART, min_size=1, max_size=4).map("/".join),
    st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE]),
    st.sampled_from([b"", b"/", b"..", b"../..", b"a", b"../outside", b"/tmp", b"a/b"]),
    st.booleans(),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_MEMBER, max_size=8))
def test_any_archive_stays_inside_the_destination(tmp_path_factory, members):
    """Whatever the members (names with '..', '/', symlinks then paths through them, hard links),
    extraction either refuses (a CpError, or an OSError the callers turn into one line) or writes
    only under the destination."""
    base = tmp_path_factory.mktemp("fz")
    dest = base / "in" / "dest"
    dest.mkdir(parents=True)
    (base / "in" / "outside").write_text("x")
    entries = [(("/" if absolute else "") + name, kind, extra) for name, kind, extra, absolute in members]
    try:
        extract(_tar(*entries), dest)
    except (CpError, OSError):
        pass
    assert sorted(os.listdir(base)) == ["in"]
    assert sorted(os.listdir(base / "in")) == ["dest", "outside"]
    assert (base / "in" / "outside").read_text() == "x"


def test_a_file_swapped_for_a_fifo_or_device_is_never_opened_for_reading(tmp_path, monkeypatch):
    """The walk saw a regular file; by the open it is a FIFO (a device alike): with the worker's
    /proc fd it is opened O_PATH only (no driver's open runs), found not regular, and skipped."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok").write_text("fine")
    os.mkfifo(src / "swapped")
    real_stat, real_open = os.stat, os.open
    regular = os.stat(src / "ok")
    opened = []

    def fake_stat(p, *a, **kw):  # the walk's view: still a regular file
        return regular if str(p).endswith("swapped") else real_stat(p, *a, **kw)

    def spy_open(p, flags, *a, **kw):
        opened.append((str(p), flags))
        return real_open(p, flags, *a, **kw)

    monkeypatch.setattr(cparchive.os, "stat", fake_stat)
    monkeypatch.setattr(cparchive.os, "open", spy_open)
    proc = real_open("/proc", os.O_PATH | os.O_DIRECTORY)
    opened.clear()
    try:
        buf = io.BytesIO()
        w = cparchive.Writer(buf, proc_fd=proc)
        w.add_tree(str(src), "src")
        w.close()
    finally:
        os.close(proc)
    assert w.skipped == 1
    fifo_opens = [f for p, f in opened if p.endswith("swapped")]
    assert fifo_opens and all(f & os.O_PATH for f in fifo_opens)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
        assert tf.getnames() == ["src", "src/ok"] and tf.extractfile("src/ok").read() == b"fine"


def test_a_directory_swapped_for_a_symlink_during_the_walk_is_not_followed(tmp_path, monkeypatch):
    """The walk saw a directory; by the time it descends, it is a symlink (to '/', or back up the
    tree: a loop). The walk holds directory fds and opens each with O_NOFOLLOW, so it skips it."""
    src = tmp_path / "src"
    (src / "real").mkdir(parents=True)
    (src / "real" / "f").write_text("f")
    os.symlink("..", src / "a")  # what `a` became
    real_stat = os.stat
    a_dir = real_stat(src / "real")

    def fake_stat(p, *a, **kw):  # the walk's view: `a` is still a directory
        return a_dir if str(p) == "a" else real_stat(p, *a, **kw)

    monkeypatch.setattr(cparchive.os, "stat", fake_stat)
    buf = io.BytesIO()
    w = cparchive.Writer(buf)
    w.add_tree(str(src), "src")
    w.close()
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
        assert tf.getnames() == ["src", "src/real", "src/real/f"]
    assert w.skipped == 1
