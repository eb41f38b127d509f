"""A board's storage and housekeeping: `system info|df|prune`, `container|image|network prune`.

Sizes come from walking directories (du's way), which can take long on a big writable layer or
slow flash: that walk runs in a short-lived worker (tcr.daemon.worker), never on the event loop.
"""

from __future__ import annotations

import os
import sys

import tcr
from tcr.commands import base, render
from tcr.commands.base import Ctx, Output, Parser, Pending
from tcr.common.errors import TcrError

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence


def _sizes(paths: List[str]) -> List[int]:
    """Worker side: allocated bytes of each path."""
    from tcr.common.diskusage import tree_size

    return [tree_size(p) for p in paths]


def _measure(ctx: Ctx, paths: List[str], what: str, then: Any) -> Pending:
    from tcr.daemon import worker

    return worker.pending(ctx.daemon.loop, _sizes, (paths,), what=what, then=then, cancel_on_disconnect=True)


def _volumes(ctx: Ctx) -> Any:
    return getattr(ctx.daemon, "volumes", None)


# ---- system df ----------------------------------------------------------------------------------


@base.command("system", "Board-wide information and housekeeping: info, df, prune")
def cmd_system(ctx: Ctx) -> Any:
    return base.subcommand(ctx, "system", {"info": system_info, "df": system_df, "prune": system_prune},
                           "usage: tcr system info|df|prune ...", (
                               "  info              versions, kernel, cgroups, storage, networks, security\n"
                               "  df [-v]           disk used by images, containers, volumes and logs\n"
                               "  prune [-a] [--volumes] [-f]  remove what nothing uses\n"))


@base.command("info", "Show board-wide information (same as 'system info')")
def cmd_info(ctx: Ctx) -> Output:
    return system_info(ctx, ctx.args)


def system_df(ctx: Ctx, args: List[str]) -> Pending:
    p = Parser("system df", description="Disk space used by images, containers, volumes and logs.")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per object")
    base.add_format(p)
    ns = p.parse(args)
    images = list(ctx.daemon.images.list())
    cmgr = ctx.daemon.containers
    containers = list(cmgr.list()) if cmgr is not None else []
    vmgr = _volumes(ctx)
    volumes = list(vmgr.list()) if vmgr is not None and hasattr(vmgr, "list") else []
    uppers = [c.paths.upper for c in containers]
    vol_paths = [str(_vget(v, "mountpoint", "path", "Mountpoint")) for v in volumes]

    def then(sizes: List[int]) -> Output:
        n = len(containers)
        upper, vol = sizes[:n], sizes[n:]
        logs = [_log_bytes(c) for c in containers]
        used_images = {c.rec.image_id for c in containers}
        img_rows = [{"Type": "image", "ID": r.id, "Name": r.display_ref, "Size": r.size,
                     "InUse": r.id in used_images} for r in images]
        ctr_rows = [{"Type": "container", "ID": c.rec.id, "Name": c.rec.name, "Size": upper[i],
                     "Logs": logs[i], "InUse": c.rec.state in ("running", "restarting")}
                    for i, c in enumerate(containers)]
        vol_users = _volume_users(containers)
        vnames = [str(_vget(v, "name", "Name")) for v in volumes]
        vol_rows = [{"Type": "volume", "ID": name, "Name": name, "Size": vol[i] if i < len(vol) else 0,
                     "InUse": name in vol_users} for i, name in enumerate(vnames)]
        summary = [
            _summary_row("Images", img_rows, lambda r: r["Size"], lambda r: not r["InUse"]),
            _summary_row("Containers", ctr_rows, lambda r: r["Size"], lambda r: not r["InUse"]),
            _summary_row("Local Volumes", vol_rows, lambda r: r["Size"], lambda r: not r["InUse"]),
            {"Type": "Logs", "TotalCount": len(ctr_rows), "Active": sum(1 for r in ctr_rows if r["InUse"]),
             "Size": sum(logs), "Reclaimable": sum(r["Logs"] for r in ctr_rows if not r["InUse"])},
        ]
        if ns.format == "json":
            return Output(0, render.as_json({"summary": summary, "images": img_rows, "containers": ctr_rows,
                                             "volumes": vol_rows}))
        text = _df_table(summary) if ns.format == "table" else render.listing(ns.format, summary, lambda: "")
        if ns.verbose and ns.format == "table":
            text += "\n" + _df_verbose(img_rows, ctr_rows, vol_rows)
        return Output(0, text)

    return _measure(ctx, uppers + vol_paths, "system df", then)


