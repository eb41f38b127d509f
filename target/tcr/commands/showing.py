"""Container commands that show: ps, inspect (any object type) and logs.

Loaded by their first command (tcr.commands.dispatch.LAZY_COMMANDS): an idle tcrd that only ran
containers does not hold them (docs/profile.md).
"""

from __future__ import annotations

import os
import time

from tcr.commands import base, render
from tcr.commands.base import Ctx, Output, Parser, Pending
from tcr.commands.containers import _mgr
from tcr.common.errors import TcrError, UsageError

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence


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
        from tcr.commands.imageops import inspect_item

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
