"""Seeing inside a board: `tcr stats`, `tcr top`, `tcr events`.

stats reads the containers' cgroups (v1, v2, hybrid) and netns counters; its streaming form
redraws once a second from a timer that exists only while a client watches. top lists the
container's processes as the host sees them. events replays the daemon's bounded event ring and
then follows live events (tcr.daemon.events).
"""

from __future__ import annotations

import os
import time

from tcr.commands import base, render
from tcr.commands.base import Ctx, Output, Parser, Pending
from tcr.common.errors import InvalidArgument, TcrError, UsageError

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence

STATS_HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
                 "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
STATS_INTERVAL = 1.0  # seconds between two samples (docker's)
CLEAR = "\033[2J\033[H"


def _mgr(ctx: Ctx) -> Any:
    from tcr.commands.containers import _mgr as mgr

    return mgr(ctx)


def _bytes(n: Optional[int]) -> str:
    """docker's binary units for memory (MiB), decimal ones for I/O (MB) are both 'human'."""
    if n is None:
        return "--"
    f = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if f < 1024 or unit == "TiB":
            return f"{f:.0f}{unit}" if unit == "B" else f"{f:.4g}{unit}"
        f /= 1024
    return f"{n}B"


class _Sample:
    __slots__ = ("when", "cpu_ns")

    def __init__(self, when: float, cpu_ns: Optional[int]):
        self.when = when
        self.cpu_ns = cpu_ns


def _sample(c: Any) -> Optional[_Sample]:
    from tcr.kernel.cgroupfs import Cgroups

    if c.rec.state != "running" or not c.rec.pid:
        return None
    return _Sample(time.monotonic(), Cgroups.of_pid(c.rec.pid).cpu_usage_ns())


def stats_item(c: Any, prev: Optional[_Sample], now: Optional[_Sample]) -> Dict[str, Any]:
    """One stats row (docker's --format names) from two CPU samples and the current counters."""
    from tcr.kernel import cgroupfs

    r = c.rec
    running = r.state == "running" and r.pid > 0
    cg = cgroupfs.Cgroups.of_pid(r.pid) if running else cgroupfs.Cgroups({}, None)
    cpu = 0.0
    if prev and now and prev.cpu_ns is not None and now.cpu_ns is not None and now.when > prev.when:
        cpu = (now.cpu_ns - prev.cpu_ns) / 1e9 / (now.when - prev.when) * 100.0
    mem = cg.memory() if running else {"usage": None, "limit": None}
    limit = mem["limit"] or cgroupfs.host_memory()
    usage = mem["usage"]
    net = cgroupfs.net_io(r.pid) if running else {"rx": 0, "tx": 0}
    blk = cg.block_io() if running else {"read": 0, "write": 0}
    pids = cg.pids_current() if running else 0
    return {
        "ID": r.id[:12], "Container": r.id[:12], "Name": r.name,
        "CPUPerc": f"{cpu:.2f}%",
        "MemUsage": f"{_bytes(usage)} / {_bytes(limit)}" if running else "0B / 0B",
        "MemPerc": f"{(usage or 0) / limit * 100:.2f}%" if running and limit else "0.00%",
        "NetIO": f"{render.human_size(net['rx'])} / {render.human_size(net['tx'])}",
        "BlockIO": f"{render.human_size(blk['read'])} / {render.human_size(blk['write'])}",
        "PIDs": pids or 0,
        # Raw numbers for scripts (--format json).
        "cpuPercent": round(cpu, 2), "memoryUsage": usage or 0, "memoryLimit": limit or 0,
        "netRx": net["rx"], "netTx": net["tx"], "blockRead": blk["read"], "blockWrite": blk["write"],
    }


def _stats_text(fmt: str, items: List[Dict[str, Any]]) -> str:
    def table() -> str:
        rows: List[Sequence[Any]] = [[i["ID"], i["Name"], i["CPUPerc"], i["MemUsage"], i["MemPerc"],
                                      i["NetIO"], i["BlockIO"], i["PIDs"]] for i in items]
        return render.table(["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
                             "BLOCK I/O", "PIDS"], rows)

    return render.listing(fmt, items, table, STATS_HEADERS)


