"""Signal names and numbers as `signal.Signals` has them, from the C module `_signal`.

`signal` builds three enum classes at import (enum, functools and collections with them, docs/
profile.md); tcrd needs only the name table, for `--stop-signal`, `kill -s`, the attach channel's
forwarded signals and its log lines.
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


def parse(text: str) -> str:
    """A signal as the user names it: SIGTERM, TERM, term, 15 -> 'SIGTERM'; InvalidArgument else.
    (Here, not in the run options parser: kill -s and attach's signal forwarding need it in tcrd.)"""
    raw = text.strip().upper()
    try:
        if raw.isdigit():
            return name(int(raw))
        return name(number(raw if raw.startswith("SIG") else "SIG" + raw))
    except (KeyError, ValueError):
        from tcr.common.errors import InvalidArgument

        raise InvalidArgument(f"invalid signal: {text!r}")
