"""A small command-line parser with the part of argparse's interface that tcr uses.

argparse (with gettext and locale) costs tcrd ~0.7 MB resident and every command goes through a
parser, so it would be imported by the first request (docs/profile.md). Same calls as argparse:
add_argument(*flags | name, action=store|store_true|store_const|append|help, dest, default,
const, type, choices, nargs=None|"?"|"*"|"+", metavar, help), parse_args(list) -> Namespace,
format_help(). Same rules: options and positionals mix, `--` ends options, `--opt=v`, `-ov`,
clusters of short flags (`-dit`), exact long names only (argparse's allow_abbrev=False), a value
may not look like an option unless it is a negative number; the same error wording.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Sequence


class Namespace:
    """Attributes named by the arguments' dests (argparse.Namespace's behaviour)."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)

    if TYPE_CHECKING:  # any attribute, as typeshed declares argparse.Namespace
        def __getattr__(self, name: str) -> Any: ...

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Namespace) and vars(self) == vars(other)

    def __contains__(self, key: str) -> bool:
        return key in self.__dict__

    def __repr__(self) -> str:
        return "Namespace(" + ", ".join(f"{k}={v!r}" for k, v in sorted(self.__dict__.items())) + ")"


class Action:
    __slots__ = ("option_strings", "dest", "action", "nargs", "default", "const", "type", "choices",
                 "metavar", "help", "required")

    def __init__(self, option_strings: List[str], dest: str, action: str, nargs: Any, default: Any,
                 const: Any, type: Optional[Callable[[str], Any]], choices: Optional[Sequence[Any]],
                 metavar: Optional[str], help: Optional[str], required: bool) -> None:
        self.option_strings = option_strings
        self.dest = dest
        self.action = action
        self.nargs = nargs  # 0 for flags (store_true, store_const, help), as in argparse
        self.default = default
        self.const = const
        self.type = type
        self.choices = choices
        self.metavar = metavar
        self.help = help
        self.required = required

    def name(self) -> str:
        """How errors name the argument: '-t/--time' or the positional's metavar."""
        return "/".join(self.option_strings) if self.option_strings else (self.metavar or self.dest)

    def value_name(self) -> str:
        return self.metavar or self.dest.upper()


_UNSET: Any = object()  # store_true defaults to False unless a default (even None) is given


class ArgumentError(Exception):
    pass


class ArgumentTypeError(Exception):
    """Raised by a type= function: its message becomes the error (argparse's class of the same name)."""


