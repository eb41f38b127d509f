"""The attach channel (docs/formats.md "Attach channel"): recorded samples both ways, the
server-side routing and flow control, the client's detach-key matcher, and property tests of the
parsers that take input (frames, controls, detach keys, log times)."""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcr.cli.attach import _Detach
from tcr.common.errors import InvalidArgument
from tcr.containers.attach import parse_detach_keys
from tcr.containers.logstream import Formatter, LogReader, parse_time
from tcr.rpc import channel as chmod
from tcr.rpc import client
from tcr.rpc.protocol import decode_request, encode

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples", "rpc")


def _lines(name):
    with open(os.path.join(SAMPLES, name), "rb") as f:
        return [ln for ln in f.read().split(b"\n") if ln]


class FakeConn:
    def __init__(self):
        self.sent = []
        self.outbytes = 0
        self.closed = False
        self.channel = None
        self.reading = True

    def send_raw(self, data):
        self.sent.append(data)

    def pause_reading(self):
        self.reading = False

    def resume_reading(self):
        self.reading = True


def test_attach_request_sample():
    (raw,) = _lines("attach_run.request")
    req = decode_request(raw)
    assert req.attach and req.winsize == (40, 120)
    assert encode(req) == raw


def test_channel_sample_as_the_client_reads_it():
    lines = _lines("attach_run.channel")
    ann = client.parse_reply(client.loads(lines[0]))
    assert ann == {"kind": "attach", "stdin": True, "tty": False, "sig_proxy": True,
                   "detach_keys": b"\x10\x11"}
    assert lines[1][:1] == b"\x01" and lines[2][:1] == b"\x02"
    assert client.parse_reply(client.loads(lines[3]))["exit_code"] == 3
    # and tcrd writes exactly these bytes
    conn = FakeConn()
    ch = chmod.Channel(conn, 1)
    ch.open(stdin=True, tty=False, detach_keys=b"\x10\x11", sig_proxy=True)
    ch.write("stdout", lines[1][1:])
    ch.write("stderr", lines[2][1:])
    assert conn.sent == lines[:3] and conn.channel is ch


def test_input_sample_routing():
    conn = FakeConn()
    ch = chmod.Channel(conn, 1)
    got, ctl = [], []
    ch.on_input = got.append
    ch.on_control = ctl.append
    for raw in _lines("attach_run.input"):
        ch.on_message(raw)
    assert got == [b"typed input\r\x03", b""]
    assert ctl == [{"signal": "SIGINT"}, {"resize": [50, 132]}]


def test_big_writes_are_cut_into_frames_and_pressure_is_reported():
    conn = FakeConn()
    ch = chmod.Channel(conn, 1)
    drained = []
    ch.on_drain = lambda: drained.append(1)
    ch.write("stdout", b"x" * (chmod.FRAME * 2 + 1))
    assert [len(f) for f in conn.sent] == [chmod.FRAME + 1, chmod.FRAME + 1, 2]
    conn.outbytes = chmod.HIGH_WATER + 1
    assert ch.pressured
    conn.outbytes = chmod.LOW_WATER
    ch.on_sent()
    assert drained == [1]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_channel_input_never_raises(data):
    ch = chmod.Channel(FakeConn(), 1)
    ch.on_input = lambda _d: None
    ch.on_control = lambda _c: None
    ch.on_message(data)
    ch.on_message(b"{" + data)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=12),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                                 st.lists(st.integers(-5, 300), max_size=4)), max_size=5))
def test_client_reads_any_announcement(att):
    r = client.parse_reply({"id": 1, "attach": att})
    assert r["kind"] == "attach" and isinstance(r["detach_keys"], bytes)


def test_detach_keys():
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("ctrl-a,d") == b"\x01d"
    assert parse_detach_keys("ctrl-@,ctrl-[") == b"\x00\x1b"
    for bad in ("ctrl-", "ctrl-1", "alt-x", "ab"):
        with pytest.raises(InvalidArgument):
            parse_detach_keys(bad)


