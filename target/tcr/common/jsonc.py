"""JSON through the standard json (its C accelerator), ujson only where json is missing.

ujson used to come first; it costs tcrd ~1.5 MB resident (libstdc++ and decimal) for no speed that
matters here (docs/profile.md). MicroPython-style boards without json still get ujson.
MicroPython-friendly surface: only dumps() and loads(); every decode failure is a ValueError.
Output is compact (no spaces), as the C implementation's wire protocol expects.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any

try:
    import json as _impl

    # one encoder object: json.dumps() with options builds a new JSONEncoder on every call
    _encode = _impl.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

    def dumps(obj: Any) -> str:
        return _encode(obj)

    def loads(data: Any) -> Any:
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = bytes(data).decode("utf-8")  # UnicodeDecodeError is a ValueError
        try:
            return _impl.loads(data)
        except RecursionError:  # hostile nesting: a decode error like any other
            raise ValueError("JSON nested too deeply")

except ImportError:  # pragma: no cover - a board without the standard json
    import ujson as _impl  # type: ignore

    def dumps(obj: Any) -> str:
        return _impl.dumps(obj, ensure_ascii=False, escape_forward_slashes=False)

    def loads(data: Any) -> Any:
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = bytes(data).decode("utf-8")
        try:
            return _impl.loads(data)
        except ValueError:
            raise
        except Exception as exc:  # ujson raises other types for some inputs (deep nesting: RecursionError)
            raise ValueError(str(exc) or type(exc).__name__)


def dumps_pretty(obj: Any) -> str:
    """Indented, key-sorted JSON for files people read (always stdlib json)."""
    import json

    return json.dumps(obj, indent=2, sort_keys=True) + "\n"
