"""Commands that change existing containers: pause, unpause, rename, update (and the prune helper)."""

from __future__ import annotations

from tcr.commands import base
from tcr.commands.base import Ctx, Output, Parser
from tcr.common.errors import TcrError, UsageError

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, List, Optional


def _mgr(ctx: Ctx) -> Any:
    from tcr.commands.containers import _mgr as mgr

    return mgr(ctx)


def _each(ctx: Ctx, prog: str, what: str, act: Any) -> Output:
    from tcr.commands.lifecycle import _act_on_each

    p = Parser(prog, description=what)
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    ns = p.parse(ctx.args)
    mgr = _mgr(ctx)
    return _act_on_each(mgr, ns.containers, lambda c: act(mgr, c))


def _event(ctx: Ctx, c: Any, action: str) -> None:
    events = getattr(ctx.daemon, "events", None)
    if events is not None:
        events.emit("container", action, c.rec.id, {"name": c.rec.name, "image": c.rec.image_ref})


@base.command("pause", "Pause all processes of containers (cgroup freezer)")
def cmd_pause(ctx: Ctx) -> Output:
    def act(mgr: Any, c: Any) -> None:
        mgr.pause(c)
        _event(ctx, c, "pause")

    return _each(ctx, "pause", "Freeze every process of one or more running containers.", act)


@base.command("unpause", "Resume paused containers")
def cmd_unpause(ctx: Ctx) -> Output:
    def act(mgr: Any, c: Any) -> None:
        mgr.unpause(c)
        _event(ctx, c, "unpause")

    return _each(ctx, "unpause", "Thaw one or more paused containers.", act)


@base.command("rename", "Rename a container")
def cmd_rename(ctx: Ctx) -> Output:
    p = Parser("rename", description="Rename a container (its DNS name follows at once).")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("new_name", metavar="NEW_NAME")
    ns = p.parse(ctx.args)
    c = _mgr(ctx).find(ns.container)
    old = c.rec.name
    _mgr(ctx).rename(c, ns.new_name)
    events = getattr(ctx.daemon, "events", None)
    if events is not None:
        events.emit("container", "rename", c.rec.id, {"name": c.rec.name, "oldName": old})
    return Output(0)


@base.command("update", "Change the limits or restart policy of containers")
def cmd_update(ctx: Ctx) -> Output:
    from tcr.containers import resources
    from tcr.containers.runopts import parse_restart

    p = Parser("update", description="Update the resource limits (live) and restart policy of containers.")
    p.add_argument("-m", "--memory", metavar="BYTES", help="memory limit (e.g. 64m)")
    p.add_argument("--cpus", metavar="N", help="number of CPUs (e.g. 0.5)")
    p.add_argument("--pids-limit", metavar="N", help="maximum number of processes (-1: unlimited)")
    p.add_argument("--restart", metavar="POLICY", help="no, on-failure[:N], unless-stopped, always")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    ns = p.parse(ctx.args)
    if all(v is None for v in (ns.memory, ns.cpus, ns.pids_limit, ns.restart)):
        raise UsageError("tcr update: nothing to update",
                         hint="give --memory, --cpus, --pids-limit or --restart")
    memory: Optional[int] = resources.parse_memory(ns.memory) if ns.memory is not None else None
    cpus: Optional[float] = resources.parse_cpus(ns.cpus) if ns.cpus is not None else None
    pids: Optional[int] = None
    if ns.pids_limit is not None:
        parsed = resources.parse_pids(ns.pids_limit)
        pids = -1 if parsed is None else parsed
    restart = parse_restart(ns.restart) if ns.restart is not None else None

    def act(mgr: Any, c: Any) -> None:
        mgr.update(c, memory, cpus, pids, restart)
        _event(ctx, c, "update")

    sub = Ctx(ctx.daemon, "update", list(ns.containers), ctx.pwd, ctx.pid, ctx.uid, ctx.gid)
    return _each(sub, "update", "", act)


def prune_containers(ctx: Ctx, until: Optional[float], labels: List[str]) -> List[str]:
    """Remove every stopped container (created before `until`, matching the labels); their ids."""
    from tcr.commands import views

    mgr = _mgr(ctx)
    gone = []
    for c in list(mgr.list()):
        if c.rec.state not in ("exited", "created"):
            continue
        if until is not None and c.rec.created > until:
            continue
        if labels and not all(views.label_matches(views.labels(c.rec), w) for w in labels):
            continue
        try:
            mgr.remove(c)
            gone.append(c.rec.id)
        except TcrError:
            continue  # went running meanwhile, or its root is busy: not pruned
    return gone


def prune_filters(specs: List[str]) -> Any:
    """docker's prune filters: until=TIME and label=K[=V]."""
    from tcr.commands import views
    from tcr.common.timespec import parse_time

    f = views.parse_filters(specs, ["until", "label"])
    until = min(parse_time(u, "--filter until") for u in f["until"]) if "until" in f else None
    return until, f.get("label", [])