def _vget(v: Any, *keys: str) -> Any:
    for k in keys:
        if isinstance(v, dict) and k in v:
            return v[k]
        if hasattr(v, k):
            return getattr(v, k)
    return ""


def _volume_users(containers: Sequence[Any]) -> set:
    names = set()
    for c in containers:
        for m in (c.rec.options.get("volumes") or []) + (c.rec.options.get("mounts") or []):
            if isinstance(m, dict):
                for k in ("name", "volume", "source", "src"):
                    if isinstance(m.get(k), str) and m.get(k) and not m[k].startswith("/"):
                        names.add(m[k])
    return names


def _log_bytes(c: Any) -> int:
    total = 0
    d = os.path.dirname(c.paths.log)
    base_name = os.path.basename(c.paths.log)
    try:
        for e in os.scandir(d):
            if e.name.startswith(base_name):
                total += e.stat(follow_symlinks=False).st_blocks * 512
    except OSError:
        pass
    return total


def _summary_row(kind: str, rows: List[Dict[str, Any]], size: Any, reclaimable: Any) -> Dict[str, Any]:
    return {"Type": kind, "TotalCount": len(rows), "Active": sum(1 for r in rows if r["InUse"]),
            "Size": sum(size(r) for r in rows), "Reclaimable": sum(size(r) for r in rows if reclaimable(r))}


def _pct(part: int, whole: int) -> str:
    return f" ({part * 100 // whole}%)" if whole else ""


def _df_table(summary: List[Dict[str, Any]]) -> str:
    rows: List[Sequence[Any]] = [[s["Type"], s["TotalCount"], s["Active"], render.human_size(s["Size"]),
                                  render.human_size(s["Reclaimable"]) + _pct(s["Reclaimable"], s["Size"])]
                                 for s in summary]
    return render.table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], rows)


def _df_verbose(imgs: List[Dict[str, Any]], ctrs: List[Dict[str, Any]], vols: List[Dict[str, Any]]) -> str:
    out = "Images space usage:\n\n" + render.table(
        ["IMAGE ID", "NAME", "SIZE", "IN USE"],
        [[r["ID"], r["Name"], render.human_size(r["Size"]), "yes" if r["InUse"] else "no"] for r in imgs])
    out += "\nContainers space usage:\n\n" + render.table(
        ["CONTAINER ID", "NAME", "SIZE", "LOGS", "RUNNING"],
        [[r["ID"][:12], r["Name"], render.human_size(r["Size"]), render.human_size(r["Logs"]),
          "yes" if r["InUse"] else "no"] for r in ctrs])
    out += "\nLocal Volumes space usage:\n\n" + render.table(
        ["VOLUME NAME", "SIZE", "IN USE"],
        [[r["Name"], render.human_size(r["Size"]), "yes" if r["InUse"] else "no"] for r in vols])
    return out


# ---- system info --------------------------------------------------------------------------------


