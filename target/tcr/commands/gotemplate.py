"""docker's `--format` Go-template subset, rendered against plain dicts (pure).

Supported, as docker scripts use them:
  {{.Field}} {{.A.B}}           field access (dict keys; a missing key is an error, as in Go)
  {{json .}} {{json .Field}}    compact JSON
  {{index .Labels "k"}}         map or list lookup
  {{join .List ", "}}           join a list
  {{upper .X}} {{lower .X}} {{title .X}} {{len .X}} {{println .X}}
  {{printf "%s-%d" .A .B}}      %s %d %v %q and widths such as %-10s
  {{if .X}}..{{else}}..{{end}}  truthiness as in Go (empty string, 0, nil, empty list are false)
  `table` prefix                a header row from the field names, columns aligned by tabs
  \\t and \\n escapes typed on the command line

Everything is parsed once into a small tree; rendering never evaluates Python code.
"""

from __future__ import annotations

import re

from tcr.common.errors import UsageError

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Tuple

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`|\S+')
_MAX_TEMPLATE = 4096


class Template:
    """A parsed template: render(obj) -> text."""

    def __init__(self, source: str):
        if len(source) > _MAX_TEMPLATE:
            raise UsageError(f"template too long ({len(source)} characters, at most {_MAX_TEMPLATE})")
        self.source = source
        self.table = False
        text = source
        if text.startswith("table"):
            self.table = True
            text = text[len("table"):].lstrip(" ")
        text = text.replace("\\t", "\t").replace("\\n", "\n")
        self.nodes = _parse(text)

    def render(self, obj: Any) -> str:
        out: List[str] = []
        try:
            _render(self.nodes, obj, out)
        except (ValueError, TypeError, UnicodeError) as e:  # e.g. printf "%d" of a name
            raise UsageError(f"template: {str(e).splitlines()[0][:120] if str(e) else type(e).__name__}")
        return "".join(out)

    def header(self, names: Optional[Dict[str, str]] = None) -> str:
        """The header row of a `table` template: each field's column name (`names`, docker's
        header for that field) or the field name in capitals."""
        out: List[str] = []
        _render(self.nodes, names or {}, out, header=True)
        return "".join(out)


# A node: ("text", s) | ("expr", tokens) | ["if", tokens, then_nodes, else_nodes]


def _parse(text: str) -> List[Any]:
    root: List[Any] = []
    stack: List[Tuple[List[Any], List[Any]]] = []  # (outer list, the open if-node)
    cur = root
    pos = 0

    def literal(t: str) -> None:
        if "{{" in t:
            raise UsageError("template: unclosed action")
        cur.append(("text", t))

    for m in _ACTION.finditer(text):
        if m.start() > pos:
            literal(text[pos:m.start()])
        pos = m.end()
        body = m.group(1)
        toks = _TOKEN.findall(body)
        if not toks:
            raise UsageError(f"template: empty action at character {m.start()}")
        if toks[0] == "if":
            if len(toks) < 2:
                raise UsageError("template: 'if' needs a condition")
            node: List[Any] = ["if", toks[1:], [], []]
            cur.append(node)
            stack.append((cur, node))
            cur = node[2]
        elif toks[0] == "else":
            if not stack:
                raise UsageError("template: 'else' outside 'if'")
            cur = stack[-1][1][3]
        elif toks[0] == "end":
            if not stack:
                raise UsageError("template: unexpected 'end'")
            cur, _ = stack.pop()
        else:
            cur.append(("expr", toks))
    if stack:
        raise UsageError("template: missing 'end'")
    if pos < len(text):
        literal(text[pos:])
    return root


def _field(obj: Any, path: str) -> Any:
    if path == ".":
        return obj
    cur = obj
    for part in path.lstrip(".").split("."):
        if isinstance(cur, dict):
            if part not in cur:
                raise UsageError(f"template: no field {part!r}" + _choices(cur))
            cur = cur[part]
        else:
            raise UsageError(f"template: can't evaluate field {part!r} in a {type(cur).__name__}")
    return cur


def _choices(d: Dict[str, Any]) -> str:
    keys = sorted(k for k in d if isinstance(k, str))
    return f" (fields: {', '.join(keys[:20])})" if keys else ""


def _arg(obj: Any, tok: str, header: bool) -> Any:
    if tok.startswith('"'):
        return bytes(tok[1:-1], "utf-8").decode("unicode_escape")
    if tok.startswith("`"):
        return tok[1:-1]
    if tok.startswith("."):
        if header:
            return _column(obj, tok)
        return _field(obj, tok)
    if re.fullmatch(r"-?\d+", tok):
        return int(tok)
    raise UsageError(f"template: unknown value {tok[:64]!r}")


