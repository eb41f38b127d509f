"""The RPC wire messages of the C implementation, as frozen dataclasses (pure: no sockets).

Transport: a Unix SOCK_SEQPACKET socket, one compact JSON object per message.

    request  {"id":N,"method":M,"params":{"args":[...],"pwd":P,"pid":N}}
    reply    {"id":N,"result":{"exitCode":N,"stdOut":S,"stdErr":S}}
             {"id":N,"result":{"execArgs":[...]}}
             {"id":N,"error":{"code":C,"message":S}}

Extensions, all invisible to a client that knows only the above:
- `params.stream: true` (opt-in): the server may send `{"id":N,"stream":{"stdOut":S}}` (or
  "stdErr") messages before the final reply (used by `logs -f`).
- `error.hint` (optional string): a second line of advice; the C client ignores unknown keys.
- `params.attach: true` (opt-in, tcr's own client) and `params.winsize: [rows, cols]`: the client
  can take an attach data channel (tcr.rpc.channel, docs/formats.md "Attach channel"): tcrd may
  answer a foreground run, `start -a`, `attach` or `logs` with an `{"id":N,"attach":{...}}`
  announcement, binary frames (first byte 1 stdout, 2 stderr) and then the final reply; the client
  sends binary stdin frames (first byte 0; a lone 0 byte is EOF) and `{"id":N,"control":{...}}`.

Decoding never raises anything but ProtocolError, which carries the RPC error code (1 syntax,
6 invalid argument) and the request id when it could be read (0 otherwise).
"""

from __future__ import annotations

from tcr.common import jsonc
from tcr.common.errors import INVALID_ARGUMENT, SYNTAX, TcrError
from tcr.common.record import dataclass, field

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple, Union

MAX_MESSAGE = 1 << 20  # bytes, for requests and replies
MAX_ARGS = 1024  # arguments in one request
MAX_ID = 2**53  # ids are JSON numbers (doubles in the C client): keep them exact
DEFAULT_SOCKET = "/run/tcr/tcrd.sock"
ABSTRACT_NAME = "tiny_container_runtime"


class ProtocolError(TcrError):
    """A message that is not valid protocol. id is the request id if it could be read, else 0."""

    def __init__(self, message: str, code: int = SYNTAX, id: Union[int, float] = 0):
        super().__init__(message, code=code)
        self.id = id


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v: float) -> bool:
    """math.isfinite without the math module (one module less in tcrd): inf - inf and nan are nan."""
    return v - v == 0.0


def _check_id(v: Any) -> Union[int, float]:
    """Message ids are JSON numbers; the C client sends integral doubles. Echo them exactly."""
    if _is_int(v):
        if -MAX_ID <= v <= MAX_ID:
            return v
    elif isinstance(v, float) and _finite(v):
        return int(v) if v.is_integer() and abs(v) <= MAX_ID else v
    raise ProtocolError("invalid request: 'id' must be a number")


def _check_str_list(v: Any, what: str, id: Union[int, float]) -> List[str]:
    if not isinstance(v, list) or not all(isinstance(a, str) for a in v):
        raise ProtocolError(f"invalid request: '{what}' must be an array of strings", INVALID_ARGUMENT, id)
    if len(v) > MAX_ARGS:  # argument parsing is not linear: bound the work one request can cause
        raise ProtocolError(f"invalid request: too many arguments ({len(v)}, max {MAX_ARGS})",
                            INVALID_ARGUMENT, id)
    return list(v)


def _load_object(data: Union[bytes, str]) -> Dict[str, Any]:
    if len(data) > MAX_MESSAGE:
        raise ProtocolError(f"message too large ({len(data)} bytes, max {MAX_MESSAGE})", INVALID_ARGUMENT)
    try:
        obj = jsonc.loads(data)
    except (ValueError, RecursionError, OverflowError, TypeError) as exc:
        raise ProtocolError(f"malformed JSON: {str(exc)[:80] or type(exc).__name__}")
    if not isinstance(obj, dict):
        raise ProtocolError("invalid message: not a JSON object")
    return obj


