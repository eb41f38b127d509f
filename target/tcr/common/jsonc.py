"""JSON with ujson when available, json otherwise.

MicroPython-friendly surface: only dumps() and loads(); every decode failure is a ValueError.
Output is compact (no spaces), as the C implementation's wire protocol expects.
"""

from typing import Any

try:  # pragma: no cover - depends on the environment
    import ujson as _impl  # type: ignore

    def dumps(obj: Any) -> str:
        return _impl.dumps(obj, ensure_ascii=False, escape_forward_slashes=False)

    def loads(data: Any) -> Any:
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = bytes(data).decode("utf-8")  # UnicodeDecodeError is a ValueError
        try:
            return _impl.loads(data)
        except ValueError:
            raise
        except Exception as exc:  # ujson raises other types for some inputs (deep nesting: RecursionError)
            raise ValueError(str(exc) or type(exc).__name__)

except ImportError:  # pragma: no cover
    import json as _impl  # type: ignore

    def dumps(obj: Any) -> str:
        return _impl.dumps(obj, separators=(",", ":"), ensure_ascii=False)

    def loads(data: Any) -> Any:
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = bytes(data).decode("utf-8")
        try:
            return _impl.loads(data)
        except RecursionError:  # hostile nesting: a decode error like any other
            raise ValueError("JSON nested too deeply")


def dumps_pretty(obj: Any) -> str:
    """Indented, key-sorted JSON for files people read (always stdlib json)."""
    import json

    return json.dumps(obj, indent=2, sort_keys=True) + "\n"