def info_dict(ctx: Ctx) -> Dict[str, Any]:
    d = ctx.daemon
    root = str(getattr(d, "root", "") or "")
    try:
        st = os.statvfs(root)
        free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    except OSError:
        free = total = 0
    cs = list(d.containers.list()) if d.containers is not None else []
    paused = sum(1 for c in cs if getattr(c, "paused", False))
    running = sum(1 for c in cs if c.rec.state == "running") - paused
    images = list(d.images.list())
    mounted = sum(1 for r in images if d.images.is_mounted(r))
    nets = [n["name"] for n in d.networks.list()] if d.networks is not None else []
    u = os.uname()
    cgroup = "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"
    if cgroup == "1" and os.path.exists("/sys/fs/cgroup/unified/cgroup.controllers"):
        cgroup = "1 (hybrid)"
    from tcr.kernel.cgroupfs import host_memory

    crun_version = ""
    try:
        from tcr.common.run import run
        from tcr.containers.crun import crun_path

        r = run([crun_path(), "--version"], check=False, timeout=5)
        first = (r.stdout or "").splitlines()[:1]
        crun_version = first[0].replace("crun version", "").strip() if first else ""
    except (TcrError, OSError):
        crun_version = ""
    return {
        "ServerVersion": tcr.__version__,
        "Python": ".".join(map(str, sys.version_info[:3])),
        "Containers": len(cs), "ContainersRunning": running, "ContainersPaused": paused,
        "ContainersStopped": len(cs) - running - paused,
        "Images": len(images), "LoopDevicesInUse": mounted,
        "Driver": "overlay on squashfs", "LoggingDriver": "json-file (rotating)",
        "CgroupVersion": cgroup, "Runtime": "crun", "RuntimeVersion": crun_version,
        "KernelVersion": u.release, "OperatingSystem": _os_name(), "Architecture": u.machine,
        "NCPU": os.cpu_count() or 0, "MemTotal": host_memory() or 0,
        "DockerRootDir": root, "RootFree": free, "RootTotal": total,
        "Networks": nets,
        "SecurityOptions": ["seccomp (default profile, evaluated per architecture and capabilities)",
                            "no-new-privileges", "capabilities (docker's 14 by default)",
                            "masked and read-only /proc paths"],
        "Name": u.nodename, "ID": f"tcrd-{os.getpid()}",
    }


def _os_name() -> str:
    try:
        with open("/etc/os-release", "rb") as f:
            for line in f.read(16384).decode("utf-8", "replace").splitlines():
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def system_info(ctx: Ctx, args: List[str]) -> Output:
    p = Parser("system info", description="Versions, kernel, cgroups, storage, networks and security.")
    base.add_format(p)
    ns = p.parse(args)
    i = info_dict(ctx)
    if ns.format == "json":
        return Output(0, render.as_json(i))
    if ns.format != "table":
        return Output(0, render.objects(ns.format, [i]))
    lines = [
        f"Server Version: {i['ServerVersion']} (python {i['Python']})",
        f"Containers: {i['Containers']}", f" Running: {i['ContainersRunning']}",
        f" Paused: {i['ContainersPaused']}", f" Stopped: {i['ContainersStopped']}",
        f"Images: {i['Images']}", f" Loop devices in use: {i['LoopDevicesInUse']}",
        f"Storage Driver: {i['Driver']}", f"Logging Driver: {i['LoggingDriver']}",
        f"Cgroup Version: {i['CgroupVersion']}",
        f"Runtime: {i['Runtime']} {i['RuntimeVersion']}".rstrip(),
        "Security Options:", *[f" {s}" for s in i["SecurityOptions"]],
        f"Kernel Version: {i['KernelVersion']}", f"Operating System: {i['OperatingSystem']}",
        f"Architecture: {i['Architecture']}", f"CPUs: {i['NCPU']}",
        f"Total Memory: {render.human_size(i['MemTotal'])}", f"Name: {i['Name']}",
        f"Root Dir: {i['DockerRootDir']} ({render.human_size(i['RootFree'])} free of "
        f"{render.human_size(i['RootTotal'])})",
        f"Networks: {', '.join(i['Networks']) or '(none)'}",
    ]
    return Output(0, "\n".join(lines) + "\n")


# ---- prune ----------------------------------------------------------------------------------------


def _prune_args(prog: str, description: str, args: List[str], all_flag: bool = False,
                volumes_flag: bool = False) -> Any:
    p = Parser(prog, description=description)
    p.add_argument("-f", "--force", action="store_true", help="do not ask (tcr never asks; kept for docker)")
    p.add_argument("--filter", action="append", default=[], metavar="until=TIME|label=K[=V]")
    if all_flag:
        p.add_argument("-a", "--all", action="store_true",
                       help="also images no container uses, not only untagged")
    if volumes_flag:
        p.add_argument("--volumes", action="store_true", help="also volumes no container uses")
    ns = p.parse(args)
    from tcr.commands.changes import prune_filters

    until, labels = prune_filters(ns.filter)
    return ns, until, labels


def _prune_containers(ctx: Ctx, until: Optional[float], labels: List[str], then: Any) -> Pending:
    """Measure the stopped containers' directories in a worker, then remove them on the loop."""
    cmgr = ctx.daemon.containers
    cands = [c for c in cmgr.list() if c.rec.state in ("exited", "created")] if cmgr is not None else []

    def removed(sizes: List[int]) -> Any:
        from tcr.commands.changes import prune_containers

        gone = set(prune_containers(ctx, until, labels))
        freed = sum(s for c, s in zip(cands, sizes) if c.rec.id in gone)
        return then([c.rec.id for c in cands if c.rec.id in gone], freed)

    return _measure(ctx, [c.paths.dir for c in cands], "container prune", removed)