@dataclass(frozen=True)
class Request:
    id: Union[int, float]
    method: str
    args: List[str] = field(default_factory=list)
    pwd: Optional[str] = None
    pid: Optional[int] = None
    stream: bool = False  # extension: the client accepts stream messages
    attach: bool = False  # extension: the client takes an attach data channel
    winsize: Optional[Tuple[int, int]] = None  # extension: the client's terminal (rows, cols)

    def to_dict(self) -> Dict[str, Any]:
        params: Dict[str, Any] = {"args": list(self.args)}
        if self.pwd is not None:
            params["pwd"] = self.pwd
        if self.pid is not None:
            params["pid"] = self.pid
        if self.stream:
            params["stream"] = True
        if self.attach:
            params["attach"] = True
        if self.winsize is not None:
            params["winsize"] = list(self.winsize)
        return {"id": self.id, "method": self.method, "params": params}

    @classmethod
    def from_dict(cls, d: Any) -> Request:
        if not isinstance(d, dict):
            raise ProtocolError("invalid request: not a JSON object")
        rid = _check_id(d.get("id"))
        method = d.get("method")
        if not isinstance(method, str) or not method:
            raise ProtocolError("invalid request: 'method' must be a non-empty string", SYNTAX, rid)
        params = d.get("params")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ProtocolError("invalid request: 'params' must be an object", INVALID_ARGUMENT, rid)
        args = _check_str_list(params.get("args", []), "params.args", rid)
        pwd = params.get("pwd")
        if pwd is not None and not isinstance(pwd, str):
            raise ProtocolError("invalid request: 'params.pwd' must be a string", INVALID_ARGUMENT, rid)
        pid = params.get("pid")
        if pid is not None:
            if isinstance(pid, float) and _finite(pid) and pid.is_integer():
                pid = int(pid)  # the C client sends doubles
            if not _is_int(pid) or not 0 < pid < 2**31:
                raise ProtocolError(
                    "invalid request: 'params.pid' must be a process id", INVALID_ARGUMENT, rid
                )
        stream = params.get("stream", False)
        if not isinstance(stream, bool):
            raise ProtocolError("invalid request: 'params.stream' must be a boolean", INVALID_ARGUMENT, rid)
        attach = params.get("attach", False)
        if not isinstance(attach, bool):
            raise ProtocolError("invalid request: 'params.attach' must be a boolean", INVALID_ARGUMENT, rid)
        ws = params.get("winsize")
        winsize: Optional[Tuple[int, int]] = None
        if ws is not None:
            if not isinstance(ws, list) or len(ws) != 2 or not all(_is_int(v) and 0 <= v < 65536 for v in ws):
                raise ProtocolError("invalid request: 'params.winsize' must be [rows, cols]",
                                    INVALID_ARGUMENT, rid)
            winsize = (ws[0], ws[1])
        return cls(rid, method, args, pwd, pid, stream, attach, winsize)


@dataclass(frozen=True)
class Result:
    id: Union[int, float]
    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "result": {"exitCode": self.exit_code, "stdOut": self.stdout, "stdErr": self.stderr},
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> Result:
        rid = _check_id(d.get("id"))
        r = d.get("result")
        if not isinstance(r, dict):
            raise ProtocolError("invalid reply: 'result' must be an object", SYNTAX, rid)
        code = r.get("exitCode", 0)
        if isinstance(code, float) and code.is_integer():
            code = int(code)
        out, err = r.get("stdOut", ""), r.get("stdErr", "")
        if not _is_int(code) or not isinstance(out, str) or not isinstance(err, str):
            raise ProtocolError("invalid reply: bad result types", INVALID_ARGUMENT, rid)
        return cls(rid, code, out, err)


