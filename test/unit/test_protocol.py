"""tcr.rpc.protocol: recorded samples both ways, strict validation, and fuzzed decoding."""

import glob
import json
import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcr.rpc import client, protocol
from tcr.rpc.protocol import (
    ErrorReply,
    ExecResult,
    ProtocolError,
    Request,
    Result,
    StreamChunk,
    decode_reply,
    decode_request,
    encode,
)

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples", "rpc")


def _lines(path):
    with open(path, "rb") as f:
        return [line for line in f.read().split(b"\n") if line]


REQUESTS = sorted(glob.glob(os.path.join(SAMPLES, "*.request")))
REPLIES = sorted(glob.glob(os.path.join(SAMPLES, "*.replies")))


def test_samples_cover_the_method_families():
    names = {os.path.basename(p).split(".")[0] for p in REQUESTS}
    for family in (
        "image_ls",
        "image_load",
        "image_rm",
        "image_inspect",
        "run_detached",
        "run_interactive",
        "ps",
        "logs",
        "logs_follow",
        "stop",
        "stop_not_found",
        "unknown_command",
    ):
        assert family in names
    assert len(REPLIES) >= len(REQUESTS)


@pytest.mark.parametrize("path", REQUESTS, ids=os.path.basename)
def test_request_sample_roundtrip(path):
    (raw,) = _lines(path)
    req = decode_request(raw)
    assert encode(req) == raw  # bytes -> dataclass -> bytes
    assert decode_request(encode(req)) == req
    assert Request.from_dict(req.to_dict()) == req
    # the lean client's codec produces the same bytes for the same request
    assert client.dumps(json.loads(raw)).encode() == raw


@pytest.mark.parametrize("path", REPLIES, ids=os.path.basename)
def test_reply_sample_roundtrip(path):
    for raw in _lines(path):
        msg = decode_reply(raw)
        assert encode(msg) == raw
        assert type(msg).from_dict(msg.to_dict()) == msg
        # the lean client reads the same thing
        parsed = client.parse_reply(client.loads(raw))
        if isinstance(msg, Result):
            assert parsed == {
                "kind": "result",
                "exit_code": msg.exit_code,
                "stdout": msg.stdout,
                "stderr": msg.stderr,
            }
        elif isinstance(msg, ExecResult):
            assert parsed == {"kind": "exec", "args": msg.exec_args}
        elif isinstance(msg, ErrorReply):
            assert parsed == {"kind": "error", "code": msg.code, "message": msg.message, "hint": msg.hint}
        else:
            assert isinstance(msg, StreamChunk)
            assert parsed == {"kind": "stream", "stdout": msg.stdout, "stderr": msg.stderr}


def test_request_matches_the_c_client_shape():
    # key order and compactness as cJSON_PrintUnformatted of the C client
    r = Request(3, "image", ["ls"], "/home/u", 77)
    assert encode(r) == b'{"id":3,"method":"image","params":{"args":["ls"],"pwd":"/home/u","pid":77}}'
    assert encode(Result(3, 0, "a\n", "")) == b'{"id":3,"result":{"exitCode":0,"stdOut":"a\\n","stdErr":""}}'
    assert (
        encode(ErrorReply(3, 2, "container not found"))
        == b'{"id":3,"error":{"code":2,"message":"container not found"}}'
    )


def test_c_client_doubles_are_accepted():
    r = decode_request(b'{"id":1.0,"method":"ps","params":{"args":[],"pwd":"/","pid":123.0}}')
    assert r.id == 1 and isinstance(r.id, int) and r.pid == 123
    assert encode(Result(r.id)).startswith(b'{"id":1,')


def test_client_build_request_is_protocol_valid():
    d = client.build_request(9, "run", ["-d", "x"], stream=True)
    r = decode_request(client.dumps(d))
    assert (r.id, r.method, r.args, r.pid, r.stream) == (9, "run", ["-d", "x"], os.getpid(), True)
    assert r.pwd == os.getcwd()
    assert "stream" not in client.build_request(1, "ps", [], stream=False)["params"]


def test_client_constants_match_protocol():
    assert client.DEFAULT_SOCKET == protocol.DEFAULT_SOCKET
    assert client.ABSTRACT_NAME == protocol.ABSTRACT_NAME
    assert client.MAX_MESSAGE == protocol.MAX_MESSAGE