def prune_images(ctx: Ctx, all_unused: bool, until: Optional[float]) -> List[Any]:
    """Remove images no container uses: untagged ones, or every unused one with -a."""
    mgr = ctx.daemon.images
    cmgr = ctx.daemon.containers
    gone = []
    for r in list(mgr.list()):
        if r.tags and not all_unused:
            continue
        if until is not None and r.loaded_at > until:
            continue
        if cmgr is not None and cmgr.uses_image(r.id):
            continue
        try:
            size = r.size
            mgr.remove(r.id)
            gone.append((r, size))
        except TcrError:
            continue
    return gone


def prune_networks(ctx: Ctx) -> List[str]:
    nets = ctx.daemon.networks
    if nets is None:
        return []
    from tcr.commands.networks import users

    used = users(ctx)
    gone = []
    for n in nets.list():
        if n["containers"] or n["name"] == "tcr_default" or used.get(n["name"]):
            continue
        try:
            nets.remove(n["name"])
            gone.append(n["name"])
        except TcrError:
            continue
    return gone


def prune_volumes(ctx: Ctx) -> List[str]:
    vm = _volumes(ctx)
    if vm is None or not hasattr(vm, "prune"):
        return []
    return [str(v) for v in (vm.prune() or [])]


def container_prune(ctx: Ctx, args: List[str]) -> Pending:
    _ns, until, labels = _prune_args("container prune", "Remove all stopped containers.", args)

    def then(ids: List[str], freed: int) -> Output:
        text = "Deleted Containers:\n" + "".join(f"{i}\n" for i in ids) + "\n" if ids else ""
        return Output(0, text + f"Total reclaimed space: {render.human_size(freed)}\n")

    return _prune_containers(ctx, until, labels, then)


def image_prune(ctx: Ctx, args: List[str]) -> Output:
    ns, until, _labels = _prune_args("image prune", "Remove untagged images (all unused ones with -a).", args,
                                     all_flag=True)
    gone = prune_images(ctx, ns.all, until)
    text = "Deleted Images:\n" + "".join(f"deleted: {r.id}\n" for r, _ in gone) + "\n" if gone else ""
    return Output(0, text + f"Total reclaimed space: {render.human_size(sum(s for _, s in gone))}\n")


def network_prune(ctx: Ctx, args: List[str]) -> Output:
    _prune_args("network prune", "Remove all networks no container uses.", args)
    gone = prune_networks(ctx)
    return Output(0, "Deleted Networks:\n" + "".join(f"{n}\n" for n in gone) if gone else "")


def system_prune(ctx: Ctx, args: List[str]) -> Pending:
    ns, until, labels = _prune_args("system prune", "Remove stopped containers, unused networks, untagged "
                                    "images (-a: all unused images) and, with --volumes, unused volumes.",
                                    args, all_flag=True, volumes_flag=True)

    def then(ids: List[str], freed: int) -> Output:
        nets = prune_networks(ctx)
        vols = prune_volumes(ctx) if ns.volumes else []
        imgs = prune_images(ctx, ns.all, until)
        out = ""
        if ids:
            out += "Deleted Containers:\n" + "".join(f"{i}\n" for i in ids) + "\n"
        if nets:
            out += "Deleted Networks:\n" + "".join(f"{n}\n" for n in nets) + "\n"
        if vols:
            out += "Deleted Volumes:\n" + "".join(f"{v}\n" for v in vols) + "\n"
        if imgs:
            out += "Deleted Images:\n" + "".join(f"deleted: {r.id}\n" for r, _ in imgs) + "\n"
        total = freed + sum(s for _, s in imgs)
        return Output(0, out + f"Total reclaimed space: {render.human_size(total)}\n")

    return _prune_containers(ctx, until, labels, then)


@base.command("_container_prune", "Remove all stopped containers (as 'tcr container prune')")
def cmd_container_prune(ctx: Ctx) -> Pending:
    return container_prune(ctx, ctx.args)
