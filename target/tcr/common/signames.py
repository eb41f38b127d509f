"""Signal names and numbers as `signal.Signals` has them, from the C module `_signal`.

`signal` builds three enum classes at import (enum, functools and collections with them, docs/
profile.md); tcrd needs only the name table, for `--stop-signal`, `kill -s` and its log lines.
Aliases resolve as the enum does: SIGIOT -> SIGABRT, SIGCLD -> SIGCHLD, SIGPOLL -> SIGIO.
"""

from __future__ import annotations

import _signal


def _table() -> dict:
    return {n: getattr(_signal, n) for n in dir(_signal)
            if n.isupper() and n.startswith("SIG") and not n.startswith("SIG_")}


def name(number: int) -> str:
    """15 -> 'SIGTERM'; ValueError for a number with no name (signal.Signals' rule)."""
    names = sorted(n for n, v in _table().items() if v == number)
    if not names:
        raise ValueError(f"{number} is not a valid signal")
    return names[0]


def number(name: str) -> int:
    """'SIGTERM' -> 15 (the exact upper-case name); KeyError for an unknown one."""
    return int(_table()[name])
