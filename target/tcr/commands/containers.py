"""The container command an idle tcrd keeps: run, and what create, start and the others share
with it (the options worker, volume seeding, attaching). The rest load on first use
(tcr.commands.dispatch.LAZY_COMMANDS): ps, inspect and logs in tcr.commands.showing; create, start,
exec, stop, rm and `container` in tcr.commands.lifecycle; attach, restart, port, kill and wait in
tcr.commands.occasional.

Handlers parse argv (docker flags), call tcr.containers.manager and render. Waiting commands (stop,
wait, logs -f, restart) return a Pending resolved from the event loop, never block it.
"""

from __future__ import annotations

from tcr.commands import base
from tcr.commands.base import Ctx, Output, Pending
from tcr.common.errors import InternalError, TcrError, shorten_error

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional


def _mgr(ctx: Ctx) -> Any:
    mgr = ctx.daemon.containers
    if mgr is None:
        raise InternalError("the container manager is not available in this tcrd")
    return mgr


def _fail_output(exc: TcrError, code: int) -> Output:
    return Output(code, "", f"tcr: {exc.render()}\n")


# ---- run -----------------------------------------------------------------------------------------


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
        raise shorten_error(exc, args)


def _with_options(ctx: Ctx, prog: str, then: Callable[[Any], Any]) -> Any:
    """then(RunOptions of ctx.args) -> the reply, the flags parsed in a forked worker (a Pending);
    errors reach the client as dispatch would send them (class, code, hint, short echoes)."""
    from tcr.containers.runrecord import RunOptions
    from tcr.daemon import worker

    loop = getattr(ctx.daemon, "loop", None)
    if not worker.has_room(loop):
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
            raise shorten_error(exc, ctx.args)
        except OSError as exc:  # as dispatch: a full disk is one clear line, not "internal error"
            from tcr.common import oserrors

            raise shorten_error(oserrors.to_error(exc), ctx.args) from None

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
