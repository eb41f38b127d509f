"""Container commands: run, create, start, restart, exec, ps, stop, kill, rm, logs, inspect, wait.

Handlers parse argv (docker flags), call tcr.containers.manager and render. Waiting commands (stop,
wait, logs -f, restart) return a Pending resolved from the event loop, never block it.
"""

import time
from typing import Any, Dict, List, Optional, Sequence

from tcr.commands import base, render
from tcr.commands.base import Ctx, Output, Parser, Pending
from tcr.common.errors import InternalError, TcrError, UsageError


def _mgr(ctx: Ctx) -> Any:
    mgr = ctx.daemon.containers
    if mgr is None:
        raise InternalError("the container manager is not available in this tcrd")
    return mgr


def _fail_output(exc: TcrError, code: int) -> Output:
    return Output(code, "", f"tcr: {exc.render()}\n")


# ---- run / create / start -----------------------------------------------------------------------


@base.command("run", "Run a command in a new container")
def cmd_run(ctx: Ctx) -> Output:
    from tcr.containers.manager import StartFailed
    from tcr.containers.runopts import parse_run_args

    opts = parse_run_args(ctx.args, ctx.pwd)
    mgr = _mgr(ctx)
    c = mgr.create(opts, interactive=not opts.detach, persist=False)
    try:
        if opts.detach:
            mgr.start(c)
            return Output(0, c.rec.id + "\n")
        return Output(exec_args=mgr.run_interactive(c, ctx.pid))
    except StartFailed as exc:
        # docker keeps a container that failed to start (ps -a shows why), unless --rm.
        _settle_failed(mgr, c, opts.rm, exc.exit_code)
        return _fail_output(exc, exc.exit_code)
    except BaseException:
        # Bad input found late (unknown network, port in use ...): leave nothing behind.
        _settle_failed(mgr, c, True, None)
        raise


def _settle_failed(mgr: Any, c: Any, remove: bool, code: Optional[int]) -> None:
    try:
        if remove:
            mgr.remove(c, force=True)
        else:
            mgr.mark_failed(c, code)
    except TcrError:
        pass


@base.command("create", "Create a new container (start it with 'tcr start')")
def cmd_create(ctx: Ctx) -> Output:
    from tcr.containers.runopts import parse_run_args

    opts = parse_run_args(ctx.args, ctx.pwd, prog="create")
    c = _mgr(ctx).create(opts, interactive=False)
    return Output(0, c.rec.id + "\n")


@base.command("start", "Start stopped containers (detached)")
def cmd_start(ctx: Ctx) -> Output:
    from tcr.containers.manager import StartFailed

    p = Parser("start", description="Start one or more stopped containers, detached.")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    ns = p.parse(ctx.args)
    mgr = _mgr(ctx)
    cs = [mgr.find(r) for r in ns.containers]
    out = []
    for ref, c in zip(ns.containers, cs):
        if c.rec.state == "running":
            out.append(ref)
            continue
        try:
            mgr.user_start(c)
        except StartFailed as exc:
            return Output(exc.exit_code, "".join(o + "\n" for o in out), f"tcr: {exc.render()}\n")
        out.append(ref)
    return Output(0, "".join(o + "\n" for o in out))


@base.command("restart", "Stop then start containers")
def cmd_restart(ctx: Ctx) -> Pending:
    p = Parser("restart", description="Restart one or more containers.")
    p.add_argument("-t", "--time", type=int, default=None, metavar="SECONDS", help="stop timeout")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    ns = p.parse(ctx.args)
    mgr = _mgr(ctx)
    cs = [mgr.find(r) for r in ns.containers]
    pending = Pending()

    def after_stop() -> None:
        errors = []
        for c in cs:
            try:
                mgr.user_start(c)
            except TcrError as exc:
                errors.append(f"tcr: {exc.render()}\n")
        pending.resolve(Output(1 if errors else 0, "".join(r + "\n" for r in ns.containers), "".join(errors)))

    _stop_all(mgr, cs, ns.time, after_stop)
    return pending


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


# ---- ps / inspect -------------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """docker's wording: 'Less than a second', '3 seconds', 'About a minute', '5 minutes' ..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    return f"{h // 24} days"


