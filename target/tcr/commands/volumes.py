"""Volume commands: volume create|ls|inspect|rm|prune, and `volumes` (= volume ls)."""

from __future__ import annotations

from tcr.commands import base, render
from tcr.commands.base import Ctx, Output, Parser
from tcr.common.errors import InternalError

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, List, Sequence

USAGE = "usage: tcr volume create|ls|inspect|rm|prune ..."


def _vols(ctx: Ctx) -> Any:
    mgr = ctx.daemon.containers
    if mgr is None:
        raise InternalError("the container manager is not available in this tcrd")
    return mgr.volumes


def parse_labels(items: List[str]) -> List[Any]:
    from tcr.containers.runopts import parse_label

    return [tuple(parse_label(x).split("=", 1)) for x in items]


def label_filter(filters: List[str]) -> Any:
    """docker's --filter label=KEY[=VALUE] (all must match); other filters are refused."""
    from tcr.common.errors import InvalidArgument

    want = []
    for f in filters:
        k, eq, v = f.partition("=")
        if k != "label" or not eq or not v:
            raise InvalidArgument(f"unsupported filter {f!r}", hint="use --filter label=KEY[=VALUE]")
        lk, leq, lv = v.partition("=")
        want.append((lk, lv if leq else None))

    def match(labels: dict) -> bool:
        return all(k in labels and (v is None or labels[k] == v) for k, v in want)

    return match


def volume_create(ctx: Ctx, args: List[str]) -> Output:
    p = Parser("volume create", description="Create a named volume (a no-op if it exists).")
    p.add_argument("-l", "--label", action="append", default=[], metavar="K=V")
    p.add_argument("name", nargs="?", metavar="NAME")
    ns = p.parse(args)
    rec = _vols(ctx).create(ns.name, parse_labels(ns.label), anonymous=not ns.name)
    return Output(0, rec.name + "\n")


def volume_ls(ctx: Ctx, args: List[str], prog: str = "volume ls") -> Output:
    p = Parser(prog, description="List volumes.")
    p.add_argument("-q", "--quiet", action="store_true", help="only names")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="label=K[=V]")
    base.add_format(p)
    ns = p.parse(args)
    mgr = _vols(ctx)
    match = label_filter(ns.filter)
    items = [i for i in mgr.list() if match(i["Labels"])]
    if ns.quiet:
        return Output(0, "".join(i["Name"] + "\n" for i in items))

    def table() -> str:
        rows: List[Sequence[Any]] = [[i["Driver"], i["Name"]] for i in items]
        return render.table(["DRIVER", "VOLUME NAME"], rows)

    return Output(0, render.listing(ns.format, items, table, {"Name": "VOLUME NAME"}))


def volume_inspect(ctx: Ctx, args: List[str]) -> Output:
    p = Parser("volume inspect", description="Show volumes as JSON (or -f TEMPLATE).")
    p.add_argument("names", nargs="+", metavar="NAME")
    base.add_format(p, short=True)
    ns = p.parse(args)
    mgr = _vols(ctx)
    return Output(0, render.objects(ns.format, [mgr.inspect(n) for n in ns.names]))


def volume_rm(ctx: Ctx, args: List[str]) -> Output:
    p = Parser("volume rm", description="Remove volumes (refused while a container uses one).")
    p.add_argument("-f", "--force", action="store_true", help="no error for a missing volume")
    p.add_argument("names", nargs="+", metavar="NAME")
    ns = p.parse(args)
    mgr = _vols(ctx)
    names = list(dict.fromkeys(ns.names))
    if ns.force:
        names = [n for n in names if n in mgr.vols]
    for n in names:  # all must exist and be unused before anything is removed
        mgr.get(n)
        if mgr.used_by(n):
            mgr.remove(n)  # raises InUse with the details
    for n in names:
        mgr.remove(n)
    return Output(0, "".join(n + "\n" for n in names))


def volume_prune(ctx: Ctx, args: List[str]) -> Output:
    p = Parser("volume prune", description="Remove unused anonymous volumes (-a: all unused volumes).")
    p.add_argument("-a", "--all", action="store_true", help="also unused named volumes")
    p.add_argument("-f", "--force", action="store_true", help="accepted for docker compatibility")
    ns = p.parse(args)
    gone = _vols(ctx).prune(ns.all)
    return Output(0, "Deleted Volumes:\n" + "".join(n + "\n" for n in gone) if gone else "")


HANDLERS = {"create": volume_create, "ls": volume_ls, "list": volume_ls, "inspect": volume_inspect,
            "rm": volume_rm, "remove": volume_rm, "prune": volume_prune}


@base.command("volume", "Manage volumes: create, ls, inspect, rm, prune")
def cmd_volume(ctx: Ctx) -> Output:
    return base.subcommand(ctx, "volume", HANDLERS, USAGE, (
        "  create [--label K=V] [NAME]  create a volume under the state root\n"
        "  ls                           list volumes (--format json, -q, --filter label=K[=V])\n"
        "  inspect NAME...              details as JSON (mount point, labels, users)\n"
        "  rm [-f] NAME...              remove volumes no container uses\n"
        "  prune [-a]                   remove unused anonymous (-a: all unused) volumes\n"))


@base.command("volumes", "List volumes (same as 'volume ls')")
def cmd_volumes(ctx: Ctx) -> Output:
    return volume_ls(ctx, ctx.args, prog="volumes")