@given(st.text(max_size=30))
def test_detach_keys_property(text):
    try:
        parse_detach_keys(text)
    except InvalidArgument:
        pass


def test_client_detach_matcher_keeps_false_starts():
    m = _Detach(b"\x10\x11")
    assert m.feed(b"ab\x10") == (b"ab", False)
    assert m.feed(b"c") == (b"\x10c", False)  # not the sequence: the held ^P goes through
    assert m.feed(b"\x10") == (b"", False)
    assert m.feed(b"\x11rest") == (b"", True)
    assert _Detach(b"").feed(b"\x10\x11") == (b"\x10\x11", False)


def test_parse_time():
    now = 1_700_000_000.0
    assert parse_time("10m", "--since", now) == now - 600
    assert parse_time("1h30m", "--since", now) == now - 5400
    assert parse_time("1700000000.5", "--since", now) == 1700000000.5
    assert parse_time("2023-11-14T22:13:20Z", "--since", now) == 1700000000
    assert parse_time("2023-11-14T23:13:20+01:00", "--since", now) == 1700000000
    with pytest.raises(InvalidArgument):
        parse_time("soon", "--since", now)


@given(st.text(max_size=40))
def test_parse_time_property(text):
    try:
        parse_time(text, "--since", 0.0)
    except InvalidArgument:
        pass


def _write_log(path, recs):
    with open(path, "wb") as f:
        f.write(b"".join(recs))


def test_reader_tail_across_files_and_formatter(tmp_path):
    log = str(tmp_path / "container.log")
    _write_log(log + ".1", [b"2024-01-01T00:00:0%d.000000Z stdout F old%d\n" % (i, i) for i in range(3)])
    _write_log(log, [b"2024-01-01T00:00:1%d.000000Z stderr F new%d\n" % (i, i) for i in range(2)]
               + [b"2024-01-01T00:00:20.000000Z stdout P par", b"\n",
                  b"2024-01-01T00:00:21.000000Z stdout F tial\n"])
    r = LogReader(log, 2, tail=5)  # records: a line cut in P + F pieces counts as two
    blobs = []
    while (b := r.read()) is not None:
        blobs.append(b)
    r.close()
    out = Formatter().format(b"".join(blobs))
    assert out == [("stdout", b"old2\n"), ("stderr", b"new0\nnew1\n"), ("stdout", b"partial\n")]
    ts = Formatter(timestamps=True).format(b"2024-01-01T00:00:20.000000Z stdout P par\n"
                                           b"2024-01-01T00:00:21.000000Z stdout F tial\n")
    assert ts == [("stdout", b"2024-01-01T00:00:20.000000Z partial\n")]
    f = Formatter(since=1704067210.0, until=1704067211.0)  # 00:00:10 .. 00:00:11
    r = LogReader(log, 2)
    got = []
    while (b := r.read()) is not None:
        got += f.format(b)
    r.close()
    assert got == [("stderr", b"new0\nnew1\n")]


@given(st.integers(1971, 2200), st.integers(1, 12), st.integers(1, 28), st.integers(0, 23),
       st.integers(0, 59), st.integers(0, 59))
def test_parse_time_utc_matches_time_module(y, mo, d, hh, mm, ss):
    import calendar

    text = f"{y:04d}-{mo:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}Z"
    assert parse_time(text, "--since", 0.0) == calendar.timegm((y, mo, d, hh, mm, ss, 0, 0, 0))


@pytest.mark.parametrize("params", [
    {"attach": "yes"}, {"attach": 1}, {"winsize": [1]}, {"winsize": [1, 2, 3]}, {"winsize": "24x80"},
    {"winsize": [-1, 80]}, {"winsize": [24, 70000]}, {"winsize": [True, 80]}, {"winsize": [24.5, 80]},
])
def test_bad_attach_params_are_protocol_errors(params):
    import json

    from tcr.rpc.protocol import ProtocolError

    raw = json.dumps({"id": 5, "method": "run", "params": {"args": [], **params}})
    with pytest.raises(ProtocolError) as e:
        decode_request(raw)
    assert e.value.id == 5