def _looks_negative(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return s.startswith("-")


class ArgParser:
    def __init__(self, prog: str, usage: Optional[str] = None, description: Optional[str] = None,
                 add_help: bool = True, **_ignored: Any) -> None:
        self.prog = prog
        self.usage = usage
        self.description = description
        self._actions: List[Action] = []
        self._options: Dict[str, Action] = {}
        if add_help:
            self.add_argument("-h", "--help", action="help", help="show this help message and exit")

    # ---- building --------------------------------------------------------------------------------

    def add_argument(self, *names: str, action: str = "store", dest: Optional[str] = None, nargs: Any = None,
                     default: Any = _UNSET, const: Any = None, type: Optional[Callable[[str], Any]] = None,
                     choices: Optional[Sequence[Any]] = None, metavar: Optional[str] = None,
                     help: Optional[str] = None, required: bool = False) -> Action:
        if action not in ("store", "store_true", "store_const", "append", "help"):
            raise ValueError(f"unsupported action {action!r}")
        flags = [n for n in names if n.startswith("-")]
        if flags and len(flags) != len(names):
            raise ValueError("an argument is either an option or a positional")
        if flags:
            if dest is None:
                longs = [f for f in flags if f.startswith("--")]
                dest = (longs or flags)[0].lstrip("-").replace("-", "_")
        else:
            if len(names) != 1 or dest is not None:
                raise ValueError("a positional has exactly one name")
            dest = names[0]
        if default is _UNSET:
            default = False if action == "store_true" else None
        a = Action(list(flags), dest, action, 0 if action in ("store_true", "store_const", "help") else nargs,
                   default, True if action == "store_true" else const, type, choices, metavar, help, required)
        self._actions.append(a)
        for f in flags:
            self._options[f] = a
        return a

    # ---- parsing ---------------------------------------------------------------------------------

    def parse_args(self, args: Optional[Sequence[str]] = None) -> Namespace:
        try:
            return self._parse(list(sys.argv[1:] if args is None else args))
        except ArgumentError as exc:
            self.error(str(exc))
            raise  # error() does not return

    def _parse(self, args: List[str]) -> Namespace:
        ns = Namespace()
        for act in self._actions:  # the first action of a dest gives the default (--format / --json)
            if act.action != "help" and act.dest not in ns:
                setattr(ns, act.dest, list(act.default) if isinstance(act.default, list) else act.default)
        positionals: List[str] = []
        unknown: List[str] = []
        a: Optional[Action]
        i = 0
        while i < len(args):
            tok = args[i]
            i += 1
            if tok == "--":
                positionals += args[i:]
                break
            if not tok.startswith("-") or tok == "-" or _looks_negative(tok):
                positionals.append(tok)
                continue
            if tok.startswith("--"):
                name, eq, value = tok.partition("=")
                a = self._options.get(name)
                if a is None:
                    unknown.append(tok)
                    continue
                if a.nargs == 0:
                    if eq:
                        raise ArgumentError(f"argument {a.name()}: ignored explicit argument {value!r}")
                    self._take(a, ns, None)
                    continue
                if not eq:
                    value, i = self._next_value(a, args, i)
                self._take(a, ns, value)
                continue
            # short options: -x, -xVALUE, -x=VALUE, clusters of flags -dit
            head, eq, value = tok.partition("=")
            if eq and head in self._options and self._options[head].nargs != 0:
                self._take(self._options[head], ns, value)
                continue
            j = 1
            while j < len(tok):
                a = self._options.get("-" + tok[j])
                if a is None:
                    if j == 1:
                        unknown.append(tok)
                    else:
                        raise ArgumentError(f"argument {self._options['-' + tok[j - 1]].name()}: "
                                            f"ignored explicit argument {tok[j:]!r}")
                    break
                if a.nargs == 0:
                    self._take(a, ns, None)
                    j += 1
                    continue
                rest = tok[j + 1:]
                if rest:
                    self._take(a, ns, rest[1:] if rest.startswith("=") else rest)
                else:
                    value, i = self._next_value(a, args, i)
                    self._take(a, ns, value)
                break
        extra = self._assign_positionals(positionals, ns)
        if unknown or extra:
            raise ArgumentError("unrecognized arguments: " + " ".join(unknown + extra))
        missing = [a.name() for a in self._actions if a.option_strings and a.required
                   and getattr(ns, a.dest) is None]
        if missing:
            raise ArgumentError("the following arguments are required: " + ", ".join(missing))
        return ns

    def _next_value(self, a: Action, args: List[str], i: int) -> Any:
        if i >= len(args) or (args[i].startswith("-") and args[i] != "-" and not _looks_negative(args[i])):
            raise ArgumentError(f"argument {a.name()}: expected one argument")
        return args[i], i + 1

    def _convert(self, a: Action, value: str) -> Any:
        if a.type is not None:
            try:
                value = a.type(value)
            except ArgumentTypeError as exc:
                raise ArgumentError(f"argument {a.name()}: {exc}")
            except (TypeError, ValueError):
                tname = getattr(a.type, "__name__", "value")
                raise ArgumentError(f"argument {a.name()}: invalid {tname} value: {value!r}")
        if a.choices is not None and value not in a.choices:
            choices = ", ".join(repr(c) for c in a.choices)
            raise ArgumentError(f"argument {a.name()}: invalid choice: {value!r} (choose from {choices})")
        return value

    def _take(self, a: Action, ns: Namespace, value: Optional[str]) -> None:
        if a.action == "help":
            self.print_help()
            return
        if a.action in ("store_true", "store_const"):
            setattr(ns, a.dest, a.const)
        elif a.action == "append":
            cur = getattr(ns, a.dest)
            setattr(ns, a.dest, [*(cur or []), self._convert(a, value or "")])
        else:
            setattr(ns, a.dest, self._convert(a, value or ""))

    def _assign_positionals(self, values: List[str], ns: Namespace) -> List[str]:
        """Give each positional its share, in order (greedy, leaving each later one its minimum)."""
        specs = [a for a in self._actions if not a.option_strings]
        mins = [0 if a.nargs in ("?", "*") else 1 for a in specs]
        missing = []
        for k, a in enumerate(specs):
            avail = len(values) - sum(mins[k + 1:])
            if a.nargs in ("*", "+"):
                take = max(avail, 0)
            else:
                take = min(1, max(avail, 0))
            got, values = values[:take], values[take:]
            if len(got) < mins[k]:
                missing.append(a.name())
                continue
            if a.nargs in ("*", "+"):
                setattr(ns, a.dest, [self._convert(a, v) for v in got])
            elif got:
                setattr(ns, a.dest, self._convert(a, got[0]))
        if missing:
            raise ArgumentError("the following arguments are required: " + ", ".join(missing))
        return values

    # ---- output ----------------------------------------------------------------------------------

    def format_usage(self) -> str:
        if self.usage:
            return f"usage: {self.usage}\n"
        parts = [self.prog]
        for a in self._actions:
            if a.option_strings:
                flag = a.option_strings[0]
                parts.append(f"[{flag}]" if a.nargs == 0 else f"[{flag} {a.value_name()}]")
        for a in self._actions:
            if not a.option_strings:
                v = a.value_name() if a.metavar else a.dest
                parts.append({"?": f"[{v}]", "*": f"[{v} ...]", "+": f"{v} [{v} ...]"}.get(a.nargs, v))
        return "usage: " + " ".join(parts) + "\n"

    def format_help(self) -> str:
        out = [self.format_usage()]
        if self.description:
            out.append(f"\n{self.description}\n")
        pos = [a for a in self._actions if not a.option_strings]
        opts = [a for a in self._actions if a.option_strings]
        for title, group in (("positional arguments", pos), ("options", opts)):
            if not group:
                continue
            out.append(f"\n{title}:\n")
            for a in group:
                if a.option_strings:
                    left = ", ".join(a.option_strings if a.nargs == 0
                                     else [f"{f} {a.value_name()}" for f in a.option_strings])
                else:
                    left = a.metavar or a.dest
                if a.help and len(left) <= 22:
                    out.append(f"  {left:<22}  {a.help}\n")
                else:
                    out.append(f"  {left}\n" + (f"  {'':<22}  {a.help}\n" if a.help else ""))
        return "".join(out)

    # Overridden by tcr.commands.base.Parser (raise instead of print and exit), as with argparse.
    def error(self, message: str) -> None:
        sys.stderr.write(self.format_usage() + f"{self.prog}: error: {message}\n")
        raise SystemExit(2)

    def print_help(self) -> None:
        sys.stdout.write(self.format_help())
        raise SystemExit(0)