@base.command("stats", "Show containers' CPU, memory, network and block I/O, and PIDs")
def cmd_stats(ctx: Ctx) -> Pending:
    p = Parser("stats", description="Live resource usage of containers (running ones unless -a).")
    p.add_argument("-a", "--all", action="store_true", help="all containers, not only running ones")
    p.add_argument("--no-stream", action="store_true", help="print one sample and exit")
    p.add_argument("--no-trunc", action="store_true", help="full ids")
    base.add_format(p)
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    ns = p.parse(ctx.args)
    mgr = _mgr(ctx)
    fixed = [mgr.find(r) for r in ns.containers] if ns.containers else None
    loop = ctx.daemon.loop
    stream = None if ns.no_stream else ctx.stream
    pending = Pending()
    state: Dict[str, Any] = {"prev": {}, "timer": None}

    def chosen() -> List[Any]:
        if fixed is not None:
            return fixed
        return [c for c in mgr.list() if ns.all or c.rec.state == "running"]

    def take() -> Dict[str, Optional[_Sample]]:
        return {c.rec.id: _sample(c) for c in chosen()}

    def tick() -> None:
        state["timer"] = None
        if pending.done:
            return
        cur = take()
        items = [stats_item(c, state["prev"].get(c.rec.id), cur.get(c.rec.id)) for c in chosen()]
        if ns.no_trunc:
            for i in items:
                i["ID"] = i["Container"] = next(c.rec.id for c in chosen() if c.rec.name == i["Name"])
        state["prev"] = cur
        text = _stats_text(ns.format, items)
        if stream is None:
            pending.resolve(Output(0, text))
            return
        stream("stdout", (CLEAR if ns.format == "table" else "") + text)
        state["timer"] = loop.call_later(STATS_INTERVAL, tick)

    def cancel() -> None:
        if state["timer"] is not None:
            state["timer"].cancel()
            state["timer"] = None

    pending.on_cancel = cancel
    state["prev"] = take()
    # CPU % needs two samples: the first answer comes one interval later (docker does the same).
    state["timer"] = loop.call_later(STATS_INTERVAL, tick)
    return pending


# ---- top ----------------------------------------------------------------------------------------


def _proc_row(pid: int, users: Dict[int, str], boot: float, hz: int) -> Optional[List[str]]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read(4096).decode("utf-8", "replace")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read(4096).split(b"\0")
        st = os.stat(f"/proc/{pid}")
    except OSError:
        return None  # exited meanwhile
    comm_end = stat.rfind(")")
    fields = stat[comm_end + 2:].split()
    comm = stat[stat.find("(") + 1:comm_end]
    ppid = fields[1]
    cpu_ticks = int(fields[11]) + int(fields[12])
    start = boot + int(fields[19]) / hz
    cmd = " ".join(a.decode("utf-8", "replace") for a in argv if a) or f"[{comm}]"
    t = cpu_ticks // hz
    cputime = f"{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}"
    return [users.get(st.st_uid, str(st.st_uid)), str(pid), ppid, "0",
            time.strftime("%H:%M", time.localtime(start)), "?", cputime, cmd]


def _host_users() -> Dict[int, str]:
    out: Dict[int, str] = {}
    try:
        with open("/etc/passwd", "rb") as f:
            for line in f.read(1 << 20).decode("utf-8", "replace").splitlines():
                parts = line.split(":")
                if len(parts) > 2 and parts[2].isdigit():
                    out.setdefault(int(parts[2]), parts[0])
    except OSError:
        pass
    return out


def _boot_time() -> float:
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


@base.command("top", "Show the processes of a container")
def cmd_top(ctx: Ctx) -> Output:
    from tcr.kernel.cgroupfs import Cgroups

    if not ctx.args or ctx.args[0] in ("-h", "--help"):
        if not ctx.args:
            raise UsageError("tcr top: missing CONTAINER", hint="usage: tcr top CONTAINER [ps OPTIONS]")
        return Output(0, "usage: tcr top CONTAINER [ps OPTIONS]\n\nThe container's processes as the host "
                         "sees them (default columns of 'ps -ef'; with options, the host's ps).\n")
    c = _mgr(ctx).find(ctx.args[0])
    if c.rec.state != "running" or not c.rec.pid:
        raise InvalidArgument(f"container {c.rec.name} is not running")
    pids = Cgroups.of_pid(c.rec.pid).procs() or [c.rec.pid]
    ps_opts = ctx.args[1:]
    if not ps_opts:
        users, boot, hz = _host_users(), _boot_time(), os.sysconf("SC_CLK_TCK")
        rows: List[Sequence[Any]] = [r for r in (_proc_row(p, users, boot, hz) for p in pids) if r]
        return Output(0, render.table(["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"], rows))
    return Output(0, _host_ps(ps_opts, set(pids)))


