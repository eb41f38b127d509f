"""Rotating container logs: exact cap, rotation, framing, tail; the FIFO pump without root."""

import os

from tcr.containers import logs as L
from tcr.containers import logstream as LS


def _total(paths):
    return sum(os.path.getsize(p) for p in paths)


def test_cap_is_never_exceeded(tmp_path):
    path = str(tmp_path / "container.log")
    log = L.RotatingLog(path, max_size=1000, max_files=3)
    framer = L.LineFramer()
    for i in range(2000):
        for rec in framer.feed(b"line %d %s\n" % (i, b"x" * (i % 70)), now=0):
            log.write_record(rec)
        files = log.files()
        assert len(files) <= 3
        assert all(os.path.getsize(p) <= 1000 for p in files)
        assert _total(files) <= 3000
    log.close()
    lines = LS.read_lines(path, 3)
    # The newest line survived, older lines rotated away in order.
    assert lines[-1].endswith("line 1999 " + "x" * (1999 % 70))
    nums = [int(LS.split_record(r)[1].split()[1]) for r in lines]
    assert nums == sorted(nums) and nums[0] > 0


def test_single_file_and_huge_line(tmp_path):
    path = str(tmp_path / "c.log")
    log = L.RotatingLog(path, max_size=4096, max_files=1)
    framer = L.LineFramer()
    for rec in framer.feed(b"y" * 100000 + b"\n"):
        log.write_record(rec)
    log.close()
    assert os.path.getsize(path) <= 4096
    assert L.log_files(path, 1) == [path]


def test_framer_partial_and_flush():
    f = L.LineFramer()
    assert f.feed(b"abc", now=0) == []
    recs = f.feed(b"def\nghi", now=0)
    assert recs == [b"1970-01-01T00:00:00.000000Z stdout F abcdef\n"]
    assert f.flush(now=0) == [b"1970-01-01T00:00:00.000000Z stdout P ghi\n"]
    assert f.flush() == []
    long = f.feed(b"z" * (L.LINE_MAX * 2 + 5), now=0)
    assert len(long) == 2 and f.flush(now=0)[0].endswith(b" P zzzzz\n")


def test_records_restore_the_bytes_exactly():
    data = b"a\n" + b"x" * (L.LINE_MAX + 3) + b"\n\nno newline"
    f = L.LineFramer("stderr")
    recs = f.feed(data[:7], now=0) + f.feed(data[7:], now=0) + f.flush(now=0)
    parsed = [L.parse_record(r.rstrip(b"\n")) for r in recs]
    assert {p[1] for p in parsed} == {"stderr"}
    assert b"".join(p[2] for p in parsed) == data
    assert L.parse_record(b"1970-01-01T00:00:00.000000Z old style") == (
        b"1970-01-01T00:00:00.000000Z", "stdout", b"old style\n")


def test_tail_and_format(tmp_path):
    path = str(tmp_path / "c.log")
    log = L.RotatingLog(path, max_size=200, max_files=4)
    fr = L.LineFramer()
    for i in range(30):
        for rec in fr.feed(b"n%d\n" % i, now=0):
            log.write_record(rec)
    log.close()
    last3 = LS.read_lines(path, 4, tail=3)
    assert LS.format_lines(last3, timestamps=False) == "n27\nn28\nn29\n"
    assert LS.format_lines(last3, timestamps=True).startswith("1970-01-01T00:00:00.000000Z n27\n")
    assert LS.read_lines(path, 4, tail=0) == []
    assert LS.read_lines(str(tmp_path / "nope.log"), 2) == []


class _Loop:
    def __init__(self):
        self.readers = {}

    def add_reader(self, fd, cb):
        self.readers[fd] = cb

    def remove_reader(self, fd):
        self.readers.pop(fd, None)


def test_pump_reads_fifo_until_writers_are_gone(tmp_path):
    fifo = str(tmp_path / "log.fifo")
    L.make_fifo(fifo)
    w = L.open_writer(fifo)
    loop = _Loop()
    pump = L.LogPump(loop, fifo, L.RotatingLog(str(tmp_path / "c.log"), 4096, 2))
    pump.open()
    got = []
    pump.followers.append(got.append)
    os.write(w, b"hello\nwor")
    loop.readers[pump.fd]()
    os.write(w, b"ld\n")
    os.close(w)  # the container is gone
    pump.drain()
    assert pump.fd is None and loop.readers == {}
    assert [LS.split_record(r)[1] for r in LS.read_lines(str(tmp_path / "c.log"), 2)] == ["hello", "world"]
    assert got[-1] is None and b"".join(g for g in got if g).count(b"\n") == 2


def test_writer_survives_without_reader(tmp_path):
    """No SIGPIPE/EPIPE when tcrd (the reader) is gone: the writer's own fd keeps the pipe open."""
    fifo = str(tmp_path / "log.fifo")
    L.make_fifo(fifo)
    w = L.open_writer(fifo)
    assert os.write(w, b"nobody reads this yet\n") > 0
    r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # tcrd comes back
    assert os.read(r, 100) == b"nobody reads this yet\n"
    os.close(r)
    os.close(w)