def status_text(rec: Any, now: float) -> str:
    code = "?" if rec.exit_code is None else str(rec.exit_code)
    if rec.state == "running":
        return f"Up {human_duration(now - rec.started_at)}"
    if rec.state == "restarting":
        return f"Restarting ({code}) {human_duration(now - rec.finished_at)} ago"
    if rec.state == "exited":
        if not rec.finished_at:
            return f"Exited ({code})"
        return f"Exited ({code}) {human_duration(now - rec.finished_at)} ago"
    return rec.state.capitalize()


def _command_text(cmd: Sequence[str], trunc: bool) -> str:
    text = " ".join(cmd)
    if trunc and len(text) > 20:
        text = text[:19] + "…"
    return f'"{text}"'


def _ps_item(c: Any, now: float) -> Dict[str, Any]:
    r = c.rec
    return {
        "Id": r.id,
        "Names": r.name,
        "Image": r.image_ref,
        "ImageId": r.image_id,
        "Command": " ".join(r.command),
        "Created": r.created,
        "State": r.state,
        "Status": status_text(r, now),
        "ExitCode": r.exit_code,
        "Ports": ", ".join(r.net.ports) if r.net else "",
        "Networks": (r.net.network or r.net.mode) if r.net else "",
        "IPAddress": r.net.ip if r.net else "",
        "RestartCount": r.restart_count,
    }


@base.command("ps", "List containers")
def cmd_ps(ctx: Ctx) -> Output:
    p = Parser("ps", description="List containers (running ones unless -a).")
    p.add_argument("-a", "--all", action="store_true", help="show all containers")
    p.add_argument("-q", "--quiet", action="store_true", help="only ids")
    p.add_argument("--no-trunc", action="store_true", help="full ids and commands")
    base.add_format(p)
    ns = p.parse(ctx.args)
    cs = [c for c in _mgr(ctx).list() if ns.all or c.rec.state in ("running", "restarting")]
    if ns.quiet:
        return Output(0, "".join((c.rec.id if ns.no_trunc else c.rec.short_id) + "\n" for c in cs))
    now = time.time()
    if ns.format == "json":
        return Output(0, render.as_json([_ps_item(c, now) for c in cs]))
    rows: List[Sequence[Any]] = [[c.rec.id if ns.no_trunc else c.rec.short_id, c.rec.image_ref,
             _command_text(c.rec.command, not ns.no_trunc), render.human_ago(now - c.rec.created),
             status_text(c.rec, now), ", ".join(c.rec.net.ports) if c.rec.net else "", c.rec.name]
            for c in cs]
    return Output(0, render.table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"],
                                  rows))


@base.command("inspect", "Show container details as JSON")
def cmd_inspect(ctx: Ctx) -> Output:
    p = Parser("inspect", description="Show low-level information on containers (JSON).")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    base.add_format(p)
    ns = p.parse(ctx.args)
    mgr = _mgr(ctx)
    items = []
    for ref in ns.containers:
        c = mgr.find(ref)
        d = c.rec.to_dict()
        d["status"] = status_text(c.rec, time.time())
        d["dir"] = c.paths.dir
        d["bundle"] = c.paths.bundle
        d["logPath"] = c.paths.log
        items.append(d)
    return Output(0, render.as_json(items))


# ---- stop / kill / rm / wait --------------------------------------------------------------------


def _stop_all(mgr: Any, cs: List[Any], timeout: Optional[int], done: Any) -> None:
    left = {"n": len(cs)}

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
    cs = [mgr.find(r) for r in ns.containers]
    pending = Pending()
    _stop_all(mgr, cs, ns.time, lambda: pending.resolve(Output(0, "".join(r + "\n" for r in ns.containers))))
    return pending


@base.command("kill", "Send a signal to running containers (default SIGKILL)")
def cmd_kill(ctx: Ctx) -> Output:
    from tcr.containers.runopts import parse_signal

    p = Parser("kill", description="Kill one or more running containers.")
    p.add_argument("-s", "--signal", default="SIGKILL", metavar="SIGNAL")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    ns = p.parse(ctx.args)
    sig = parse_signal(ns.signal)
    mgr = _mgr(ctx)
    cs = [mgr.find(r) for r in ns.containers]
    for c in cs:
        mgr.kill(c, sig)
    return Output(0, "".join(r + "\n" for r in ns.containers))


