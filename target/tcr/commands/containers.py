"""Container commands: run, create, start, exec, ps, stop, rm, logs, inspect (attach, restart,
port, kill and wait: tcr.commands.occasional, loaded on first use).

Handlers parse argv (docker flags), call tcr.containers.manager and render. Waiting commands (stop,
wait, logs -f, restart) return a Pending resolved from the event loop, never block it.
"""

from __future__ import annotations

import os
import time

from tcr.commands import base, render
from tcr.commands.base import Ctx, Output, Parser, Pending
from tcr.common.errors import InternalError, TcrError, UsageError, shorten_echoes

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Sequence


def _mgr(ctx: Ctx) -> Any:
    mgr = ctx.daemon.containers
    if mgr is None:
        raise InternalError("the container manager is not available in this tcrd")
    return mgr


def _fail_output(exc: TcrError, code: int) -> Output:
    return Output(code, "", f"tcr: {exc.render()}\n")


# ---- run / create / start -----------------------------------------------------------------------


def _parse_in_worker(args: List[str], pwd: str, prog: str) -> Dict[str, Any]:
    """Runs in the forked worker: the flag parser (tcr.containers.runopts, ~100 kB of code and a
    cached parser) is imported there and goes away with it. --help is a reply, not an error."""
    from tcr.commands.base import HelpRequested
    from tcr.containers.runopts import parse_run_args

    try:
        return {"opts": parse_run_args(args, pwd, prog=prog).to_dict()}
    except HelpRequested as h:
        return {"help": h.text}
    except TcrError as exc:  # what dispatch does to an error raised in tcrd: bad input echoed short
        exc.message = shorten_echoes(exc.message, args)
        if exc.hint:
            exc.hint = shorten_echoes(exc.hint, args)
        raise


def _with_options(ctx: Ctx, prog: str, then: Callable[[Any], Any]) -> Any:
    """then(RunOptions of ctx.args) -> the reply, the flags parsed in a forked worker (a Pending);
    errors reach the client as dispatch would send them (class, code, hint, short echoes)."""
    from tcr.containers.runrecord import RunOptions
    from tcr.daemon import worker

    loop = getattr(ctx.daemon, "loop", None)
    if loop is None or worker.running() >= worker.MAX_JOBS:
        # No loop (a test's daemon), or every worker slot taken by image loads and the like: parse
        # here rather than refuse the run (this daemon then holds the parser; rare).
        from tcr.containers.runopts import parse_run_args

        return then(parse_run_args(ctx.args, ctx.pwd, prog=prog))

    def finish(result: Any) -> Any:
        if isinstance(result, dict) and isinstance(result.get("help"), str):
            return Output(0, result["help"])
        if not isinstance(result, dict) or not isinstance(result.get("opts"), dict):
            raise InternalError(f"{prog}: the options worker sent an unexpected reply")
        try:
            return then(RunOptions.from_dict(result["opts"]))
        except TcrError as exc:
            exc.message = shorten_echoes(exc.message, ctx.args)
            if exc.hint:
                exc.hint = shorten_echoes(exc.hint, ctx.args)
            raise
        except OSError as exc:  # as dispatch: a full disk is one clear line, not "internal error"
            from tcr.common import oserrors

            err = oserrors.to_error(exc)
            err.message = shorten_echoes(err.message, ctx.args)
            raise err from None

    # Read-only until `then`: a client that goes away during the parse kills the worker.
    return worker.pending(loop, _parse_in_worker, (list(ctx.args), ctx.pwd, prog), what=f"{prog} options",
                          then=finish, timeout=60, cancel_on_disconnect=True)


@base.command("run", "Run a command in a new container")
def cmd_run(ctx: Ctx) -> Any:
    return _with_options(ctx, "run", lambda opts: _run(ctx, opts))


def _run(ctx: Ctx, opts: Any) -> Any:
    from tcr.containers.manager import StartFailed

    mgr = _mgr(ctx)
    # A client without the attach channel (the C client, the compat socket) still gets execArgs.
    compat = not opts.detach and ctx.channel is None
    c = mgr.create(opts, interactive=compat, persist=False)

    def start(seed_error: Optional[TcrError]) -> Any:
        try:
            if seed_error is not None:
                raise seed_error
            if compat:
                return Output(exec_args=mgr.run_interactive(c, ctx.pid))
            mgr.start(c, winsize=None if ctx.channel is None else ctx.channel.winsize,
                      attached=not opts.detach)
        except StartFailed as exc:
            # docker keeps a container that failed to start (ps -a shows why), unless --rm.
            _settle_failed(mgr, c, opts.rm, exc.exit_code)
            return _fail_output(exc, exc.exit_code)
        except BaseException:
            # Bad input found late (unknown network, port in use ...): leave nothing behind.
            _settle_failed(mgr, c, True, None)
            raise
        if opts.detach:
            return Output(0, c.rec.id + "\n")
        return _attach(mgr, c, ctx.channel, stdin=opts.interactive, stdin_once=True)

    return _seeded_first(mgr, [] if compat else [c], start)


