"""`tcr cp`: copy files between a container and the client, as docker's (docs/cli.md, "cp").

tcrd's part is the container side: it parses the arguments, finds the container, gives a forked
worker (tcr.containers.cpworker) access to its root, and relays the tar stream between that
worker and the client over the attach data channel (tcr.rpc.channel): 0x01 frames towards the
client, 0x00 frames from it. The local side (reading or extracting the client's files, `-`) is
the client's (tcr.cli.cp); the announcement tells it what to do:

    {"id":N,"attach":{"stdin":B,"tty":false,"cp":{"direction":"from"|"to","local":ARG,
     "container":NAME,"path":PATH,"archive":B,"followLink":B}}}

Memory stays bounded whatever the size: the worker's pipe is read only while the client keeps
up (the channel's HIGH_WATER), and the client is read only while the worker keeps up
(attach.STDIN_BACKLOG). tarfile is never imported by tcrd itself: only in the worker.

A stopped container's root is its overlay, mounted for the copy (and unmounted after, unless the
container started meanwhile); a --read-only one's is the image's root (read-only). Its volumes and
bind mounts are bound over their targets in the worker's own mount namespace (as docker shows
them).
"""

from __future__ import annotations

import os

from tcr.commands import base
from tcr.commands.base import Ctx, Output, Parser, Pending
from tcr.common.errors import TcrError, UsageError
from tcr.common.log import get_logger
from tcr.containers.cpplan import CpError, split_arg

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Set, Tuple

log = get_logger("tcr.cp")

READ_CHUNK = 64 * 1024
STEPS = 8  # pipe reads per loop turn, so one copy does not starve other clients
KILL_AFTER = 10.0  # seconds a worker gets to end by itself once its client went away

_holds: Dict[str, int] = {}  # container id -> copies using the overlay cp mounted
_mounted: Set[str] = set()  # container ids whose overlay a copy mounted

USAGE = """\
usage: tcr cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-
       tcr cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH"""


@base.command("cp", "Copy files/folders between a container and the local filesystem")
def cmd_cp(ctx: Ctx) -> Any:
    p = Parser("cp", usage=USAGE, description=(
        "Copy files/folders between a container and the local filesystem. Use '-' as the source "
        "to read a tar archive from stdin and extract it to a directory in the container, or as "
        "the destination to write a tar archive of the container's SRC_PATH to stdout. Works on "
        "running and stopped containers."))
    p.add_argument("-a", "--archive", action="store_true", help="archive mode (keep uid/gid)")
    p.add_argument("-L", "--follow-link", dest="follow", action="store_true",
                   help="always follow a symbolic link in SRC_PATH")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no 'Successfully copied' line (it is only printed on a terminal anyway)")
    p.add_argument("--tar-source", action="store_true",
                   help="with '-' as SRC: stdin is a tar whose first entry is the source itself, copied "
                   "by docker's rules (what tcr -H ssh:// sends)")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dest", metavar="DEST")
    ns = p.parse(ctx.args)
    sc, sp = split_arg(ns.src)
    dc, dp = split_arg(ns.dest)
    if sc is not None and dc is not None:
        raise CpError("copying between containers is not supported")
    if sc is None and dc is None:
        raise CpError("must specify at least one container source",
                      hint="CONTAINER:PATH on one side, a local path or '-' on the other")
    if ctx.channel is None:
        raise UsageError("tcr cp needs tcr's own client (the attach channel)")
    if ns.tar_source and ns.src != "-":
        raise UsageError("tcr cp: --tar-source needs '-' as the source", hint=USAGE)
    direction = "from" if sc is not None else "to"
    name, cpath, local = (sc, sp, ns.dest) if sc is not None else (dc, dp, ns.src)
    if not local:
        raise UsageError("tcr cp: empty local path", hint=USAGE)
    mgr = ctx.daemon.containers
    c = mgr.find(name)
    if not cpath:
        raise CpError(f"no path given for container {c.rec.name}", hint="CONTAINER:/path")
    if not cpath.startswith("/"):
        cpath = "/" + cpath  # relative to the container's root, as docker
    info = {"direction": direction, "local": local, "container": c.rec.name, "path": cpath,
            "archive": bool(ns.archive), "followLink": bool(ns.follow), "quiet": bool(ns.quiet)}
    where, release = _root(ctx.daemon, c, write=direction == "to")
    try:
        t = Transfer(ctx.daemon.loop, ctx.channel, info, release)
        if direction == "from":
            t.start_from(where, cpath, bool(ns.follow), c.rec.name)
        else:
            t.start_to(where, cpath, bool(ns.archive), local == "-" and not ns.tar_source, c.rec.name)
    except BaseException:
        release()
        raise
    return t.pending


