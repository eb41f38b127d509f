"""Output rendering shared by all commands: aligned tables and JSON."""

from __future__ import annotations

from tcr.common import jsonc

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Sequence


def table(headers: Sequence[str], rows: List[Sequence[Any]]) -> str:
    cols = [list(map(str, headers))] + [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cols) for i in range(len(headers))]
    lines = []
    for r in cols:
        cells = [c.ljust(w) for c, w in zip(r, widths)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def as_json(obj: Any) -> str:
    return jsonc.dumps_pretty(obj)


def human_size(n: int) -> str:
    f = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if f < 1000 or unit == "TB":
            return f"{f:.0f}{unit}" if unit == "B" else f"{f:.3g}{unit}"
        f /= 1000
    return f"{n}B"


def human_ago(seconds: float) -> str:
    s = int(max(0, seconds))
    for unit, div in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if s >= div:
            n = s // div
            return f"{n} {unit if n != 1 else unit[:-1]} ago"
    return f"{s} seconds ago" if s != 1 else "1 second ago"


def listing(fmt: str, items: Sequence[Any], table_text: Callable[[], str],
            headers: Optional[Dict[str, str]] = None) -> str:
    """A listing in the asked format: the default table, a JSON array, or a Go template per item."""
    if fmt in ("", "table"):
        return table_text()
    if fmt == "json":
        return as_json(list(items))
    from tcr.commands import gotemplate

    return gotemplate.render_list(fmt, items, headers)


def objects(fmt: str, items: Sequence[Any]) -> str:
    """inspect's output: a JSON array (docker's), or a Go template rendered once per object."""
    if fmt in ("", "table", "json"):
        return as_json(list(items))
    from tcr.commands import gotemplate

    t = gotemplate.Template(fmt)
    return "".join(t.render(i) + "\n" for i in items)