def _seeded_first(mgr: Any, cs: List[Any], then: Callable[[Optional[TcrError]], Any]) -> Any:
    """then(None) at once when no container of cs has a new volume to fill from its image; else a
    Pending: the volumes are seeded in workers (one after the other), then the reply is then(None),
    or then(the StartFailed) if a copy failed."""
    if not any(mgr.needs_seeding(c) for c in cs):
        return then(None)
    pending = Pending()
    todo = list(cs)

    def step(err: Optional[TcrError]) -> None:
        while err is None and todo:
            if mgr.seed_volumes(todo.pop(0), step):
                return
        try:
            out = then(err)
        except TcrError as exc:
            pending.fail(exc)
            return
        except Exception as exc:  # a full disk too: the client always gets its answer
            from tcr.common import oserrors

            pending.fail(oserrors.to_error(exc))
            return
        if isinstance(out, Pending):
            out.bind(pending.resolve)
            pending.on_cancel = out.cancel
        else:
            pending.resolve(out)

    step(None)
    return pending


def _attach(mgr: Any, c: Any, channel: Any, stdin: bool, stdin_once: bool,
            detach_keys: Optional[bytes] = None, sig_proxy: bool = True) -> Pending:
    """Connect the client's data channel to c; the reply is c's exit code (docker's)."""
    from tcr.containers import attach

    keys = attach.parse_detach_keys(attach.DEFAULT_DETACH_KEYS) if detach_keys is None else detach_keys
    pending = Pending()

    def done(code: Optional[int]) -> None:
        err = c.rec.error  # a start error crun reported at its exit (manager._on_crun_exit)
        pending.resolve(Output(-1 if code is None else code, "", f"tcr: {err}\n" if err else ""))

    s = attach.Session(mgr, c, channel, stdin, stdin_once, keys, sig_proxy, done)
    pending.on_cancel = s.cancel
    s.start()
    if c.rec.state != "running":  # it exited while we were setting up
        s.end(c.rec.exit_code)
    return pending


def _settle_failed(mgr: Any, c: Any, remove: bool, code: Optional[int]) -> None:
    """Never leave a half-made container behind (a phantom "Created" one holding the name)."""
    try:
        if remove:
            mgr.remove(c, force=True)
        else:
            mgr.mark_failed(c, code)
    except Exception as exc:  # the run's own error is what the client sees
        from tcr.common import oserrors
        from tcr.common.log import get_logger

        get_logger("tcr.containers").warning("container %s: cleaning up a failed run: %s",
                                                    c.rec.id[:12], oserrors.describe(exc))


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


def _health(c: Any) -> str:
    return c.health.status if getattr(c, "health", None) is not None else ""


def status_text(rec: Any, now: float, paused: bool = False, health: str = "") -> str:
    code = "?" if rec.exit_code is None else str(rec.exit_code)
    if rec.state == "running":
        tail = " (Paused)" if paused else (f" (health: {health})" if health == "starting"
                                          else f" ({health})" if health else "")
        return f"Up {human_duration(now - rec.started_at)}" + tail
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


PS_FILTERS = ["status", "name", "id", "label", "ancestor", "network", "exited", "before", "since"]
PS_HEADERS = {"ID": "CONTAINER ID", "RunningFor": "CREATED", "CreatedAt": "CREATED AT", "Names": "NAMES"}


def _image_shown(ctx: Ctx, rec: Any) -> str:
    """The image as ps shows it: its reference while that still names the container's image,
    else the image id (docker, after a newer image took the tag)."""
    images = getattr(ctx.daemon, "images", None)
    if images is not None:
        try:
            if images.get(rec.image_ref).id == rec.image_id:
                return rec.image_ref
        except TcrError:
            pass
        return rec.image_id[:12]
    return rec.image_ref


def _ancestor_ids(ctx: Ctx, ref: str) -> set:
    images = getattr(ctx.daemon, "images", None)
    ids = set()
    if images is not None:
        try:
            ids.add(images.get(ref).id)
        except TcrError:
            pass
    return ids