def _init_pid(mgr: Any, c: Any) -> int:
    """The container's init: crun's pid file, else `crun state` (a C client's interactive run
    has no pid file, and its record holds the pid of the crun the client runs)."""
    try:
        with open(c.paths.pid_file) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        pid = 0
    if pid <= 0:
        from tcr.containers import crun

        try:
            st = crun.state(mgr.crun_root, c.rec.id) or {}
            pid = int(st.get("pid") or 0)
        except (TcrError, OSError, ValueError, TypeError):
            pid = 0
    return pid or int(c.rec.pid or 0)


def _root(daemon: Any, c: Any, write: bool) -> Tuple[Dict[str, Any], Callable[[], None]]:
    """Where the worker finds the container's root, and what to do when the copy ends."""
    from tcr.containers.bundle import is_mounted, mount_overlay

    state = c.rec.state
    if state in ("creating", "removing"):
        raise CpError(f"container {c.rec.name} is being {'created' if state == 'creating' else 'removed'}")
    if state == "running":
        pid = _init_pid(daemon.containers, c)
        if pid <= 0:
            raise CpError(f"container {c.rec.name} has no process yet; try again")
        return {"pid": pid}, lambda: None
    image = daemon.images.get(c.rec.image_id)
    daemon.images.check_usable(image)
    if c.opts.read_only:
        if write:
            raise CpError(f"container rootfs is marked read-only: {c.rec.name}",
                          hint="start it and copy into one of its volumes, or copy from it")
        return {"path": image.rootfs, "mounts": _volumes(daemon, c)}, lambda: None
    cid = c.rec.id
    if not is_mounted(c.paths.merged):
        mount_overlay(image.rootfs, c.paths)
        _mounted.add(cid)
    _holds[cid] = _holds.get(cid, 0) + 1
    done: List[bool] = []

    def release() -> None:
        if done:
            return
        done.append(True)
        _holds[cid] -= 1
        if _holds[cid] > 0:
            return
        del _holds[cid]
        if cid not in _mounted:
            return
        _mounted.discard(cid)
        live = daemon.containers.containers.get(cid)
        if live is not None and live.rec.state in ("running", "creating"):
            return  # started meanwhile: the overlay is the container's now
        from tcr.containers.bundle import umount_overlay

        try:
            umount_overlay(c.paths)
        except OSError as exc:
            log.warning("cp: cannot unmount the root of %s: %s", c.rec.name, exc)

    return {"path": c.paths.merged, "mounts": _volumes(daemon, c)}, release


def _volumes(daemon: Any, c: Any) -> List[List[Any]]:
    """[source, target, read-only] of a stopped container's volumes and bind mounts whose source
    is there (a directory or a regular file: never a device), parents before children."""
    import stat

    out = []
    for v in c.opts.volumes:
        src = daemon.containers.volumes.data_dir(v.src) if v.kind == "volume" else v.src
        try:
            mode = os.stat(src).st_mode
        except OSError:
            continue
        if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
            out.append([src, v.dst, bool(v.ro)])
    return sorted(out, key=lambda m: m[1].rstrip("/").count("/"))


def _in_worker(fn: str, *args: Any) -> Any:
    """Runs in the forked worker: only it loads cpworker (and tarfile, through cparchive)."""
    from tcr.containers import cpworker

    return getattr(cpworker, fn)(*args)