@base.command("rm", "Remove containers")
def cmd_rm(ctx: Ctx) -> Output:
    p = Parser("rm", description="Remove one or more containers.")
    p.add_argument("-f", "--force", action="store_true", help="kill and remove running containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    ns = p.parse(ctx.args)
    mgr = _mgr(ctx)
    cs = [mgr.find(r) for r in ns.containers]
    if not ns.force:
        for c in cs:
            mgr.check_removable(c)
    for c in cs:
        mgr.remove(c, force=ns.force)
    return Output(0, "".join(r + "\n" for r in ns.containers))


@base.command("wait", "Wait for containers to stop, print their exit codes")
def cmd_wait(ctx: Ctx) -> Pending:
    p = Parser("wait", description="Block until containers stop, then print their exit codes.")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    ns = p.parse(ctx.args)
    mgr = _mgr(ctx)
    cs = [mgr.find(r) for r in ns.containers]
    pending = Pending()
    codes: List[Optional[int]] = [None] * len(cs)
    left = {"n": len(cs)}
    cancels = []

    def make(i: int) -> Any:
        def got(code: Optional[int]) -> None:
            codes[i] = code
            left["n"] -= 1
            if left["n"] == 0:
                pending.resolve(Output(0, "".join(f"{-1 if c is None else c}\n" for c in codes)))

        return got

    for i, c in enumerate(cs):
        cancels.append(mgr.on_exit(c, make(i)))
    def cancel_all() -> None:
        for cancel in cancels:
            cancel()

    pending.on_cancel = cancel_all
    return pending


# ---- logs ---------------------------------------------------------------------------------------


@base.command("logs", "Show a container's output")
def cmd_logs(ctx: Ctx) -> Any:
    from tcr.containers import logs as clogs

    p = Parser("logs", description="Show the output of a detached container.")
    p.add_argument("-f", "--follow", action="store_true", help="keep streaming until the container stops")
    p.add_argument("-n", "--tail", default="all", metavar="N", help="only the last N lines")
    p.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    p.add_argument("container", metavar="CONTAINER")
    ns = p.parse(ctx.args)
    tail: Optional[int] = None
    if ns.tail != "all":
        if not ns.tail.isdigit():
            raise UsageError(f"tcr logs: invalid --tail {ns.tail!r}: use a number or 'all'")
        tail = int(ns.tail)
    c = _mgr(ctx).find(ns.container)
    if c.pump is not None:
        c.pump.drain()  # what the container wrote just now is part of the answer
    records = clogs.read_lines(c.paths.log, c.opts.log_max_files, tail)
    text = clogs.format_lines(records, ns.timestamps)
    pump = c.pump
    if not ns.follow or ctx.stream is None or pump is None or c.rec.state != "running":
        return Output(0, text)
    stream = ctx.stream
    stream("stdout", text)
    pending = Pending()

    def follower(blob: Optional[bytes]) -> None:
        if blob is None:
            pending.resolve(Output(0))
            return
        recs = blob.decode("utf-8", errors="replace").splitlines()
        stream("stdout", clogs.format_lines(recs, ns.timestamps))

    pump.followers.append(follower)

    def cancel() -> None:
        if follower in pump.followers:
            pump.followers.remove(follower)

    pending.on_cancel = cancel
    return pending


# ---- `container` noun (docker's `docker container ls` etc.) ------------------------------------

_NOUN = {"ls": "ps", "list": "ps", "ps": "ps", "run": "run", "create": "create", "start": "start",
         "restart": "restart", "exec": "exec", "stop": "stop", "kill": "kill", "rm": "rm",
         "remove": "rm", "logs": "logs", "inspect": "inspect", "wait": "wait"}


@base.command("container", "Manage containers (ls, run, stop, rm, logs, inspect ...)")
def cmd_container(ctx: Ctx) -> Any:
    if not ctx.args or ctx.args[0] in ("-h", "--help", "help"):
        from tcr.commands.base import HelpRequested

        raise HelpRequested("usage: tcr container " + "|".join(sorted(set(_NOUN))) + " ...\n")
    verb = _NOUN.get(ctx.args[0])
    if verb is None:
        raise UsageError(f"tcr container: unknown subcommand {ctx.args[0][:40]!r}")
    sub = Ctx(daemon=ctx.daemon, method=verb, args=ctx.args[1:], pwd=ctx.pwd, pid=ctx.pid, uid=ctx.uid,
              gid=ctx.gid, stream=ctx.stream, extra=ctx.extra)
    return base.COMMANDS[verb](sub)
