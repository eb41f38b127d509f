"""The lean RPC client used by `tcr` on every invocation.

Deliberately imports only os, the C modules _socket and _json, and nothing else when it can
(no typing, no dataclasses, no argparse, no logging; `socket` pulls in enum and selectors, `json`
pulls in re): the CLI must start fast on a small board (see bench/bench_cli.py, -X importtime).
The JSON codec here is a thin layer over CPython's _json accelerator with tcr.common.jsonc as the
fallback; test_cli checks both agree. tcr.rpc.protocol holds the same message shapes as validated
dataclasses for the daemon side; test_protocol checks that both agree.
"""

import _socket
import posix as _posix

from tcr.common import leanos as os  # the os subset on posix: `import os` costs ~1 ms

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations below are strings for mypy
# (quoted by hand: `from __future__ import annotations` imports the __future__ module, ~0.1 ms)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional

DEFAULT_SOCKET = "/run/tcr/tcrd.sock"
ABSTRACT_NAME = "tiny_container_runtime"
MAX_MESSAGE = 1 << 20
_MSG_TRUNC = getattr(_socket, "MSG_TRUNC", 0x20)


def _exists(path: str) -> bool:
    try:
        os.stat(path)
    except OSError:
        return False
    return True


def _fallback_codec():
    from tcr.common import jsonc

    return jsonc.dumps, jsonc.loads


try:
    import _json

    class _ScanContext:
        """The attributes _json.make_scanner reads from a json.JSONDecoder."""

        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int

        @staticmethod
        def parse_constant(name: str) -> float:
            return float(name.replace("Infinity", "inf"))

    _scan_once = _json.make_scanner(_ScanContext())  # type: ignore[arg-type]
    _encode_str = _json.encode_basestring  # keeps non-ASCII as is, like jsonc

    def dumps(obj: "Any") -> str:
        """Compact JSON for the few types a request holds."""
        if isinstance(obj, str):
            return _encode_str(obj)
        if obj is None:
            return "null"
        if obj is True:
            return "true"
        if obj is False:
            return "false"
        if isinstance(obj, int):
            return str(int(obj))
        if isinstance(obj, dict):
            return "{" + ",".join(_encode_str(str(k)) + ":" + dumps(v) for k, v in obj.items()) + "}"
        if isinstance(obj, (list, tuple)):
            return "[" + ",".join(dumps(v) for v in obj) + "]"
        return _fallback_codec()[0](obj)

    def loads(data: "Any") -> "Any":
        """Decode one JSON document; every failure is a ValueError (as jsonc)."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = bytes(data).decode("utf-8")
        text = data.strip(" \t\n\r")
        try:
            obj, end = _scan_once(text, 0)
        except StopIteration:
            raise ValueError("malformed JSON")
        except RecursionError:
            raise ValueError("JSON nested too deeply")
        if end != len(text):
            raise ValueError("extra data after JSON document")
        return obj

except (ImportError, AttributeError, TypeError):  # not CPython: the portable path
    dumps, loads = _fallback_codec()


class RpcError(Exception):
    """An error reply from the daemon (or a broken reply). code is the RPC error code."""

    def __init__(self, code: int, message: str, hint: "Optional[str]" = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


class ConnectError(Exception):
    """The daemon could not be reached, or the connection broke before the reply."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"cannot connect to tcrd at {where}: {reason}")
        self.where = where
        self.reason = reason


def _address(path: str) -> str:
    """'@name' is an abstract socket (as in the C tool), anything else a filesystem path."""
    return "\0" + path[1:] if path.startswith("@") else path


def resolve_socket(explicit: "Optional[str]" = None) -> str:
    """--socket, then TCR_SOCKET, then the default path, then the C daemon's abstract name."""
    if explicit:
        return explicit
    env = os.getenv("TCR_SOCKET")
    if env:
        return env
    if _exists(DEFAULT_SOCKET):
        return DEFAULT_SOCKET
    return "@" + ABSTRACT_NAME


def connect(path: str) -> "_socket.socket":
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    try:
        sock.connect(_address(path))
    except OSError as exc:
        sock.close()
        raise ConnectError(path, exc.strerror or str(exc))
    return sock


def recv_message(sock: "_socket.socket") -> "Optional[bytes]":
    """One SEQPACKET message (any size), or None when the peer closed."""
    probe = bytearray(1)
    n = sock.recv_into(probe, 1, _socket.MSG_PEEK | _MSG_TRUNC)  # MSG_TRUNC: the real length
    if n == 0:
        data = sock.recv(1)  # consume an empty message, if that is what it was
        return data if data else None
    return sock.recv(max(n, 1))


def terminal_size() -> "Optional[List[int]]":
    """[rows, cols] of the terminal on stdin (or stdout), None without one. posix's own TIOCGWINSZ
    call: fcntl and termios are two shared libraries to load (~0.3 ms of every `tcr` typed in a
    terminal, where the request carries the size)."""
    for fd in (0, 1):
        try:
            cols, rows = _posix.get_terminal_size(fd)
        except OSError:  # not a terminal
            continue
        return [rows, cols]
    return None