class Transfer:
    """One copy: a worker, its pipe, the client's data channel, and the reply."""

    def __init__(self, loop: Any, channel: Any, info: Dict[str, Any], release: Callable[[], None]):
        self.loop = loop
        self.channel = channel
        self.info = info
        self.release = release
        self.pending = Pending()
        self.pending.on_cancel = self._cancel
        self.job: Any = None
        self.fd: Optional[int] = None  # our end of the worker's pipe (from: read, to: the writer)
        self.writer: Any = None
        self.opened = False
        self.eof = False
        self.result: Any = None
        self.finished = False
        self.cancelled = False
        self.kill_timer: Any = None

    # ---- container -> client -----------------------------------------------------------------

    def start_from(self, where: Dict[str, Any], path: str, follow: bool, name: str) -> None:
        from tcr.daemon import worker

        r, w = os.pipe()
        try:
            self.job = worker.spawn(self.loop, _in_worker, ("send", where, path, follow, name, w), what="cp",
                                    on_done=self._done, keep_fds=(w,))
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        os.set_blocking(r, False)
        self.fd = r
        self.loop.add_reader(r, self._readable)

    def _readable(self) -> None:
        for _ in range(STEPS):
            if self.fd is None:
                return
            try:
                data = os.read(self.fd, READ_CHUNK)
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            except OSError as exc:
                log.debug("cp: pipe read failed: %s", exc)
                data = b""
            if not data:
                self._close_fd()
                self.eof = True
                self._maybe_finish()
                return
            if not self.opened:
                self._open(stdin=False)
            self.channel.write("stdout", data)
            if self.channel.pressured:  # the client is slower than the worker: wait for it
                self.loop.remove_reader(self.fd)
                self.channel.on_drain = self._drained
                return

    def _drained(self) -> None:
        self.channel.on_drain = None
        if self.fd is not None and not self.finished:
            self.loop.add_reader(self.fd, self._readable)

    def _open(self, stdin: bool) -> None:
        self.opened = True
        self.channel.open(stdin=stdin, extra={"cp": self.info})

    # ---- client -> container -----------------------------------------------------------------

    def start_to(self, where: Dict[str, Any], path: str, archive: bool, raw: bool, name: str) -> None:
        from tcr.containers.attach import StdinWriter
        from tcr.daemon import worker

        r, w = os.pipe()
        try:
            self.job = worker.spawn(self.loop, _in_worker, ("receive", where, path, archive, raw, name, r),
                                    what="cp", on_done=self._done, keep_fds=(r,))
        except BaseException:
            os.close(w)
            raise
        finally:
            os.close(r)
        self.writer = StdinWriter(self.loop, w)
        self.eof = True  # nothing to read from the worker: its reply is all
        self._open(stdin=True)
        self.channel.on_input = self._input

    def _input(self, data: bytes) -> None:
        from tcr.containers.attach import STDIN_BACKLOG

        w = self.writer
        if self.finished or w is None or w.fd is None:
            return  # the worker ended (or failed): the rest of the stream is dropped
        if not data:
            w.close_input()
            return
        w.write(data)
        if w.backlog > STDIN_BACKLOG:
            self.channel.pause_input()
            w.on_room = self.channel.resume_input

    # ---- both --------------------------------------------------------------------------------

    def _done(self, result: Any) -> None:
        self.result = result
        self.job = None
        if self.kill_timer is not None:
            self.kill_timer.cancel()
            self.kill_timer = None
        if self.writer is not None:
            self.writer.close()
            self.channel.resume_input()  # the client may be blocked sending: let it see the reply
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if self.finished or not self.eof or self.job is not None:
            return
        self.finished = True
        self.release()
        result = self.result
        if isinstance(result, TcrError):
            self.pending.fail(result)
            return
        if not self.opened and not self.cancelled:
            self._open(stdin=False)
        self.pending.resolve(Output(0))

    def _close_fd(self) -> None:
        if self.fd is not None:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = None

    def _cancel(self) -> None:
        """The client went away: close our pipe end, so the worker ends by itself (a partial
        archive is refused by the extraction, which removes its temporary file); it is killed
        only if it does not."""
        self.cancelled = True
        self._close_fd()
        self.eof = True
        if self.writer is not None:
            self.writer.close()
        if self.job is not None:
            job = self.job
            self.kill_timer = self.loop.call_later(KILL_AFTER, job._kill)
        self._maybe_finish()
