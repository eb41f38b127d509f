"""Container commands used now and then: attach, restart, port, kill, wait.

Loaded by their first command (tcr.commands.dispatch.LAZY_COMMANDS): an idle tcrd that only ran,
listed, stopped and removed containers does not hold them (docs/profile.md). The helpers they
share with the everyday commands stay in tcr.commands.containers (run) and
tcr.commands.lifecycle (stop, rm).
"""

from __future__ import annotations

from tcr.commands import base, render
from tcr.commands.base import Ctx, Output, Parser, Pending
from tcr.commands.containers import _attach, _mgr, _seeded_first
from tcr.commands.lifecycle import _act_on_each, _stop_all
from tcr.common.errors import TcrError, UsageError

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, List, Optional


@base.command("attach", "Attach to a running container's output (and stdin with -i)")
def cmd_attach(ctx: Ctx) -> Any:
    from tcr.containers.attach import DEFAULT_DETACH_KEYS, parse_detach_keys

    p = Parser("attach", description="Attach the terminal to a running container; the detach keys "
                                     "(default ctrl-p,ctrl-q) leave it running.")
    p.add_argument("--no-stdin", action="store_true", help="do not attach stdin")
    p.add_argument("--sig-proxy", default="true", choices=["true", "false"],
                   help="forward the signals tcr gets to the container (not with -t)")
    p.add_argument("--detach-keys", metavar="KEYS", default=DEFAULT_DETACH_KEYS)
    p.add_argument("container", metavar="CONTAINER")
    ns = p.parse(ctx.args)
    mgr = _mgr(ctx)
    c = mgr.find(ns.container)
    if c.rec.state != "running":
        raise UsageError(f"tcr attach: container {c.rec.name} is not running",
                         hint="start it with 'tcr start -a'")
    if ctx.channel is None:
        raise UsageError("tcr attach: this client cannot attach", hint="use tcr's own client")
    return _attach(mgr, c, ctx.channel, stdin=not ns.no_stdin and c.opts.interactive,
                   stdin_once=not c.opts.detach, detach_keys=parse_detach_keys(ns.detach_keys),
                   sig_proxy=ns.sig_proxy == "true")


@base.command("restart", "Stop then start containers")
def cmd_restart(ctx: Ctx) -> Pending:
    p = Parser("restart", description="Restart one or more containers.")
    p.add_argument("-t", "--time", type=int, default=None, metavar="SECONDS", help="stop timeout")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    ns = p.parse(ctx.args)
    mgr = _mgr(ctx)
    cs = [mgr.find(r) for r in ns.containers]
    pending = Pending()

    def start_all(seed_error: Optional[TcrError]) -> Output:
        errors = []
        for c in cs:
            try:
                if seed_error is not None:
                    raise seed_error
                mgr.user_start(c)
            except Exception as exc:  # a full disk too: the client always gets its answer
                from tcr.common import oserrors

                errors.append(f"tcr: {oserrors.to_error(exc).render()}\n")
        return Output(1 if errors else 0, "".join(r + "\n" for r in ns.containers), "".join(errors))

    def after_stop() -> None:
        out = _seeded_first(mgr, cs, start_all)  # a container created but never started: its volumes
        if isinstance(out, Pending):
            out.bind(pending.resolve)
        else:
            pending.resolve(out)

    _stop_all(mgr, cs, ns.time, after_stop)
    return pending


@base.command("port", "List a container's published ports")
def cmd_port(ctx: Ctx) -> Output:
    p = Parser("port", description="List port mappings of a container, or the one of PRIVATE_PORT.")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("private", nargs="?", metavar="PRIVATE_PORT[/PROTO]")
    base.add_format(p)
    ns = p.parse(ctx.args)
    c = _mgr(ctx).find(ns.container)
    nets = ctx.daemon.networks
    att = nets.attachment(c.rec.id) if nets is not None and c.rec.state == "running" else None
    maps = list(att.ports) if att is not None else []
    if ns.private:
        port, _, proto = ns.private.partition("/")
        if not port.isdigit() or (proto or "tcp") not in ("tcp", "udp"):
            raise UsageError(f"tcr port: invalid port {ns.private!r}", hint="use PORT[/tcp|udp]")
        maps = [m for m in maps if m.container_port == int(port) and m.proto == (proto or "tcp")]
        if not maps:
            raise UsageError(f"no public port '{port}/{proto or 'tcp'}' published for {c.rec.name}")
    if ns.format == "json":
        return Output(0, render.as_json([m.to_dict() for m in maps]))
    lines = [(f"{m.container_port}/{m.proto} -> " if not ns.private else "")
             + f"{m.host_ip or '0.0.0.0'}:{m.host_port}" for m in maps]
    return Output(0, "".join(ln + "\n" for ln in lines))


@base.command("kill", "Send a signal to running containers (default SIGKILL)")
def cmd_kill(ctx: Ctx) -> Output:
    from tcr.common import signames

    p = Parser("kill", description="Kill one or more running containers.")
    p.add_argument("-s", "--signal", default="SIGKILL", metavar="SIGNAL")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    ns = p.parse(ctx.args)
    sig = signames.parse(ns.signal)
    mgr = _mgr(ctx)
    return _act_on_each(mgr, ns.containers, lambda c: mgr.kill(c, sig))


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