def build_request(rid: int, method: str, args: "List[str]", stream: bool = True,
                  attach: bool = False) -> "Dict[str, Any]":
    params: Dict[str, Any] = {"args": list(args)}
    try:
        params["pwd"] = os.getcwd()
    except OSError:
        pass  # as the C client: no pwd when the cwd is gone
    params["pid"] = os.getpid()
    if stream:
        params["stream"] = True
    if attach:  # extension: we take an attach data channel (tcr.cli.attach)
        params["attach"] = True
        size = terminal_size()
        if size is not None:
            params["winsize"] = size
    return {"id": rid, "method": method, "params": params}


def _str(v: "Any") -> str:
    return v if isinstance(v, str) else ""


def parse_reply(obj: "Any") -> "Dict[str, Any]":
    """Normalise a decoded reply into {'kind': 'result'|'exec'|'stream'|'error', ...}."""
    if not isinstance(obj, dict):
        raise RpcError(7, "invalid reply from tcrd: not a JSON object")
    err = obj.get("error")
    if err is not None:
        if not isinstance(err, dict):
            raise RpcError(7, "invalid reply from tcrd: bad error object")
        code = err.get("code")
        code = int(code) if isinstance(code, (int, float)) and not isinstance(code, bool) else -1
        msg = err.get("message")
        hint = err.get("hint")
        return {
            "kind": "error",
            "code": code,
            "message": msg if isinstance(msg, str) else "unknown error",
            "hint": hint if isinstance(hint, str) and hint else None,
        }
    att = obj.get("attach")
    if isinstance(att, dict):
        keys = att.get("detachKeys")
        if not isinstance(keys, list):
            keys = []
        keys = bytes(k for k in keys if isinstance(k, int) and 0 <= k < 256)
        out = {"kind": "attach", "stdin": att.get("stdin") is True, "tty": att.get("tty") is True,
               "sig_proxy": att.get("sigProxy") is True, "detach_keys": keys}
        if isinstance(att.get("cp"), dict):  # `tcr cp`: what the client does with the data
            out["cp"] = att["cp"]
        return out
    stream = obj.get("stream")
    if isinstance(stream, dict):
        return {"kind": "stream", "stdout": _str(stream.get("stdOut")), "stderr": _str(stream.get("stdErr"))}
    res = obj.get("result")
    if isinstance(res, dict) and "execArgs" in res:
        args = res.get("execArgs")
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            raise RpcError(7, "invalid reply from tcrd: bad execArgs")
        return {"kind": "exec", "args": args}
    if not isinstance(res, dict):
        res = {}
    code = res.get("exitCode", 0)
    code = int(code) if isinstance(code, (int, float)) and not isinstance(code, bool) else 0
    return {
        "kind": "result",
        "exit_code": code,
        "stdout": _str(res.get("stdOut")),
        "stderr": _str(res.get("stdErr")),
    }


def call(
    sock: "_socket.socket",
    method: str,
    args: "List[str]",
    on_stream: "Optional[Callable[[str, str], None]]" = None,
    rid: int = 1,
    where: str = "socket",
    attach: bool = False,
) -> "Dict[str, Any]":
    """Send one request and return its final parsed reply ('result' or 'exec'), or with attach,
    possibly an 'attach' announcement: the caller then runs the data channel (tcr.cli.attach).

    Error replies raise RpcError; a broken connection raises ConnectError. Stream messages go to
    on_stream(stdout, stderr) as they arrive.
    """
    req = build_request(rid, method, args, stream=on_stream is not None, attach=attach)
    data = dumps(req).encode("utf-8")
    if len(data) > MAX_MESSAGE:
        raise RpcError(6, f"request too large ({len(data)} bytes, max {MAX_MESSAGE})")
    if len(data) > 65536:  # a SEQPACKET message must fit the send buffer in one piece
        try:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, 2 * len(data))
        except OSError:
            pass
    try:
        sock.send(data)
    except OSError as exc:
        # The daemon may have refused us and closed: its error reply is still queued for us.
        send_error: Optional[OSError] = exc
    else:
        send_error = None
    while True:
        try:
            msg = recv_message(sock)
        except ConnectionResetError as exc:
            # The kernel reports a reset before the data still queued for us (e.g. the daemon's
            # "permission denied" reply): the error is cleared now, so read once more.
            try:
                msg = recv_message(sock)
            except OSError:
                raise ConnectError(where, (send_error or exc).strerror or str(exc))
        except OSError as exc:
            raise ConnectError(where, (send_error or exc).strerror or str(exc))
        if msg is None:
            reason = send_error.strerror if send_error is not None else None
            raise ConnectError(where, reason or "connection closed by tcrd before the reply")
        try:
            obj = loads(msg)
        except ValueError:
            raise RpcError(7, "invalid reply from tcrd: malformed JSON")
        if not isinstance(obj, dict):
            raise RpcError(7, "invalid reply from tcrd: not a JSON object")
        mid = obj.get("id")
        reply = parse_reply(obj)
        # id 0 is a connection-level error (e.g. permission denied); other ids must match ours.
        if mid != rid and not (reply["kind"] == "error" and mid == 0):
            continue
        if reply["kind"] == "stream":
            if on_stream is not None:
                on_stream(reply["stdout"], reply["stderr"])
            continue
        if reply["kind"] == "error":
            raise RpcError(reply["code"], reply["message"], reply["hint"])
        return reply