@pytest.mark.parametrize(
    "raw,code,rid",
    [
        (b"", 1, 0),
        (b"not json", 1, 0),
        (b"[1,2]", 1, 0),
        (b"\xff\xfe", 1, 0),
        (b'{"method":"ps"}', 1, 0),
        (b'{"id":"1","method":"ps"}', 1, 0),
        (b'{"id":true,"method":"ps"}', 1, 0),
        (b'{"id":1e999,"method":"ps"}', 1, 0),
        (b'{"id":-1e999,"method":"ps"}', 1, 0),
        (b'{"id":NaN,"method":"ps"}', 1, 0),
        (b'{"id":-Infinity,"method":"ps"}', 1, 0),
        (b'{"id":4,"method":""}', 1, 4),
        (b'{"id":4,"method":7}', 1, 4),
        (b'{"id":4,"method":"ps","params":[]}', 6, 4),
        (b'{"id":4,"method":"ps","params":{"args":[1]}}', 6, 4),
        (b'{"id":4,"method":"ps","params":{"args":null}}', 6, 4),
        (b'{"id":4,"method":"ps","params":{"pwd":3}}', 6, 4),
        (b'{"id":4,"method":"ps","params":{"pid":"12"}}', 6, 4),
        (b'{"id":4,"method":"ps","params":{"pid":-1}}', 6, 4),
        (b'{"id":4,"method":"ps","params":{"pid":1.5}}', 6, 4),
        (b'{"id":4,"method":"ps","params":{"pid":1e999}}', 6, 4),
        (b'{"id":4,"method":"ps","params":{"pid":NaN}}', 6, 4),
        (b'{"id":4,"method":"ps","params":{"stream":1}}', 6, 4),
    ],
)
def test_bad_requests_are_protocol_errors(raw, code, rid):
    with pytest.raises(ProtocolError) as ei:
        decode_request(raw)
    assert (ei.value.code, ei.value.id) == (code, rid)
    assert "\n" not in ei.value.message


def test_oversized_message():
    big = b'{"id":1,"method":"x","params":{"args":["' + b"a" * protocol.MAX_MESSAGE + b'"]}}'
    with pytest.raises(ProtocolError) as ei:
        decode_request(big)
    assert ei.value.code == 6


def test_params_optional_and_unknown_keys_ignored():
    r = decode_request(b'{"id":2,"method":"help","future":1,"params":{"args":["x"],"newKey":{}}}')
    assert r == Request(2, "help", ["x"])
    assert decode_request(b'{"id":2,"method":"help","params":null}') == Request(2, "help", [])


def test_reply_validation():
    with pytest.raises(ProtocolError):
        decode_reply(b'{"id":1,"result":{"execArgs":[]}}')
    with pytest.raises(ProtocolError):
        decode_reply(b'{"id":1,"result":{"exitCode":"0"}}')
    with pytest.raises(ProtocolError):
        decode_reply(b'{"id":1,"error":"x"}')
    assert decode_reply(b'{"id":1,"result":{}}') == Result(1)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "id",
        "method",
        "params",
        "args",
        "pwd",
        "pid",
        "stream",
        "result",
        "error",
        "execArgs",
        "exitCode",
        "stdOut",
        "stdErr",
        "code",
        "message",
        "hint",
    ]
)
shaped = st.recursive(
    json_values,
    lambda children: st.dictionaries(keys, children, max_size=6) | st.lists(children, max_size=4),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=200), shaped.map(lambda v: json.dumps(v).encode())))
def test_decoders_never_raise_anything_else(data):
    for decode in (decode_request, decode_reply):
        try:
            decode(data)
        except ProtocolError as exc:
            assert exc.code in (1, 6)
            assert isinstance(exc.id, (int, float))
    try:
        client.parse_reply(client.loads(data))
    except (ValueError, client.RpcError):
        pass


@settings(max_examples=200, deadline=None)
@given(shaped)
def test_client_codec_agrees_with_json(value):
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert client.loads(text) == json.loads(text)
    if not _has_float(value):
        assert client.dumps(value) == text


def _has_float(v):
    if isinstance(v, float):
        return True
    if isinstance(v, list):
        return any(_has_float(x) for x in v)
    if isinstance(v, dict):
        return any(_has_float(x) for x in v.values())
    return False


ids = st.integers(min_value=0, max_value=2**53)
texts = st.text(max_size=50)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.builds(
            Request,
            ids,
            texts.filter(bool),
            st.lists(texts, max_size=5),
            st.none() | texts,
            st.none() | st.integers(1, 2**31 - 1),
            st.booleans(),
        ),
        st.builds(Result, ids, st.integers(0, 255), texts, texts),
        st.builds(ExecResult, ids, st.lists(texts, min_size=1, max_size=5)),
        st.builds(ErrorReply, ids, st.integers(1, 7), texts, st.none() | texts.filter(bool)),
        st.builds(StreamChunk, ids, texts, texts),
    )
)
def test_roundtrip_property(msg):
    data = encode(msg)
    back = decode_request(data) if isinstance(msg, Request) else decode_reply(data)
    assert back == msg


def test_float_ids_are_echoed():
    r = decode_request(b'{"id":2.5,"method":"ps"}')
    assert r.id == 2.5 and not math.isnan(r.id)
    assert encode(ErrorReply(r.id, 1, "x")).startswith(b'{"id":2.5,')


def test_lone_surrogates_still_encode_as_valid_json():
    import json

    from tcr.rpc import protocol

    data = protocol.encode(protocol.ErrorReply(3, 1, "unknown command '\udfff'"))
    assert json.loads(data)["error"]["message"] == "unknown command '\udfff'"


def test_argument_count_is_bounded():
    import pytest as _pytest

    from tcr.rpc import protocol

    req = {"id": 1, "method": "run", "params": {"args": ["-a"] * (protocol.MAX_ARGS + 1)}}
    with _pytest.raises(protocol.ProtocolError) as ei:
        protocol.decode_request(json_bytes(req))
    assert "too many arguments" in str(ei.value)


def json_bytes(obj):
    import json

    return json.dumps(obj).encode()