def _ps_filter(ctx: Ctx, cs: List[Any], filters: Dict[str, List[str]]) -> List[Any]:
    from tcr.commands import views

    def ok(c: Any) -> bool:
        r = c.rec
        for key, wanted in filters.items():
            if key == "status":
                hit = ("paused" if c.paused else views.docker_status(r)) in wanted
            elif key == "name":
                hit = any(w in r.name for w in wanted)
            elif key == "id":
                hit = any(r.id.startswith(w) for w in wanted)
            elif key == "label":
                hit = any(views.label_matches(views.labels(r), w) for w in wanted)
            elif key == "ancestor":
                hit = any(r.image_id.startswith(w) or r.image_ref == w or r.image_id in _ancestor_ids(ctx, w)
                          for w in wanted)
            elif key == "network":
                hit = any(n in wanted for n in views.network_names(r))
            elif key == "exited":
                hit = r.state == "exited" and r.exit_code in [views.optional_int(w) for w in wanted]
            else:  # before / since: relative to another container's creation
                times = [_mgr(ctx).find(w).rec.created for w in wanted]
                hit = all((r.created < t) if key == "before" else (r.created > t) for t in times)
            if not hit:
                return False
        return True

    return [c for c in cs if ok(c)]


@base.command("ps", "List containers")
def cmd_ps(ctx: Ctx) -> Output:
    from tcr.commands import views

    p = Parser("ps", description="List containers (running ones unless -a).")
    p.add_argument("-a", "--all", action="store_true", help="show all containers")
    p.add_argument("-q", "--quiet", action="store_true", help="only ids")
    p.add_argument("--no-trunc", action="store_true", help="full ids and commands")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="status, name, id, label, ancestor, network, exited, before, since")
    p.add_argument("-n", "--last", type=int, default=-1, metavar="N", help="the N last created (all states)")
    p.add_argument("-l", "--latest", action="store_true", help="the last created (all states)")
    base.add_format(p)
    ns = p.parse(ctx.args)
    filters = views.parse_filters(ns.filter, PS_FILTERS)
    every = ns.all or "status" in filters or "exited" in filters or ns.latest or ns.last >= 0
    cs = [c for c in _mgr(ctx).list() if every or c.rec.state in ("running", "restarting", "paused")]
    cs = _ps_filter(ctx, cs, filters)
    if ns.latest or ns.last >= 0:
        cs = sorted(cs, key=lambda c: c.rec.created, reverse=True)[: 1 if ns.latest else ns.last]
    if ns.quiet:
        return Output(0, "".join((c.rec.id if ns.no_trunc else c.rec.short_id) + "\n" for c in cs))
    now = time.time()
    items = [views.ps_item(c, now, status_text(c.rec, now, c.paused, _health(c)), _image_shown(ctx, c.rec))
             for c in cs]

    def table() -> str:
        rows: List[Sequence[Any]] = [
            [c.rec.id if ns.no_trunc else c.rec.short_id, i["Image"],
             _command_text(c.rec.command, not ns.no_trunc), i["RunningFor"], i["Status"], i["Ports"],
             c.rec.name] for c, i in zip(cs, items)]
        return render.table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], rows)

    return Output(0, render.listing(ns.format, items, table, PS_HEADERS))


@base.command("inspect", "Show details of containers, images, networks or volumes as JSON")
def cmd_inspect(ctx: Ctx) -> Output:
    p = Parser("inspect", description="Show low-level information on any tcr object (JSON, or -f TEMPLATE).")
    p.add_argument("--type", choices=["container", "image", "network", "volume"], default=None,
                   help="only look for this kind of object")
    base.add_format(p, short=True)
    p.add_argument("refs", nargs="+", metavar="NAME|ID")
    ns = p.parse(ctx.args)
    items, errors = [], []
    for ref in ns.refs:
        try:
            items.append(inspect_any(ctx, ref, ns.type))
        except TcrError as exc:
            errors.append(exc)
    text = render.objects(ns.format, items)
    if errors:
        return Output(1, text, "".join(f"tcr: {e.render()}\n" for e in errors))
    return Output(0, text)


