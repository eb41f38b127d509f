"""System commands: help, version, check, the hidden _incoming (for `tcr -H ... image load`) and
_modules (footprint checks)."""

from __future__ import annotations

import os
import sys

import tcr
from tcr.commands import base, render
from tcr.commands.base import Ctx, Output, Parser
from tcr.common.errors import InternalError, InvalidArgument, UsageError

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List

API_VERSION = 1  # bumped when the protocol gains an extension a client may need to know about


def help_text() -> str:
    names = sorted(n for n in base.COMMANDS if not n.startswith("_"))
    width = max((len(n) for n in names), default=0)
    lines = [
        "Usage: tcr [-H ssh://user@host[:port]] [--socket PATH] [--debug] COMMAND [ARGS...]",
        "",
        "Commands:",
    ]
    lines += [f"  {n.ljust(width)}   {base.SUMMARIES.get(n, '')}".rstrip() for n in names]
    lines += ["", "Run 'tcr COMMAND --help' for more information on a command."]
    return "\n".join(lines) + "\n"


@base.command("help", "Show the commands, or the help of one command")
def cmd_help(ctx: Ctx) -> Output:
    if ctx.args and not ctx.args[0].startswith("-"):
        name = ctx.args[0]
        handler = base.COMMANDS.get(name)
        if handler is None or name.startswith("_"):
            raise UsageError(f"unknown command: {name[:64]!r}", hint="see 'tcr help'")
        sub = Ctx(ctx.daemon, name, list(ctx.args[1:]) + ["--help"], ctx.pwd, ctx.pid, ctx.uid, ctx.gid)
        try:
            out = handler(sub)
        except base.HelpRequested as h:
            return Output(0, h.text)
        return out if isinstance(out, Output) else Output(0, "")
    return Output(0, help_text())


def server_info(daemon: Any) -> Dict[str, Any]:
    return {
        "version": tcr.__version__,
        "api": API_VERSION,
        "python": ".".join(map(str, sys.version_info[:3])),
        "pid": os.getpid(),
        "root": str(getattr(daemon, "root", "") or ""),
    }


@base.command("version", "Show the tcrd version")
def cmd_version(ctx: Ctx) -> Output:
    p = Parser("version", description="Show the version of tcrd.")
    base.add_format(p)
    ns = p.parse(ctx.args)
    info = server_info(ctx.daemon)
    if ns.format == "json":
        return Output(0, render.as_json(info))
    return Output(
        0,
        f"Server: tcrd {info['version']} (python {info['python']}, api {info['api']}, "
        f"pid {info['pid']}, root {info['root']})\n",
    )


def check_output(args: List[str]) -> Output:
    """Run the prerequisite checks here (daemon side, or in the client with --local)."""
    p = Parser("check", description="Check kernel features and tools tcr needs, with fixes.")
    p.add_argument("--local", action="store_true", help="run the checks in the client, without tcrd")
    base.add_format(p)
    ns = p.parse(args)
    from tcr import check

    results = check.run_checks()
    code = 0 if all(c.ok for c in results) else 1
    if ns.format == "json":
        return Output(code, render.as_json([c.to_dict() for c in results]))
    return Output(code, check.render(results))


@base.command("check", "Check kernel features and tools tcr needs")
def cmd_check(ctx: Ctx) -> Output:
    return check_output(ctx.args)


@base.command("_incoming", "Directory where remote clients copy files to load (internal)")
def cmd_incoming(ctx: Ctx) -> Output:
    if ctx.uid != 0 and ctx.uid != os.geteuid():
        raise InvalidArgument("_incoming: only root may upload files to the daemon")
    root = str(getattr(ctx.daemon, "root", "") or "")
    if not root:
        raise InternalError("_incoming: the daemon has no state root")
    path = os.path.join(root, "incoming")
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return Output(0, path + "\n")


@base.command("_modules", "The Python modules tcrd has loaded, in load order (internal: footprint checks)")
def cmd_modules(ctx: Ctx) -> Output:
    """What the daemon process holds right now: test_idle_imports and bench_memory compare it with
    the allow-list of docs/profile.md. Read-only; worker processes are not included.

    --dropped: instead, tcr's modules that were dropped (tcr.check, the recovery modules: see
    tcr.daemon.main) but whose functions are still alive, so their code is still resident."""
    if ctx.args == ["--dropped"]:
        import gc

        func = type(cmd_modules)
        held = {f.__module__ for f in gc.get_objects() if type(f) is func}
        dropped = sorted(m for m in held if isinstance(m, str) and m.startswith("tcr.")
                         and m not in sys.modules)
        return Output(0, "".join(f"{name}\n" for name in dropped))
    if ctx.args:
        raise UsageError("_modules takes no arguments but --dropped")
    return Output(0, "".join(f"{name}\n" for name in list(sys.modules)))
