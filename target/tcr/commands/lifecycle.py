"""Container commands that change a container's life: create, start, exec, stop, rm, and the
`container` group (docker's `docker container ls` etc.).

Loaded by their first command (tcr.commands.dispatch.LAZY_COMMANDS): an idle tcrd that only ran
containers does not hold them (docs/profile.md). `run` and what it shares with create and start
(the options worker, volume seeding, attaching) stay in tcr.commands.containers.
"""

from __future__ import annotations

from tcr.commands import base
from tcr.commands.base import Ctx, Output, Parser, Pending
from tcr.commands.containers import _attach, _fail_output, _mgr, _seeded_first, _with_options
from tcr.common.errors import TcrError, UsageError

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, List, Optional


@base.command("create", "Create a new container (start it with 'tcr start')")
def cmd_create(ctx: Ctx) -> Any:
    def create(opts: Any) -> Output:
        c = _mgr(ctx).create(opts, interactive=False)
        return Output(0, c.rec.id + "\n")

    return _with_options(ctx, "create", create)


@base.command("start", "Start stopped containers (-a: attach to one)")
def cmd_start(ctx: Ctx) -> Any:
    from tcr.containers.manager import StartFailed

    p = Parser("start", description="Start one or more stopped containers.")
    p.add_argument("-a", "--attach", action="store_true", help="attach stdout/stderr, exit with its code")
    p.add_argument("-i", "--interactive", action="store_true", help="attach stdin")
    p.add_argument("--detach-keys", metavar="KEYS", help="keys that detach (default ctrl-p,ctrl-q)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    ns = p.parse(ctx.args)
    mgr = _mgr(ctx)
    cs = [mgr.find(r) for r in ns.containers]
    attach = ns.attach or ns.interactive
    if attach and len(cs) > 1:
        raise UsageError("tcr start: you cannot start and attach multiple containers at once")
    if attach and ctx.channel is None:
        raise UsageError("tcr start -a: this client cannot attach", hint="use tcr's own client")

    def start_all(seed_error: Optional[TcrError]) -> Any:
        out = []
        for ref, c in zip(ns.containers, cs):
            if c.rec.state == "running" and not attach:
                out.append(ref)
                continue
            try:
                if seed_error is not None:
                    raise seed_error
                if c.rec.state != "running":
                    mgr.user_start(c, winsize=ctx.channel.winsize if attach else None, attached=attach)
            except StartFailed as exc:
                return Output(exc.exit_code, "".join(o + "\n" for o in out), f"tcr: {exc.render()}\n")
            out.append(ref)
        if attach:
            from tcr.containers.attach import parse_detach_keys

            keys = None if ns.detach_keys is None else parse_detach_keys(ns.detach_keys)
            c = cs[0]
            return _attach(mgr, c, ctx.channel, stdin=ns.interactive and c.opts.interactive,
                           stdin_once=not c.opts.detach, detach_keys=keys)
        return Output(0, "".join(o + "\n" for o in out))

    return _seeded_first(mgr, [c for c in cs if c.rec.state != "running"], start_all)


# ---- exec ---------------------------------------------------------------------------------------


@base.command("exec", "Run a command in a running container")
def cmd_exec(ctx: Ctx) -> Output:
    from tcr.containers.manager import StartFailed

    p = Parser("exec", description="Run a command in a running container.", add_help=False)
    p.add_argument("--help", action="help", help="show this help")
    p.add_argument("-d", "--detach", action="store_true", help="run in the background")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    p.add_argument("-u", "--user", metavar="UID[:GID]")
    p.add_argument("-w", "--workdir", metavar="DIR")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs="+", metavar="COMMAND")
    valued = {"-e", "--env", "-u", "--user", "-w", "--workdir"}
    opt_args, rest = _split_positional(ctx.args, takes_value=valued)
    ns = p.parse(opt_args + rest[:1] + ["--"] + rest[1:] if len(rest) > 1 else opt_args + rest)
    mgr = _mgr(ctx)
    c = mgr.find(ns.container)
    if ns.workdir and not ns.workdir.startswith("/"):
        raise UsageError(f"tcr exec: the working directory must be absolute: {ns.workdir!r}")
    try:
        if ns.detach:
            mgr.exec_detached(c, ns.command, ns.env, ns.user, ns.workdir)
            return Output(0)
        return Output(exec_args=mgr.exec_args(c, ns.command, ns.tty, ns.env, ns.user, ns.workdir))
    except StartFailed as exc:
        return _fail_output(exc, exc.exit_code)


def _split_positional(args: List[str], takes_value: set) -> Any:
    """Options end at the first positional (docker: `exec CTR ls -l` passes -l to ls)."""
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return args[:i], args[i + 1:]
        if not a.startswith("-") or a == "-":
            return args[:i], args[i:]
        if a in takes_value:
            i += 2
            continue
        i += 1
    return args, []