def _host_ps(opts: List[str], pids: set) -> str:
    """The host's ps with the user's options, keeping the header and the container's rows (docker)."""
    from tcr.common.run import run

    for o in opts:
        if not o or "\0" in o or len(o) > 256:
            raise UsageError("tcr top: invalid ps option")
    try:
        r = run(["ps", *opts], check=False, timeout=10)
    except TcrError as exc:
        raise InvalidArgument(f"tcr top: cannot run ps: {exc}")
    if r.returncode != 0:
        msg = (r.stderr or "").strip().splitlines()
        raise InvalidArgument(f"tcr top: ps {' '.join(opts)[:64]} failed: {msg[-1] if msg else r.returncode}")
    lines = (r.stdout or "").splitlines()
    if not lines:
        return ""
    header = lines[0].split()
    if "PID" not in header:
        raise InvalidArgument("tcr top: the ps options must include the PID column")
    col = header.index("PID")
    keep = [lines[0]]
    for line in lines[1:]:
        f = line.split(None, len(header) - 1)
        if len(f) > col and f[col].isdigit() and int(f[col]) in pids:
            keep.append(line)
    return "\n".join(keep) + "\n"


# ---- events -------------------------------------------------------------------------------------

EVENT_FILTERS = ["type", "event", "container", "image", "network", "volume", "label"]


def _event_matches(ev: Dict[str, Any], filters: Dict[str, List[str]]) -> bool:
    actor = ev["Actor"]
    attrs = actor.get("Attributes", {})
    for key, wanted in filters.items():
        if key == "type":
            hit = ev["Type"] in wanted
        elif key == "event":
            hit = ev["Action"] in wanted
        elif key in ("container", "image", "network", "volume"):
            hit = ev["Type"] == key and any(actor["ID"].startswith(w) or attrs.get("name") == w
                                            or w in str(attrs.get("name", "")).split(", ") for w in wanted)
        else:  # label
            hit = any(str(attrs.get(w.partition("=")[0])) == w.partition("=")[2] for w in wanted)
        if not hit:
            return False
    return True


def _event_text(fmt: str, ev: Dict[str, Any]) -> str:
    if fmt == "json":
        from tcr.common import jsonc

        return jsonc.dumps(ev, ascii=True) + "\n"
    if fmt not in ("", "table"):
        from tcr.commands import gotemplate

        return gotemplate.render_list(fmt, [ev])
    attrs = ", ".join(f"{k}={v}" for k, v in sorted(ev["Actor"]["Attributes"].items()))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ev["time"]))
    nanos = ev["timeNano"] % 1_000_000_000
    actor = ev["Actor"]["ID"]
    return f"{stamp}.{nanos:09d}{time.strftime('%z')} {ev['Type']} {ev['Action']} {actor} ({attrs})\n"


@base.command("events", "Show container, image, network and volume events")
def cmd_events(ctx: Ctx) -> Any:
    from tcr.commands import views
    from tcr.common.timespec import parse_time

    p = Parser("events", description="Events as they happen; --since replays the last ones the daemon keeps.")
    p.add_argument("--since", metavar="TIME", help="RFC 3339, Unix time, or a duration ago (10m)")
    p.add_argument("--until", metavar="TIME", help="stop at this time")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="type, event, container, image, network, volume, label")
    base.add_format(p)
    ns = p.parse(ctx.args)
    filters = views.parse_filters(ns.filter, EVENT_FILTERS)
    now = time.time()
    since = parse_time(ns.since, "--since", now) if ns.since else None
    until = parse_time(ns.until, "--until", now) if ns.until else None
    log = ctx.daemon.events
    past = log.since(since) if since is not None else []
    text = "".join(_event_text(ns.format, e) for e in past
                   if _event_matches(e, filters) and (until is None or e["time"] <= until))
    if (until is not None and until <= now) or ctx.stream is None:
        return Output(0, text)
    stream = ctx.stream
    if text:
        stream("stdout", text)
    pending = Pending()
    timer: Dict[str, Any] = {"t": None}

    def on_event(ev: Dict[str, Any]) -> None:
        if _event_matches(ev, filters):
            stream("stdout", _event_text(ns.format, ev))

    unwatch = log.watch(on_event)

    def finish() -> None:
        unwatch()
        pending.resolve(Output(0))

    def cancel() -> None:
        unwatch()
        if timer["t"] is not None:
            timer["t"].cancel()

    pending.on_cancel = cancel
    if until is not None:
        timer["t"] = ctx.daemon.loop.call_later(until - now, finish)
    return pending
