"""Network commands: network create|ls|rm|inspect, and `networks` (= network ls)."""

from __future__ import annotations

from tcr.commands import base, render
from tcr.commands.base import Ctx, Output, Parser

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Sequence

USAGE = "usage: tcr network create|ls|rm|inspect|prune|connect|disconnect ..."


def _nets(ctx: Ctx) -> Any:
    return ctx.daemon.networks


def network_create(ctx: Ctx, args: List[str]) -> Output:
    p = Parser("network create", description="Create a NAT bridge network.")
    p.add_argument("--subnet", help="IPv4 CIDR (default: the first free 10.88.N.0/24)")
    p.add_argument("-l", "--label", action="append", default=[], metavar="K=V", help="set a label")
    base.add_format(p)
    p.add_argument("name")
    ns = p.parse(args)
    from tcr.commands.volumes import parse_labels

    info = _nets(ctx).create(ns.name, ns.subnet, tuple(parse_labels(ns.label)))
    if ns.format == "json":
        return Output(0, render.as_json(info))
    return Output(0, f"{info['name']}\n")


def network_ls(ctx: Ctx, args: List[str], prog: str = "network ls") -> Output:
    p = Parser(prog, description="List NAT networks.")
    p.add_argument("-q", "--quiet", action="store_true", help="only names")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="label=K[=V]")
    base.add_format(p)
    ns = p.parse(args)
    from tcr.commands.volumes import label_filter

    match = label_filter(ns.filter)
    items = [i for i in _nets(ctx).list() if match(i["labels"])]
    if ns.quiet:
        return Output(0, "".join(i["name"] + "\n" for i in items))

    def table() -> str:
        rows: List[Sequence[Any]] = [[i["name"], i["subnet"], i["gateway"], i["bridge"], i["containers"]]
                                     for i in items]
        return render.table(["NAME", "SUBNET", "GATEWAY", "BRIDGE", "CONTAINERS"], rows)

    return Output(0, render.listing(ns.format, [_docker_names(i) for i in items], table))


def _docker_names(i: Any) -> Any:
    """docker's template names (.Name, .ID, .Driver ...) beside tcr's own keys."""
    d = dict(i)
    d.setdefault("Name", i.get("name", ""))
    d.setdefault("ID", i.get("name", ""))
    d.setdefault("Driver", "bridge")
    d.setdefault("Scope", "local")
    d.setdefault("Subnet", i.get("subnet", ""))
    d.setdefault("Gateway", i.get("gateway", ""))
    return d


def users(ctx: Ctx) -> Dict[str, List[str]]:
    """network -> names of the containers connected to it, running or not (their records)."""
    out: Dict[str, List[str]] = {}
    cm = getattr(ctx.daemon, "containers", None)
    for c in cm.list() if cm is not None else ():
        for e in c.rec.networks:
            out.setdefault(e.network, []).append(c.rec.name)
    return out


def check_unused(ctx: Ctx, name: str) -> None:
    """docker's refusal for a network with connected containers. Stopped ones count too (docker
    lets the network go and their next start fails; tcr keeps what they need)."""
    rec = _nets(ctx).get(name)
    who = list(dict.fromkeys(users(ctx).get(name, []) + [le.name or le.cid[:12] for le in rec.leases]))
    if who:
        from tcr.common.errors import InUse

        more = f" and {len(who) - 5} more" if len(who) > 5 else ""
        raise InUse(f"error while removing network: network {name} has active endpoints "
                    f"({', '.join(who[:5])}{more})",
                    hint=f"disconnect them first ('tcr network disconnect {name} CONTAINER') or remove them")


def network_rm(ctx: Ctx, args: List[str]) -> Output:
    p = Parser("network rm", description="Remove networks (refused while a container uses one).")
    p.add_argument("names", nargs="+", metavar="NAME")
    ns = p.parse(args)
    mgr = _nets(ctx)
    for n in ns.names:  # all must exist and be unused before anything is removed
        check_unused(ctx, n)
    for n in dict.fromkeys(ns.names):
        mgr.remove(n)
    return Output(0, "".join(n + "\n" for n in dict.fromkeys(ns.names)))


def network_connect(ctx: Ctx, args: List[str]) -> Output:
    p = Parser("network connect", description="Connect a container to a network (running: at once, "
               "as a new interface ethN; stopped: at its next start).")
    p.add_argument("--alias", action="append", default=[], metavar="NAME",
                   help="another DNS name of the container on this network")
    p.add_argument("--ip", default=None, metavar="ADDR", help="IPv4 address (default: the lowest free one)")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    ns = p.parse(args)
    from tcr.containers import netconnect

    cm = ctx.daemon.containers
    netconnect.connect(cm, cm.find(ns.container), ns.network, ns.alias, ns.ip)
    return Output(0, "")


def network_disconnect(ctx: Ctx, args: List[str]) -> Output:
    p = Parser("network disconnect", description="Disconnect a container from a network (its "
               "interface, address and DNS names go at once).")
    p.add_argument("-f", "--force", action="store_true", help="no error if it is not connected")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    ns = p.parse(args)
    from tcr.containers import netconnect

    cm = ctx.daemon.containers
    netconnect.disconnect(cm, cm.find(ns.container), ns.network, ns.force)
    return Output(0, "")


def network_inspect(ctx: Ctx, args: List[str]) -> Output:
    p = Parser("network inspect", description="Show a network, its leases and published ports (JSON).")
    p.add_argument("names", nargs="+", metavar="NAME")
    base.add_format(p, short=True)
    ns = p.parse(args)
    mgr = _nets(ctx)
    return Output(0, render.objects(ns.format, [mgr.inspect(n) for n in ns.names]))


def network_prune(ctx: Ctx, args: List[str]) -> Output:
    from tcr.commands.housekeeping import network_prune as prune

    return prune(ctx, args)


HANDLERS = {"create": network_create, "ls": network_ls, "list": network_ls, "rm": network_rm,
            "remove": network_rm, "inspect": network_inspect, "prune": network_prune,
            "connect": network_connect, "disconnect": network_disconnect}


@base.command("network", "Manage NAT networks: create, ls, rm, inspect")
def cmd_network(ctx: Ctx) -> Output:
    return base.subcommand(ctx, "network", HANDLERS, USAGE, (
        "  create [--subnet CIDR] [--label K=V] NAME  create a NAT bridge network\n"
        "  ls                           list networks (--format json, -q)\n"
        "  rm NAME...                   remove networks no container uses\n"
        "  inspect NAME...              details as JSON (leases, published ports)\n"
        "  prune                        remove every network no container uses\n"
        "  connect [--alias A] [--ip ADDR] NETWORK CONTAINER   one more network for a container\n"
        "  disconnect [-f] NETWORK CONTAINER                   take one network away\n"
        "The default network tcr_default (10.88.0.0/24) is created on first use.\n"))


@base.command("networks", "List networks (same as 'network ls')")
def cmd_networks(ctx: Ctx) -> Output:
    return network_ls(ctx, ctx.args, prog="networks")