# ---- stop / rm ----------------------------------------------------------------------------------


def _find_each(mgr: Any, refs: List[str]) -> Any:
    """Resolve every name; the bad ones are reported, the good ones still acted on (docker)."""
    found, errors = [], []
    for r in refs:
        try:
            found.append((r, mgr.find(r)))
        except TcrError as exc:
            errors.append(exc)
    return found, errors


def _act_on_each(mgr: Any, refs: List[str], act: Any) -> Output:
    """act(container) on every named container: the bad names and the failures are reported, the
    others still acted on (docker's rm, kill, pause...)."""
    found, errors = _find_each(mgr, refs)
    done = []
    for ref, c in found:
        try:
            act(c)
            done.append(ref)
        except TcrError as exc:
            errors.append(exc)
    return _each_output(done, errors)


def _each_output(done: List[str], errors: List[TcrError]) -> Output:
    """One line per container acted on; one error line per failure; exit 1 if any failed.
    A single failing name keeps its error code (a plain error reply)."""
    if errors and not done and len(errors) == 1:
        raise errors[0]
    return Output(1 if errors else 0, "".join(r + "\n" for r in done),
                  "".join(f"tcr: {e.render()}\n" for e in errors))


def _stop_all(mgr: Any, cs: List[Any], timeout: Optional[int], done: Any) -> None:
    left = {"n": len(cs)}
    if not cs:
        done()
        return

    def one(_code: Optional[int]) -> None:
        left["n"] -= 1
        if left["n"] == 0:
            done()

    for c in cs:
        mgr.stop(c, None if timeout is None else float(timeout), one)


@base.command("stop", "Stop running containers (SIGTERM, then SIGKILL after the timeout)")
def cmd_stop(ctx: Ctx) -> Pending:
    p = Parser("stop", description="Stop one or more running containers.")
    p.add_argument("-t", "--time", "--timeout", dest="time", type=int, default=None, metavar="SECONDS",
                   help="seconds to wait before SIGKILL (default: the container's --stop-timeout)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    ns = p.parse(ctx.args)
    if ns.time is not None and ns.time < 0:
        raise UsageError("tcr stop: the timeout must be >= 0")
    mgr = _mgr(ctx)
    found, errors = _find_each(mgr, ns.containers)
    pending = Pending()
    names = [r for r, _ in found]
    _stop_all(mgr, [c for _, c in found], ns.time,
              lambda: pending.resolve(_each_output(names, errors)))
    return pending


@base.command("rm", "Remove containers")
def cmd_rm(ctx: Ctx) -> Output:
    p = Parser("rm", description="Remove one or more containers.")
    p.add_argument("-f", "--force", action="store_true", help="kill and remove running containers")
    p.add_argument("-v", "--volumes", action="store_true", help="also remove its anonymous volumes")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    ns = p.parse(ctx.args)
    mgr = _mgr(ctx)

    def remove(c: Any) -> None:
        if not ns.force:
            mgr.check_removable(c)
        mgr.remove(c, force=ns.force, volumes=ns.volumes)

    return _act_on_each(mgr, ns.containers, remove)


# ---- `container` noun (docker's `docker container ls` etc.) ------------------------------------

_NOUN = {"ls": "ps", "list": "ps", "ps": "ps", "run": "run", "create": "create", "start": "start",
         "restart": "restart", "exec": "exec", "stop": "stop", "kill": "kill", "rm": "rm",
         "remove": "rm", "logs": "logs", "inspect": "inspect", "wait": "wait", "pause": "pause",
         "unpause": "unpause", "rename": "rename", "update": "update", "top": "top", "stats": "stats",
         "port": "port", "attach": "attach", "cp": "cp", "prune": "_container_prune"}


@base.command("container", "Manage containers (ls, run, stop, rm, logs, inspect ...)")
def cmd_container(ctx: Ctx) -> Any:
    if not ctx.args or ctx.args[0] in ("-h", "--help", "help"):
        from tcr.commands.base import HelpRequested

        raise HelpRequested("usage: tcr container " + "|".join(sorted(set(_NOUN))) + " ...\n")
    verb = _NOUN.get(ctx.args[0])
    if verb is None or verb not in base.COMMANDS:
        raise UsageError(f"tcr container: unknown subcommand {ctx.args[0][:40]!r}")
    sub = Ctx(daemon=ctx.daemon, method=verb, args=ctx.args[1:], pwd=ctx.pwd, pid=ctx.pid, uid=ctx.uid,
              gid=ctx.gid, stream=ctx.stream, channel=ctx.channel, extra=ctx.extra)
    return base.COMMANDS[verb](sub)