def inspect_any(ctx: Ctx, ref: str, kind: Optional[str]) -> Dict[str, Any]:
    """Find `ref` among containers, then images, networks and volumes (docker's order)."""
    from tcr.commands import views
    from tcr.common.errors import ContainerNotFound

    first: Optional[TcrError] = None
    if kind in (None, "container"):
        try:
            c = _mgr(ctx).find(ref)
            return views.container_inspect(c, status_text(c.rec, time.time(), c.paused, _health(c)),
                                           {"dir": c.paths.dir, "bundle": c.paths.bundle, "log": c.paths.log,
                                            "volumes": os.path.join(_mgr(ctx).root, "volumes")})
        except TcrError as exc:
            first = exc
    if kind in (None, "image") and getattr(ctx.daemon, "images", None) is not None:
        from tcr.commands.images import inspect_item

        try:
            return inspect_item(ctx.daemon.images, ctx.daemon.images.get(ref))
        except TcrError as exc:
            first = first or exc
    if kind in (None, "network") and getattr(ctx.daemon, "networks", None) is not None:
        try:
            return ctx.daemon.networks.inspect(ref)
        except TcrError as exc:
            first = first or exc
    if kind in (None, "volume") and getattr(ctx.daemon, "volumes", None) is not None:
        try:
            return ctx.daemon.volumes.inspect(ref)
        except TcrError as exc:
            first = first or exc
    if kind is None:
        raise ContainerNotFound(f"no such object: {ref[:64]}")
    raise first or ContainerNotFound(f"no such {kind}: {ref[:64]}")


# ---- stop / kill / rm / wait --------------------------------------------------------------------


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


# ---- logs ---------------------------------------------------------------------------------------


@base.command("logs", "Show a container's output")
def cmd_logs(ctx: Ctx) -> Any:
    from tcr.containers import logstream

    p = Parser("logs", description="Show a container's output (stdout and stderr apart).")
    p.add_argument("-f", "--follow", action="store_true", help="keep streaming until the container stops")
    p.add_argument("-n", "--tail", default="all", metavar="N", help="only the last N lines")
    p.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    p.add_argument("--since", metavar="TIME", help="only after TIME (RFC 3339, Unix time or 10m)")
    p.add_argument("--until", metavar="TIME", help="only before TIME (RFC 3339, Unix time or 10m)")
    p.add_argument("container", metavar="CONTAINER")
    ns = p.parse(ctx.args)
    tail: Optional[int] = None
    if ns.tail != "all":
        if not ns.tail.isdigit():
            raise UsageError(f"tcr logs: invalid --tail {ns.tail!r}: use a number or 'all'")
        tail = int(ns.tail)
    since = None if ns.since is None else logstream.parse_time(ns.since, "--since")
    until = None if ns.until is None else logstream.parse_time(ns.until, "--until")
    c = _mgr(ctx).find(ns.container)
    if c.opts.log_driver != "file":
        hint = "see the board's syslog" if c.opts.log_driver == "syslog" else None
        raise UsageError(f"tcr logs: container {c.rec.name} logs to {c.opts.log_driver}, which tcr cannot "
                         "read back", hint=hint)
    if c.pump is not None and not c.pump.paused:
        c.pump.drain()  # what the container wrote just now is part of the answer (bounded)
    reader = logstream.LogReader(c.paths.log, c.opts.log_max_files, tail)
    fmt = logstream.Formatter(ns.timestamps, since, until)
    follow = ns.follow and c.pump is not None and c.rec.state == "running" and until is None
    if ctx.channel is None:  # a client without the data channel: one bounded reply
        kept, cut = logstream.collect(reader, fmt, 384 * 1024)
        note = "tcr: only the end of the log fits in one reply; tcr's own client streams all of it\n"
        out = b"".join(kept["stdout"]).decode("utf-8", "replace")
        err = b"".join(kept["stderr"]).decode("utf-8", "replace") + (note if cut else "")
        if not follow or ctx.stream is None:
            return Output(0, out, err)
        return _follow_text(ctx.stream, c.pump, fmt, out, err)  # the older `stream` extension
    pending = Pending()
    s = logstream.Streamer(ctx.daemon.loop, ctx.channel, reader, fmt, c.pump if follow else None,
                           lambda code: pending.resolve(Output(code)))
    pending.on_cancel = s.cancel
    s.start()
    return pending


def _follow_text(stream: Any, pump: Any, fmt: Any, out: str, err: str) -> Pending:
    """logs -f for a client of the `stream` extension without the attach channel (compose's
    follower, older clients): text stream messages per stream, until the container stops."""
    stream("stdout", out)
    stream("stderr", err)
    pending = Pending()

    def follower(blob: Optional[bytes]) -> None:
        if blob is None:
            pending.resolve(Output(0))
            return
        for kind, data in fmt.format(blob):
            stream(kind, data.decode("utf-8", "replace"))

    pump.followers.append(follower)

    def cancel() -> None:
        if follower in pump.followers:
            pump.followers.remove(follower)

    pending.on_cancel = cancel
    return pending


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