def _column(names: Dict[str, str], tok: str) -> str:
    if tok == ".":
        return ""
    name = tok.rsplit(".", 1)[-1]
    return names.get(name) or name.upper()


def _text(v: Any) -> str:
    if v is None:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_text(x)}" for k, x in sorted(v.items())) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_text(x) for x in v) + "]"
    return str(v)


def _json(v: Any) -> str:
    from tcr.common import jsonc

    return jsonc.dumps(v, ascii=True)


def _printf(fmt: str, args: Sequence[Any]) -> str:
    it = iter(args)

    def one(m: re.Match[str]) -> str:
        flags, verb = m.group(1), m.group(2)
        if verb == "%":
            return "%"
        try:
            v = next(it)
        except StopIteration:
            return f"%!{verb}(MISSING)"
        if verb == "d":
            return ("%" + flags + "d") % int(v)
        if verb == "q":
            return ("%" + flags + "s") % _json(_text(v))
        return ("%" + flags + "s") % _text(v)

    return re.sub(r"%([-+ 0#]*\d*(?:\.\d+)?)([sdvq%])", one, fmt)


def _eval(toks: Sequence[str], obj: Any, header: bool) -> Any:
    fn, rest = toks[0], toks[1:]
    args = [_arg(obj, t, header) for t in rest]
    if fn.startswith(".") or fn.startswith('"') or fn.startswith("`"):
        if rest:
            raise UsageError(f"template: {fn[:64]!r} is not a function")
        return _arg(obj, fn, header)
    if header:
        # The header of a column is the name of the field it shows.
        fields = [t for t in rest if t.startswith(".")]
        return _column(obj, fields[0]) if fields else fn.upper()
    if fn == "json":
        _need(fn, args, 1)
        return _json(args[0])
    if fn == "index":
        _need(fn, args, 2)
        base, key = args
        try:
            return base[key]
        except (KeyError, IndexError, TypeError):
            return ""  # Go: the zero value of a missing map key
    if fn == "join":
        _need(fn, args, 2)
        return str(args[1]).join(_text(x) for x in (args[0] or []))
    if fn in ("upper", "lower", "title"):
        _need(fn, args, 1)
        s = _text(args[0])
        return s.upper() if fn == "upper" else s.lower() if fn == "lower" else s.title()
    if fn == "len":
        _need(fn, args, 1)
        return len(args[0] or [])
    if fn == "println":
        return " ".join(_text(a) for a in args) + "\n"
    if fn == "printf":
        if not args:
            raise UsageError("template: printf needs a format")
        return _printf(str(args[0]), args[1:])
    raise UsageError(f"template: function {fn[:64]!r} not defined")


def _need(fn: str, args: Sequence[Any], n: int) -> None:
    if len(args) != n:
        raise UsageError(f"template: {fn} takes {n} argument(s), got {len(args)}")


def _truthy(v: Any) -> bool:
    return bool(v) and v != "<no value>"


def _render(nodes: Sequence[Any], obj: Any, out: List[str], header: bool = False) -> None:
    for n in nodes:
        kind = n[0]
        if kind == "text":
            out.append(n[1])
        elif kind == "expr":
            v = _eval(n[1], obj, header)
            out.append(v if isinstance(v, str) else _text(v))
        else:  # if
            if header:
                _render(n[2], obj, out, header)
            else:
                _render(n[2] if _truthy(_eval(n[1], obj, header)) else n[3], obj, out, header)


def align_tabs(lines: List[str]) -> str:
    """Columns separated by tabs, aligned with three spaces between them (docker's tabwriter)."""
    rows = [ln.split("\t") for ln in lines]
    width: Dict[int, int] = {}
    for r in rows:
        for i, c in enumerate(r[:-1]):
            width[i] = max(width.get(i, 0), len(c))
    out = []
    for r in rows:
        cells = [c.ljust(width[i]) + "   " if i < len(r) - 1 else c for i, c in enumerate(r)]
        out.append("".join(cells).rstrip())
    return "\n".join(out) + ("\n" if out else "")


def render_list(source: str, items: Sequence[Any], headers: Optional[Dict[str, str]] = None) -> str:
    """A --format template over a listing: one line per item (header first for `table`)."""
    t = Template(source)
    lines = [t.render(it) for it in items]
    if t.table:
        return align_tabs([t.header(headers)] + lines)
    return "".join(line + "\n" for line in lines)
