"""JSON on CPython's C accelerator `_json` alone, the standard `json` where `_json` is missing, and
ujson only where both are.

The `json` package costs tcrd ~0.9 MB resident for what _json already does: its decoder and
encoder import `re` (and with it enum, functools and collections) for a whitespace regex and the
Python fallbacks (docs/profile.md). ujson used to come first; it costs ~1.5 MB (libstdc++ and
decimal). Output is the standard json's byte for byte (a property test checks it): compact (no
spaces, as the C implementation's wire protocol expects), `ascii=True` escapes as json's default,
`dumps_pretty()` is `json.dumps(obj, indent=2, sort_keys=True)` plus a newline.
Every decode failure is a ValueError.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Tuple

_WS = " \t\n\r"


def _text(data: Any) -> str:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data).decode("utf-8")  # UnicodeDecodeError is a ValueError
    return data


try:
    import _json

    class _ScanContext:
        """The attributes _json.make_scanner reads from a json.JSONDecoder (json's defaults)."""

        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        parse_constant = float  # NaN, Infinity, -Infinity, as json accepts them

    _scan = _json.make_scanner(_ScanContext())  # type: ignore[arg-type]

    def _not_serializable(obj: Any) -> Any:
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    _encoders: Dict[Tuple[bool, bool], Callable[[Any, int], Any]] = {}

    def _encoder(sort_keys: bool, ascii: bool) -> Callable[[Any, int], Any]:
        enc = _encoders.get((sort_keys, ascii))
        if enc is None:
            # (markers, default, str encoder, indent, key sep, item sep, sort_keys, skipkeys, allow_nan):
            # no circular check (tcr's values are trees), as json.JSONEncoder otherwise
            enc = _encoders[sort_keys, ascii] = _json.make_encoder(
                None, _not_serializable, _json.encode_basestring_ascii if ascii else _json.encode_basestring,
                None, ":", ",", sort_keys, False, True)
        return enc

    def dumps(obj: Any, sort_keys: bool = False, ascii: bool = False) -> str:
        """Compact JSON; ascii=True escapes non-ASCII (json's default), else kept as is."""
        return "".join(_encoder(sort_keys, ascii)(obj, 0))

    def loads(data: Any) -> Any:
        text = _text(data)
        start = len(text) - len(text.lstrip(_WS))
        try:
            obj, end = _scan(text, start)
        except StopIteration as exc:
            raise ValueError(f"malformed JSON at character {exc.value}") from None
        except RecursionError:  # hostile nesting: a decode error like any other
            raise ValueError("JSON nested too deeply") from None
        except SystemError:
            # _json reports a bad string or delimiter through json.decoder.JSONDecodeError, and
            # without that module loaded it raises SystemError instead (nothing else does here)
            raise ValueError("malformed JSON") from None
        if text[end:].strip(_WS):
            raise ValueError(f"extra data after JSON at character {end}")
        return obj

except ImportError:  # pragma: no cover - an interpreter without the C accelerator
    try:
        import json as _impl

        def dumps(obj: Any, sort_keys: bool = False, ascii: bool = False) -> str:
            return _impl.dumps(obj, separators=(",", ":"), ensure_ascii=ascii, sort_keys=sort_keys)

        def loads(data: Any) -> Any:
            try:
                return _impl.loads(_text(data))
            except RecursionError:
                raise ValueError("JSON nested too deeply") from None

    except ImportError:  # MicroPython-style boards without json
        import ujson as _impl  # type: ignore

        def dumps(obj: Any, sort_keys: bool = False, ascii: bool = False) -> str:
            return _impl.dumps(obj, ensure_ascii=ascii, escape_forward_slashes=False, sort_keys=sort_keys)

        def loads(data: Any) -> Any:
            try:
                return _impl.loads(_text(data))
            except ValueError:
                raise
            except Exception as exc:  # ujson raises other types for some inputs (deep nesting)
                raise ValueError(str(exc) or type(exc).__name__) from None


def _key(k: Any) -> str:
    """A dict key as json writes it (str, and the scalar types it converts)."""
    if isinstance(k, str):
        return dumps(k, ascii=True)
    if isinstance(k, (int, float)) or k is None:  # bool is an int: true/false
        return dumps(dumps(k), ascii=True)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(k).__name__}")


def _pretty(obj: Any, indent: str) -> str:
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        inner = indent + "  "
        items = (inner + _key(k) + ": " + _pretty(v, inner) for k, v in sorted(obj.items()))
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(obj, (list, tuple)):
        if not obj:
            return "[]"
        inner = indent + "  "
        return "[\n" + ",\n".join(inner + _pretty(v, inner) for v in obj) + "\n" + indent + "]"
    return dumps(obj, ascii=True)


def dumps_pretty(obj: Any) -> str:
    """Indented, key-sorted JSON for files people read: json.dumps(obj, indent=2, sort_keys=True)."""
    return _pretty(obj, "") + "\n"