@dataclass(frozen=True)
class ExecResult:
    id: Union[int, float]
    exec_args: List[str]

    def to_dict(self) -> Dict[str, Any]:
        return {"id": self.id, "result": {"execArgs": list(self.exec_args)}}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> ExecResult:
        rid = _check_id(d.get("id"))
        r = d.get("result")
        args = _check_str_list(r.get("execArgs") if isinstance(r, dict) else None, "execArgs", rid)
        if not args:
            raise ProtocolError("invalid reply: 'execArgs' is empty", INVALID_ARGUMENT, rid)
        return cls(rid, args)


@dataclass(frozen=True)
class ErrorReply:
    id: Union[int, float]
    code: int
    message: str
    hint: Optional[str] = None  # extension

    def to_dict(self) -> Dict[str, Any]:
        e: Dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            e["hint"] = self.hint
        return {"id": self.id, "error": e}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> ErrorReply:
        rid = _check_id(d.get("id"))
        e = d.get("error")
        if not isinstance(e, dict):
            raise ProtocolError("invalid reply: 'error' must be an object", SYNTAX, rid)
        code, msg, hint = e.get("code", -1), e.get("message", "unknown error"), e.get("hint")
        if isinstance(code, float) and code.is_integer():
            code = int(code)
        if not _is_int(code) or not isinstance(msg, str) or not (hint is None or isinstance(hint, str)):
            raise ProtocolError("invalid reply: bad error types", INVALID_ARGUMENT, rid)
        return cls(rid, code, msg, hint)

    @classmethod
    def from_exception(cls, id: Union[int, float], exc: TcrError) -> ErrorReply:
        return cls(id, exc.code, exc.message, exc.hint)


@dataclass(frozen=True)
class StreamChunk:
    """Extension: partial output sent before the final reply, only to clients that asked."""

    id: Union[int, float]
    stdout: str = ""
    stderr: str = ""

    def to_dict(self) -> Dict[str, Any]:
        s: Dict[str, Any] = {}
        if self.stdout:
            s["stdOut"] = self.stdout
        if self.stderr:
            s["stdErr"] = self.stderr
        return {"id": self.id, "stream": s}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> StreamChunk:
        rid = _check_id(d.get("id"))
        s = d.get("stream")
        if not isinstance(s, dict):
            raise ProtocolError("invalid reply: 'stream' must be an object", SYNTAX, rid)
        out, err = s.get("stdOut", ""), s.get("stdErr", "")
        if not isinstance(out, str) or not isinstance(err, str):
            raise ProtocolError("invalid reply: bad stream types", INVALID_ARGUMENT, rid)
        return cls(rid, out, err)


if TYPE_CHECKING:
    Reply = Union[Result, ExecResult, ErrorReply, StreamChunk]
    Message = Union[Request, Result, ExecResult, ErrorReply, StreamChunk]


def encode(msg: Message) -> bytes:
    d = msg.to_dict()
    try:
        return jsonc.dumps(d).encode("utf-8")
    except (UnicodeError, ValueError, OverflowError):
        # A lone surrogate (e.g. echoed from a hostile request) has no UTF-8 form: escape it as
        # \uXXXX, which is still valid JSON for every client.
        return jsonc.dumps(d, ascii=True).encode("ascii")


def decode_request(data: Union[bytes, str]) -> Request:
    obj = _load_object(data)
    try:
        return Request.from_dict(obj)
    except ProtocolError:
        raise
    except Exception as exc:  # defensive: input must never escape as another error type
        raise ProtocolError(f"invalid request: {type(exc).__name__}")


def decode_reply(data: Union[bytes, str]) -> Reply:
    obj = _load_object(data)
    try:
        if "error" in obj:
            return ErrorReply.from_dict(obj)
        if "stream" in obj:
            return StreamChunk.from_dict(obj)
        r = obj.get("result")
        if isinstance(r, dict) and "execArgs" in r:
            return ExecResult.from_dict(obj)
        return Result.from_dict(obj)
    except ProtocolError:
        raise
    except Exception as exc:
        raise ProtocolError(f"invalid reply: {type(exc).__name__}")
