"""The container manager: create/start/stop/kill/rm/exec/logs/wait, supervision and recovery.

Life cycle (see docs/containers.md):
  create  -> dir + record ("created"); nothing mounted, no network yet
  start   -> prepare (overlay mount, network attach, /etc files, config.json, command check)
             every container is tcrd's (issue 13): stdio from stdio.py (log FIFOs, a stdin pipe
             with -i, a pty with -t), then `crun run --detach --pid-file` and a pidfd watch on
             the container's init (a child of tcrd, the subreaper); an attached start without a
             tty spawns `crun run` in the foreground and watches crun; clients attach through
             attach.py (output, stdin, signals, window size)
             compat (a client without the attach channel, the C client): the client execs
             `crun run` itself; tcrd watches the client's pid
  exit    -> `crun delete -f`, overlay unmounted, network detached, record "exited"; then the
             restart policy (supervisor.py) may schedule a start again after a backoff
  rm      -> all of the above plus the directory and the record
Everything runs on the event loop: waits (stop -t, wait, logs -f) are Pending replies, never sleeps.
"""

from __future__ import annotations

import errno
import os
import time

from tcr.common import oserrors, syntax
from tcr.common.errors import ContainerNotFound, InternalError, InUse, InvalidArgument, TcrError
from tcr.common.faults import fault
from tcr.common.log import get_logger
from tcr.common.record import replace
from tcr.common.tree import remove_tree
from tcr.containers import crun
from tcr.containers import logs as clogs
from tcr.containers.adjust import AdjustOps
from tcr.containers.bundle import ContainerPaths, check_command, is_mounted, mount_overlay, umount_overlay
from tcr.containers.record import ContainerRecord, NetSummary, endpoints_from_options, new_id

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Set, Tuple

log = get_logger("tcr.containers")

KIND = "containers"
DEFAULT_STOP_TIMEOUT = 10
# Records that could not be written (full disk, I/O error) are retried after these delays.
FLUSH_FIRST = 1.0
FLUSH_MAX = 30.0


class StartFailed(TcrError):
    """The container could not be started; exit_code is docker's 125/126/127."""

    def __init__(self, message: str, exit_code: int = crun.TCR_ERROR, hint: Optional[str] = None):
        super().__init__(message, hint)
        self.exit_code = exit_code


# crun states of a container whose processes exist (paused = frozen by `tcr pause`).
LIVE = ("running", "paused")


class Container:
    """Runtime state of one container (the record is the persistent part)."""

    def __init__(self, rec: ContainerRecord, paths: ContainerPaths):
        from tcr.containers.runrecord import RunOptions

        self.rec = rec
        self.paths = paths
        self.opts = RunOptions.from_dict(rec.options)
        self.watch: Any = None  # loop Watch on the init (detached) or the client (interactive)
        self.pump: Optional[clogs.LogPump] = None
        self.restart_timer: Any = None
        self.kill_timer: Any = None
        self.exit_waiters: List[Callable[[Optional[int]], None]] = []
        # Attached clients (tcr.containers.attach): told the exit code first, before the teardown.
        self.attached: List[Callable[[Optional[int]], None]] = []
        self.stdin: Any = None  # attach.StdinWriter: the container's stdin (-i) or pty master (-it)
        self.tty_fd: Optional[int] = None  # the pty master, for window sizes (-t)
        self.streak = 0  # consecutive quick crashes (backoff)
        self.stop_signal = self.opts.stop_signal or "SIGTERM"
        self.paused = False  # frozen by `tcr pause` (crun's state says so after a tcrd restart)
        self.health_cfg: Optional[Dict[str, Any]] = None  # the check in effect (flags over image)
        self.health: Any = None  # health.Monitor while running with a check


# supervisor.POLICIES but "no": only a container with one of these loads tcr.containers.supervisor
RESTARTING = ("on-failure", "unless-stopped", "always")


def _policy(c: Container) -> Any:
    """c's supervisor.RestartPolicy; None for "no" (most containers: the module is not loaded)."""
    r = c.opts.restart
    if r.name not in RESTARTING:
        return None
    from tcr.containers import supervisor

    return supervisor.RestartPolicy(r.name, r.max_retries)


class ContainerManager(AdjustOps):
    def __init__(self, daemon: Any):
        self.daemon = daemon
        self.loop = daemon.loop
        self.store = daemon.store
        self.root = daemon.root
        self.crun_root = os.path.join(daemon.run_dir, "crun")
        self.dir = os.path.join(daemon.root, KIND)
        self.containers: Dict[str, Container] = {}
        self.shutting_down = False
        self._host: Any = None
        self._volumes: Any = None
        self._unsaved: Set[str] = set()  # ids whose record on disk is older than memory
        self._flush_timer: Any = None
        self._flush_delay = FLUSH_FIRST
        os.makedirs(self.dir, mode=0o711, exist_ok=True)
        os.makedirs(self.crun_root, mode=0o700, exist_ok=True)

    # ---- queries -----------------------------------------------------------------------------

    def list(self) -> List[Container]:
        return sorted(self.containers.values(), key=lambda c: -c.rec.created)

    def find(self, ref: str) -> Container:
        """By full id, name, or unique id prefix."""
        c = self.containers.get(ref)
        if c is not None:
            return c
        for c in self.containers.values():
            if c.rec.name == ref:
                return c
        if ref and all(ch in "0123456789abcdef" for ch in ref):
            hits = [c for cid, c in self.containers.items() if cid.startswith(ref)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise InvalidArgument(f"container id prefix {ref!r} is ambiguous ({len(hits)} matches)")
        raise ContainerNotFound(f"no such container: {ref[:80]}", hint="see 'tcr ps -a'")

    def uses_image(self, image_id: str) -> bool:
        return any(c.rec.image_id == image_id for c in self.containers.values())

    def live_ids(self) -> Set[str]:
        return {cid for cid, c in self.containers.items() if c.rec.state == "running"}

    @property
    def volumes(self) -> Any:
        """The VolumeManager, built on first use (the idle daemon does not import it)."""
        if self._volumes is None:
            from tcr.volumes.manager import VolumeManager

            self._volumes = VolumeManager(self.root, self.store, self._volume_users)
        return self._volumes

    def _volume_users(self) -> List[Tuple[str, str]]:
        return [(c.rec.name, v.src) for c in self.containers.values() for v in c.opts.volumes
                if v.kind == "volume"]

    def _make_volumes(self, opts: Any) -> Any:
        """Name the anonymous volumes and create the named ones (tcr.containers.volumeuse)."""
        if not any(v.kind == "volume" for v in opts.volumes):
            return opts
        from tcr.containers import volumeuse

        return volumeuse.make_volumes(self, opts)

    def _drop_anonymous(self, opts: Any) -> None:
        if any(v.kind == "volume" and v.anonymous and v.src for v in opts.volumes):
            from tcr.containers import volumeuse

            volumeuse.drop_anonymous(self, opts)

    def _save(self, c: Container, **changes: Any) -> bool:
        """Change the record in memory, then write it. A write that fails (full disk, I/O error)
        never fails the caller: stop, kill, exits, restarts and shutdown must go on. The record
        stays newer in memory and is written again later (_flush); False says it is not on disk."""
        if changes:
            c.rec = replace(c.rec, **changes)
        try:
            self.store.save(KIND, c.rec.id, c.rec.to_dict())
        except OSError as exc:
            self._unsaved.add(c.rec.id)
            oserrors.warn(log, "containers.save", "container state not saved, kept in memory and retried: %s",
                          oserrors.describe(exc))
            self._schedule_flush()
            return False
        self._unsaved.discard(c.rec.id)
        return True

    def unsaved(self) -> int:
        """How many records are newer in memory than on disk (after one more try to write them)."""
        if self._unsaved:
            if self._flush_timer is not None:
                self._flush_timer.cancel()
                self._flush_timer = None
            self._flush()
        return len(self._unsaved)

    def _schedule_flush(self) -> None:
        if self._flush_timer is None:
            self._flush_timer = self.loop.call_later(self._flush_delay, self._flush)
            self._flush_delay = min(FLUSH_MAX, self._flush_delay * 2)

    def _flush(self) -> None:
        """Write the records a full disk kept in memory only (a timer, only while some are unsaved)."""
        self._flush_timer = None
        for cid in list(self._unsaved):
            c = self.containers.get(cid)
            if c is None:
                self._unsaved.discard(cid)
                continue
            try:
                self.store.save(KIND, cid, c.rec.to_dict())
            except OSError:
                break
            self._unsaved.discard(cid)
        if self._unsaved:
            self._schedule_flush()
        else:
            self._flush_delay = FLUSH_FIRST
            log.info("container records written again")

    # ---- create ------------------------------------------------------------------------------

    def create(self, opts: Any, interactive: bool = False, persist: bool = True) -> Container:
        """Make the container's directory and record. opts: tcr.containers.runrecord.RunOptions.

        persist=False (run: a start follows at once) leaves the first save to the start; a crash
        in between leaves a directory without a record, which recovery rolls back.
        """
        if self.shutting_down:
            raise InUse("tcrd is shutting down")
        image = self.daemon.images.get(opts.image)
        self.daemon.images.check_usable(image)  # its file changed since load: never run it
        name = opts.name
        if name:
            if not syntax.name(name):
                raise InvalidArgument(f"invalid container name {name!r}",
                                      hint="use letters, digits, '_', '.', '-' (up to 63 characters)")
            if any(c.rec.name == name for c in self.containers.values()):
                raise InUse(f"the container name {name!r} is already in use",
                            hint="remove that container or choose another --name")
        for v in opts.volumes:  # docker refuses these at create: no container is left behind
            if v.kind == "bind" and not v.create and not os.path.lexists(v.src):
                raise InvalidArgument("invalid mount config for type \"bind\": bind source path does not "
                                      f"exist: {v.src}")
        if interactive and opts.restart.name != "no":
            raise InvalidArgument("--restart needs a detached container (-d)")
        cid = new_id()
        while cid in self.containers:
            cid = new_id()
        if not name:
            from tcr.containers.names import random_name

            names = {c.rec.name for c in self.containers.values()}
            name = random_name(names.__contains__, cid)
        paths = ContainerPaths.of(self.root, cid)
        os.makedirs(paths.bundle, mode=0o711)
        fault("container.create.after_dir")
        try:
            opts = self._make_volumes(opts)
        except BaseException:
            _rmtree(paths.dir)
            raise
        rec = ContainerRecord(id=cid, name=name, image_id=image.id, image_ref=image.display_ref,
                              options=opts.to_dict(), command=list(opts.command), created=time.time(),
                              state="created", interactive=interactive,
                              networks=endpoints_from_options(opts.to_dict()))
        c = Container(rec, paths)
        self.containers[cid] = c
        try:
            if persist:
                self.store.save(KIND, c.rec.id, c.rec.to_dict())  # a create that cannot be saved fails
                fault("container.create.after_state_write")
        except BaseException:
            del self.containers[cid]
            _rmtree(paths.dir)
            self._drop_anonymous(opts)
            raise
        return c

    # ---- prepare / teardown (per start) ------------------------------------------------------

    def _host_info(self) -> Any:
        if self._host is None:
            from tcr.containers.ociconfig import HostInfo

            self._host = HostInfo.detect()
        return self._host

    def _image_config(self, image: Any) -> Dict[str, Any]:
        from tcr.common import jsonc

        try:
            # Bounded, non-blocking, regular files only; refused for a broken image (docs/reliability.md).
            image_config = jsonc.loads(self.daemon.images.read_config(image))
        except TcrError as exc:
            raise StartFailed(str(exc), hint=exc.hint)
        except OSError as exc:  # EIO from a damaged image file: one line naming it
            from tcr.common import oserrors

            raise StartFailed(f"cannot read the config.json of image {image.id}: "
                              f"{oserrors.describe(exc, image.config_path)}")
        except ValueError as exc:
            raise StartFailed(f"cannot read the config.json of image {image.id}: {exc}")
        if not isinstance(image_config, dict):
            raise StartFailed(f"the config.json of image {image.id} is not a JSON object")
        return image_config

    def _volume_sources(self, c: Container, image: Any) -> Tuple[str, ...]:
        """Host directory of every -v/--mount (tcr.containers.volumeuse)."""
        if not c.opts.volumes:
            return ()
        from tcr.containers import volumeuse

        return volumeuse.volume_sources(self, c, image)

    def needs_seeding(self, c: Container) -> bool:
        """c mounts a volume not yet filled from an image (its first start will copy into it)."""
        named = [v.src for v in c.opts.volumes if v.kind == "volume"]
        if not named or self.loop is None:
            return False  # no volume: the VolumeManager (and its module) is not needed for this start
        vm = self.volumes
        return any(src in vm.vols and not vm.vols[src].seeded for src in named)

    def seed_volumes(self, c: Container, on_done: Callable[[Optional[TcrError]], None]) -> bool:
        """Before a start: copy the image's content into c's new volumes, in a worker
        (tcr.containers.volumeuse). False when there is nothing to do (on_done is not called)."""
        if not self.needs_seeding(c):
            return False
        from tcr.containers import volumeuse

        return volumeuse.seed_volumes(self, c, on_done)

    def _devices(self, c: Container) -> Tuple[Any, ...]:
        if not c.opts.privileged and not c.opts.devices:
            return ()  # the common case: tcr.containers.volumeuse and tcr.kernel.devices stay unloaded
        from tcr.containers import volumeuse

        return volumeuse.devices(self, c)

    def _build_config(self, c: Container, image: Any, rootfs: str, net: NetSummary,
                      image_config: Optional[Dict[str, Any]] = None,
                      volume_sources: Tuple[str, ...] = ()) -> Dict[str, Any]:
        from tcr.containers.ociconfig import BundlePaths, build_config

        if image_config is None:
            image_config = self._image_config(image)
        p = c.paths
        netns: Optional[str] = {"host": "host", "none": None}.get(net.mode, net.netns_path or None)
        init = _find_init() if c.opts.init else None
        if c.opts.init and init is None:
            raise StartFailed("--init needs tini on this host", hint="install the tini package (tini-static)")
        paths = BundlePaths(rootfs=rootfs, etc_hosts=p.hosts, etc_hostname=p.hostname, etc_resolv=p.resolv,
                            netns_path=netns, volume_sources=volume_sources, devices=self._devices(c),
                            init_binary=init)
        config = build_config(image_config, c.opts, self._host_info(), paths, c.rec.id)
        from tcr.containers import seccomp_cache

        # crun skips its per-start libseccomp compile (~10 ms); compiled by a worker on a miss
        seccomp_cache.annotate(config, self.loop)
        ann = image_config.get("annotations") or {}
        c.stop_signal = c.opts.stop_signal or str(ann.get("org.opencontainers.image.stopSignal") or "SIGTERM")
        c.health_cfg = _health_config(c.opts.health, ann)
        return config

    def _health_begin(self, c: Container) -> None:
        """Start the health monitor of a running container that has a check (nothing otherwise)."""
        if c.health_cfg is None:
            return
        from tcr.containers import health

        cid = c.rec.id
        c.health = health.Monitor(
            self.loop, c.health_cfg,
            lambda cmd, pid_file: crun.exec_argv(self.crun_root, cid, cmd, pid_file=pid_file),
            os.path.join(c.paths.dir, "health.pid"), c.rec.name, paused=lambda: c.paused,
            on_change=lambda status: self._health_event(c, status))
        c.health.start()

    def _health_event(self, c: Container, status: str) -> None:
        """docker's `health_status: healthy|unhealthy` event (`tcr events`)."""
        events = getattr(self.daemon, "events", None)
        if events is not None:
            events.emit("container", f"health_status: {status}", c.rec.id,
                        {"name": c.rec.name, "image": c.rec.image_ref})

    def _health_end(self, c: Container) -> None:
        if c.health is not None:
            c.health.stop()
            c.health = None

    def _prepare(self, c: Container) -> None:
        """Everything a start needs; undone by _teardown on failure."""
        from tcr.containers import etcfiles

        rec = c.rec
        view = c.opts
        try:
            image = self.daemon.images.get(rec.image_id)
        except TcrError:
            raise StartFailed(f"the image {rec.image_ref} ({rec.image_id}) of container {rec.name} is gone")
        # Broken or not mounted (e.g. its file was damaged by a power cut): one clear line, before
        # anything is mounted (the overlay mount would fail with a bare ENOENT).
        self.daemon.images.check_usable(image)
        paths = c.paths
        try:
            if view.read_only:
                rootfs = image.rootfs
            else:
                _mount_rootfs(image, paths)
                rootfs = paths.merged
            image_config = self._image_config(image)
            volume_sources = self._volume_sources(c, image)
            net = self._attach(c, view, image_config)
            from tcr.containers.ociconfig import container_hostname

            hostname = container_hostname(view, self._host_info(), rec.id)
            if net.mode == "nat":
                peers: List[Tuple[str, List[str]]] = [
                    (ip, names.split()) for ip, names in self.daemon.networks.hosts_entries(rec.id)]
                resolv = self.daemon.networks.resolv_conf(rec.id)
            else:
                peers = []
                resolv = etcfiles.resolv_text(net.mode, host_text=etcfiles.read_host_resolv())
            peers += etcfiles.extra_hosts(view.add_hosts)
            resolv = etcfiles.with_dns(resolv, view.dns, view.dns_search, view.dns_options)
            etcfiles.write_all(paths.etc, hostname, etcfiles.hosts_text(hostname, rec.name, net.ip, peers),
                               resolv)
            config = self._build_config(c, image, rootfs, net, image_config, volume_sources)
            if rootfs == image.rootfs and not _targets_exist(rootfs, config):
                # --read-only straight on the squashfs only works if every mount point exists
                # there (crun cannot create one on a read-only fs): otherwise an overlay, whose
                # root stays read-only through root.readonly.
                _mount_rootfs(image, paths)
                rootfs = paths.merged
                config["root"]["path"] = rootfs
            process = config.get("process") or {}
            args = list(process.get("args") or [])
            if view.init:
                args = args[2:]  # tini -- CMD: check CMD
            # The command may live in a bind mount or a volume (-v $PWD:/w -w /w img ./build.sh).
            binds = [(m["destination"], m["source"]) for m in config.get("mounts") or []
                     if m.get("type") == "bind"]
            code = check_command(rootfs, args, process.get("env") or [], process.get("cwd") or "/", binds)
            if code is not None:
                what = "not found" if code == crun.NOT_FOUND else "not executable"
                args = args or [""]
                raise StartFailed(f"cannot run {args[0]!r} in container {rec.name}: {what}", code)
            from tcr.common import jsonc

            with open(paths.config, "w") as f:
                f.write(jsonc.dumps(config))
            # Saved with the state change that follows (one fsync'd write per start).
            c.rec = replace(c.rec, net=net, command=list(process.get("args") or rec.command), error="")
        except BaseException:
            self._teardown(c)
            raise

    def _attach(self, c: Container, view: Any, image_config: Optional[Dict[str, Any]] = None) -> NetSummary:
        """Plumb every network of the record, in order: the first gets eth0, the default route
        and the published ports (attach), the others ethN (connect). None at all (every network
        disconnected): a namespace with only lo, which `network connect` can plug into."""
        mode = view.network or "tcr_default"
        if mode == "none":
            return NetSummary("none")
        if mode == "host":
            return NetSummary("host")
        nets = self.daemon.networks
        if nets is None:
            raise StartFailed("NAT networking is not available in this tcrd",
                              hint="use --network none or --network host")
        rec = c.rec
        if not rec.networks:
            nets.sandbox(rec.id)
            return self.net_summary(c)
        publish = list(view.publish)
        if view.publish_all and image_config is not None:
            publish += exposed_ports(image_config)
        first = rec.networks[0]
        nets.attach(rec.id, rec.name, first.network, publish,
                    create=view.network_create and first.network == mode, aliases=first.aliases,
                    ip=first.ip or None)
        for ep in rec.networks[1:]:
            nets.connect(rec.id, rec.name, ep.network, ep.aliases, ep.ip or None)
        return self.net_summary(c)

    def net_summary(self, c: Container) -> NetSummary:
        """What ps/inspect show of a running NAT container: its attachments, primary first."""
        nets = self.daemon.networks
        atts = nets.attachments(c.rec.id)
        views = []
        for a in atts:
            d = a.to_dict()
            d.pop("netnsPath", None)
            d.pop("dns", None)
            d["ports"] = [_port_text(p) for p in a.ports]
            views.append(d)
        if not atts:
            return NetSummary("nat", netns_path=nets.netns_path(c.rec.id))
        p = atts[0]
        ports = [_port_text(x) for a in atts for x in a.ports]
        return NetSummary("nat", p.network, p.ip, p.gateway, p.netns_path, ports, attachments=views)

    def _teardown(self, c: Container) -> None:
        """Undo a start: crun state, overlay mount, network attachment. Idempotent, best effort."""
        cid = c.rec.id
        self._health_end(c)
        if os.path.isdir(os.path.join(self.crun_root, cid)):
            try:
                crun.delete(self.crun_root, cid)
            except (TcrError, OSError) as exc:
                log.warning("container %s: crun delete failed: %s", cid[:12], oserrors.describe(exc))
        try:
            umount_overlay(c.paths)
        except OSError as exc:
            log.warning("container %s: cannot unmount its root: %s", cid[:12], oserrors.describe(exc))
        # No net summary means a crash came between attach and the record write: detach anyway
        # (idempotent), or the lease, ports and veth would stay until the next daemon restart.
        if self.daemon.networks is not None and (c.rec.net is None or c.rec.net.mode == "nat"):
            try:
                self.daemon.networks.detach(cid)
            except (TcrError, OSError) as exc:
                log.warning("container %s: network detach failed: %s", cid[:12], oserrors.describe(exc))

    # ---- start: detached ---------------------------------------------------------------------

    def start(self, c: Container, winsize: Optional[Tuple[int, int]] = None, attached: bool = False) -> None:
        """Start c under tcrd's supervision, foreground runs included (docs/containers.md).

        stdio: tcr.containers.stdio (FIFOs to the log pump, a stdin pipe with -i, a pty with -t);
        winsize: the attaching client's terminal, set before the process starts (-t).
        attached: a client waits for the exit (foreground run, start -a): without a tty, crun then
        runs in the foreground as tcrd's child (no --detach double fork; the loop is not blocked
        while it starts, and the record write overlaps the start); its exit status is the
        container's, and a start error is reported at its exit (_on_crun_exit).
        """
        from tcr.containers import stdio as cstdio

        rec = c.rec
        if rec.state == "running":
            raise InUse(f"container {rec.name} is already running")
        if rec.interactive:
            raise InvalidArgument(f"container {rec.name} was created for an interactive run",
                                  hint="run it again with 'tcr run'")
        self._cancel_timers(c)
        self._prepare(c)
        fault("container.start.after_prepare")
        paths = c.paths
        self._close_stdio(c)
        try:  # a full disk (no inode for a FIFO) or the fd limit: undo the prepare
            io = cstdio.open_stdio(paths, c.opts.interactive, c.opts.tty)
        except BaseException:
            self._teardown(c)
            raise
        try:
            try:
                os.unlink(paths.pid_file)
            except FileNotFoundError:
                pass
            crun_log = os.path.join(paths.dir, "crun.log")
            from tcr.common.run import run

            head = [crun.crun_path(), "--root", self.crun_root, f"--log=file:{crun_log}"]
            # A foreground crun deletes the cgroup itself when the container ends, before tcrd
            # could read its OOM counter (crun 1.8 has no run --keep): a container with a memory
            # limit, the one the OOM killer takes inside its cgroup, runs the detached way.
            foreground = attached and not c.opts.tty and not c.opts.memory
            if foreground:
                from tcr.common.run import spawn

                mark = _size(crun_log)
                pid = spawn(head + ["run", "--pid-file", paths.pid_file, "--bundle", paths.bundle, rec.id],
                            stdin=io.stdin, stdout=io.stdout, stderr=io.stderr)
                c.watch = self.loop.watch_process(pid, lambda code, c=c: self._on_crun_exit(c, code, mark))
                self.loop.call_later(0.05, lambda c=c, w=c.watch: self._learn_pid(c, w, 0.05))
                self._adopt_stdio(c, io)
                io.close_crun_side()
            elif c.opts.tty:
                argv = head + ["create", "--console-socket", paths.console_sock, "--pid-file", paths.pid_file,
                               "--bundle", paths.bundle, rec.id]
            else:
                argv = head + crun.run_detached_argv(self.crun_root, paths.bundle, rec.id, paths.pid_file)[3:]
            if not foreground:
                r = run(argv, check=False, timeout=60, stdout=io.stdout, stderr=io.stderr, stdin=io.stdin)
                if r.returncode != 0:
                    msg = _last_line(crun_log) or f"crun exited with {r.returncode}"
                    raise StartFailed(f"cannot start container {rec.name}: {msg}",
                                      crun.classify_start_error(msg))
            if c.opts.tty:
                master = cstdio.receive_master(io)
                if winsize and winsize[0] and winsize[1]:
                    cstdio.set_winsize(master, *winsize)
                r = run(head + ["start", rec.id], check=False, timeout=60)
                if r.returncode != 0:
                    msg = _last_line(crun_log) or f"crun start exited with {r.returncode}"
                    raise StartFailed(f"cannot start container {rec.name}: {msg}",
                                      crun.classify_start_error(msg))
            fault("container.start.after_crun_start")
            if c.watch is None:
                with open(paths.pid_file) as f:
                    pid = int(f.read().strip())
                # Watch before returning to the loop, or the orphan reaper could take its exit status.
                c.watch = self._watch_init(c, pid)
                self._adopt_stdio(c, io)  # the pump's read ends open before ours close: a FIFO that
                io.close_crun_side()  # nobody holds loses what a quick container wrote
        except BaseException as exc:
            io.close_all()
            self._close_stdio(c)
            self._teardown(c)
            self._save(c, state="exited", pid=0, error=str(exc), finished_at=time.time())
            raise
        self._save(c, state="running", pid=pid, exit_code=None, started_at=time.time(), finished_at=0.0,
                   stopped_by_user=False, interrupted=False, oom_killed=False)
        log.info("container %s (%s) started, pid %d", rec.id[:12], rec.name, pid)
        self._health_begin(c)

    def _learn_pid(self, c: Container, watch: Any, delay: float) -> None:
        """The init's pid of a foreground-spawned container (rec.pid is crun's until then; stats
        and top need the container's): from crun's pid file once crun wrote it. A few timers
        with a growing delay, not a poll loop; gives up after ~3 s (the record keeps crun's pid)."""
        if c.watch is not watch or c.rec.state != "running":
            return
        try:
            with open(c.paths.pid_file) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid > 0:
            c.rec = replace(c.rec, pid=pid)  # in memory; saved with the next state change
        elif delay < 2.0:
            self.loop.call_later(delay * 2, lambda: self._learn_pid(c, watch, delay * 2))

    def _on_crun_exit(self, c: Container, code: Optional[int], mark: int) -> None:
        """A foreground crun ended: the container's exit, or crun's own start error (its log grew)."""
        if code:
            msg = _last_line(os.path.join(c.paths.dir, "crun.log"), since=mark)
            if msg:
                c.rec = replace(c.rec, error=f"cannot start container {c.rec.name}: {msg}")
                code = crun.classify_start_error(msg)
        self._on_exit(c, code)

    def _adopt_stdio(self, c: Container, io: Any) -> None:
        """Take over tcrd's ends of a started container's stdio: the pump, stdin, the pty."""
        from tcr.containers.attach import StdinWriter

        if io.master is not None:
            master, io.master = io.master, None
            c.tty_fd = master
            if c.opts.interactive:
                c.stdin = StdinWriter(self.loop, os.dup(master))
            c.pump = self._new_pump(c, fds=[(os.dup(master), "stdout")])
        else:
            c.pump = self._new_pump(c)
            if io.stdin_writer_fd is not None:
                c.stdin = StdinWriter(self.loop, io.stdin_writer_fd)
                io.stdin_writer_fd = None

    def _close_stdio(self, c: Container) -> None:
        if c.pump is not None:
            c.pump.close()
            c.pump = None
        if c.stdin is not None:
            c.stdin.close()
            c.stdin = None
        if c.tty_fd is not None:
            os.close(c.tty_fd)
            c.tty_fd = None

    def resize(self, c: Container, rows: int, cols: int) -> None:
        from tcr.containers.stdio import set_winsize

        if c.tty_fd is not None and rows and cols:
            try:
                set_winsize(c.tty_fd, rows, cols)
            except OSError as exc:
                log.debug("container %s: resize failed: %s", c.rec.id[:12], exc)

    def signal(self, c: Container, sig: str) -> None:
        """sig-proxy: a signal the attached client got, for the container (no stop flag set)."""
        if c.rec.state == "running":
            crun.kill(self.crun_root, c.rec.id, sig)

    # ---- start: interactive (the client execs crun) ------------------------------------------

    def run_interactive(self, c: Container, client_pid: Optional[int]) -> List[str]:
        """The compat dialect's interactive run: the client execs crun (tcr.containers.occasional)."""
        from tcr.containers import occasional

        return occasional.run_interactive(self, c, client_pid)

    def _on_client_exit(self, c: Container) -> None:
        c.watch = None
        if self.containers.get(c.rec.id) is not c:
            return
        self._teardown(c)
        # crun ran in the client: its exit code is not ours to see (docs/containers.md).
        self._exited(c, None)

    # ---- exits and restarts ------------------------------------------------------------------

    def _new_pump(self, c: Container, fds: Optional[List[Tuple[int, str]]] = None) -> clogs.LogPump:
        sink: Any
        if c.opts.log_driver == "none":
            sink = clogs.NullSink()
        elif c.opts.log_driver == "syslog":
            from tcr.containers.syslogsink import SyslogSink

            sink = SyslogSink(c.rec.name)
        else:
            sink = clogs.RotatingLog(c.paths.log, c.opts.log_max_size, c.opts.log_max_files)
        pump = clogs.LogPump(self.loop, c.paths.log_fifo, sink, err_fifo=c.paths.err_fifo, fds=fds)
        pump.open()
        return pump

    def _on_exit(self, c: Container, code: Optional[int]) -> None:
        c.watch = None
        if self.containers.get(c.rec.id) is not c:
            return
        if c.pump is not None:
            c.pump.drain()
            if c.pump.fd is None:
                c.pump = None
        # Attached clients get the code now: the teardown (crun delete, umount) is not theirs to wait.
        attached, c.attached = c.attached, []
        for cb in attached:
            try:
                cb(code)
            except Exception:
                log.exception("attach exit callback failed")
        if c.opts.tty or c.stdin is not None:
            if c.pump is not None:
                c.pump.close()
                c.pump = None
            self._close_stdio(c)
        if _oom_killed(c.rec.id):  # read before the teardown deletes the cgroup
            c.rec = replace(c.rec, oom_killed=True)
        self._teardown(c)
        self._exited(c, code)

    def _exited(self, c: Container, code: Optional[int]) -> None:
        if c.kill_timer is not None:
            c.kill_timer.cancel()
            c.kill_timer = None
        now = time.time()
        rec = c.rec
        uptime = now - rec.started_at if rec.started_at else 0.0
        policy = _policy(c)
        decision = None
        if policy is not None:
            from tcr.containers import supervisor

            decision = supervisor.on_exit(policy, code, rec.stopped_by_user, rec.restart_count, c.streak,
                                          uptime, self.shutting_down)
        log.info("container %s (%s) exited with %s", rec.id[:12], rec.name, "?" if code is None else code)
        waiters, c.exit_waiters = c.exit_waiters, []
        try:
            if decision is not None and decision.restart:
                c.streak = decision.streak
                self._save(c, state="restarting", pid=0, exit_code=code, finished_at=now)
                c.restart_timer = self.loop.call_later(decision.delay, lambda c=c: self._restart(c))
                log.info("container %s: restarting in %.1fs", rec.id[:12], decision.delay)
            elif c.opts.rm:
                c.rec = replace(c.rec, state="exited", pid=0, exit_code=code, finished_at=now)
                self._remove_now(c)
            else:
                self._save(c, state="exited", pid=0, exit_code=code, finished_at=now)
        finally:  # whatever failed above, `stop`, `wait` and `restart` get their answer
            for w in waiters:
                try:
                    w(code)
                except Exception:
                    log.exception("exit waiter failed")

    def _restart(self, c: Container) -> None:
        c.restart_timer = None
        if self.containers.get(c.rec.id) is not c or c.rec.state != "restarting" or self.shutting_down:
            return
        self._save(c, restart_count=c.rec.restart_count + 1)
        try:
            self.start(c)
        except Exception as exc:  # a full disk or the fd limit too: the policy retries with backoff
            oserrors.warn(log, f"restart.{c.rec.id}", "container %s: restart failed: %s", c.rec.id[:12],
                          oserrors.describe(exc))
            c.rec = replace(c.rec, started_at=time.time())
            self._exited(c, getattr(exc, "exit_code", crun.TCR_ERROR))

    def mark_failed(self, c: Container, code: Optional[int]) -> None:
        """A start that never ran: the container stays, exited with docker's 125/126/127."""
        if self.containers.get(c.rec.id) is c and c.rec.state != "running":
            c.rec = replace(c.rec, state="exited", exit_code=code, finished_at=time.time())
            try:
                self.store.save(KIND, c.rec.id, c.rec.to_dict())
            except OSError:
                # Kept only in memory it would hold its name until the next start rolls it back:
                # a run that failed on a full disk leaves nothing instead.
                self._remove_now(c)

    def _cancel_timers(self, c: Container) -> None:
        for attr in ("restart_timer", "kill_timer"):
            t = getattr(c, attr)
            if t is not None:
                t.cancel()
                setattr(c, attr, None)

    def user_start(self, c: Container, winsize: Optional[Tuple[int, int]] = None,
                   attached: bool = False) -> None:
        """`tcr start`: a fresh start clears the user-stop flag and the restart counters. A container
        of an old interactive run (the client ran crun) becomes an ordinary one: tcrd runs it."""
        if c.rec.state == "restarting":
            self._cancel_timers(c)
            self._save(c, state="exited")
        c.streak = 0
        self._save(c, restart_count=0, stopped_by_user=False, interactive=False)
        self.start(c, winsize, attached)

    # ---- stop / kill -------------------------------------------------------------------------

    def stop(self, c: Container, timeout: Optional[float], done: Callable[[Optional[int]], None],
             by_user: bool = True) -> None:
        """SIGTERM (or the configured stop signal), SIGKILL after timeout; done(code) once it exited."""
        rec = c.rec
        self.thaw(c)
        if by_user and not rec.stopped_by_user:
            self._save(c, stopped_by_user=True)
        if rec.state == "restarting":
            self._cancel_timers(c)
            self._save(c, state="exited")
        if c.rec.state != "running":
            done(c.rec.exit_code)
            return
        c.exit_waiters.append(done)
        if timeout is None:
            timeout = float(c.opts.stop_timeout)
        sig = c.stop_signal
        if timeout <= 0:
            sig = "SIGKILL"
        if not crun.kill(self.crun_root, rec.id, sig):
            log.debug("container %s: crun kill %s failed (already gone?)", rec.id[:12], sig)
        if sig != "SIGKILL" and c.kill_timer is None:
            c.kill_timer = self.loop.call_later(timeout, lambda c=c: self._force_kill(c))
        if c.watch is None:  # nothing will tell us it exited (should not happen): settle now
            self._teardown(c)
            self._exited(c, None)

    def _force_kill(self, c: Container) -> None:
        c.kill_timer = None
        if c.rec.state == "running":
            log.info("container %s did not stop in time: SIGKILL", c.rec.id[:12])
            crun.kill(self.crun_root, c.rec.id, "SIGKILL")

    def kill(self, c: Container, sig: str) -> None:
        if c.rec.state != "running":
            raise InvalidArgument(f"container {c.rec.name} is not running")
        self.thaw(c)
        self._save(c, stopped_by_user=True)
        if not crun.kill(self.crun_root, c.rec.id, sig):
            raise InternalError(f"cannot send {sig} to container {c.rec.name}")

    # ---- remove ------------------------------------------------------------------------------

    def check_removable(self, c: Container) -> None:
        if c.rec.state == "running":
            raise InUse(f"container {c.rec.name} is running", hint="stop it first or use 'tcr rm -f'")

    def remove(self, c: Container, force: bool = False, volumes: bool = False) -> None:
        """rm [-f] [-v]: volumes also removes the container's anonymous volumes."""
        if not force:
            self.check_removable(c)
        # Best effort (a full disk must not stop an rm): it only keeps a policy from restarting
        # the container at boot if tcrd crashes before the record is deleted.
        self._save(c, stopped_by_user=True)
        self._remove_now(c, volumes)

    def _remove_now(self, c: Container, volumes: bool = False) -> None:
        cid = c.rec.id
        self._cancel_timers(c)
        self.thaw(c)
        if c.watch is not None:
            c.watch.cancel()  # the orphan reaper collects the killed process
            c.watch = None
        self._teardown(c)  # crun delete --force kills whatever still runs
        fault("container.rm.after_teardown")
        if c.pump is not None:
            c.pump.drain()
        self._close_stdio(c)
        attached, c.attached = c.attached, []
        for cb in attached:
            cb(c.rec.exit_code)
        if is_mounted(c.paths.merged):
            raise InUse(f"container {c.rec.name}: its root is still mounted at {c.paths.merged}")
        _rmtree(c.paths.dir)
        try:
            self.store.delete(KIND, cid, last=c.rec.to_dict())
        except FileNotFoundError:
            pass
        except OSError as exc:  # EIO on the directory fsync: the unlink itself is done
            log.warning("container %s: record removal not durable: %s", cid[:12], oserrors.describe(exc))
        self._unsaved.discard(cid)
        fault("container.rm.after_state_delete")
        self.containers.pop(cid, None)
        for network in dict.fromkeys([c.opts.network] + [e.network for e in c.rec.networks]):
            self._prune_network(network)
        if volumes or c.opts.rm:  # docker's --rm takes the anonymous volumes along
            self._drop_anonymous(c.opts)
        waiters, c.exit_waiters = c.exit_waiters, []
        for w in waiters:
            w(c.rec.exit_code)
        log.info("container %s (%s) removed", cid[:12], c.rec.name)

    def _prune_network(self, network: str) -> None:
        """A network made on first use goes with the last container that refers to it."""
        nets = self.daemon.networks
        if nets is None or network in ("none", "host") or any(
                o.opts.network == network or any(e.network == network for e in o.rec.networks)
                for o in self.containers.values()):
            return
        try:
            nets.prune_auto(network)
        except (TcrError, OSError) as exc:  # the container is gone either way; `network rm` can finish it
            log.warning("cannot remove network %s made for its containers: %s", network, exc)

    # ---- exec --------------------------------------------------------------------------------

    def _exec_argv(self, c: Container, cmd: List[str], tty: bool, env: List[str], user: Optional[str],
                   cwd: Optional[str], detach: bool = False) -> List[str]:
        """crun exec argv with docker's semantics (tcr.containers.execplan); StartFailed(127/126)
        for a command that cannot run."""
        from tcr.containers import execplan

        self._require_running(c)
        p = execplan.plan(execplan.load_config(c.paths.config), env, user, cwd)
        if p.rootfs:
            code = check_command(p.rootfs, cmd, p.env, p.cwd)
            if code is not None:
                what = "not found" if code == crun.NOT_FOUND else "not executable"
                raise StartFailed(f"cannot exec {cmd[0]!r} in container {c.rec.name}: {what}", code)
        return crun.exec_argv(self.crun_root, c.rec.id, cmd, tty=tty, detach=detach, env=p.env, user=p.user,
                              cwd=p.cwd)

    def exec_args(self, c: Container, cmd: List[str], tty: bool, env: List[str], user: Optional[str],
                  cwd: Optional[str]) -> List[str]:
        return self._exec_argv(c, cmd, tty, env, user, cwd)

    def exec_detached(self, c: Container, cmd: List[str], env: List[str], user: Optional[str],
                      cwd: Optional[str]) -> None:
        """`exec -d`: started by tcrd, output into the container's log (tcr.containers.occasional)."""
        from tcr.containers import occasional

        occasional.exec_detached(self, c, cmd, env, user, cwd)

    def _require_running(self, c: Container) -> None:
        if c.rec.state != "running":
            raise InvalidArgument(f"container {c.rec.name} is not running")

    # ---- wait / logs -------------------------------------------------------------------------

    def on_exit(self, c: Container, cb: Callable[[Optional[int]], None]) -> Callable[[], None]:
        """cb(code) when c stops (now if it is not running). Returns a canceller."""
        if c.rec.state not in ("running", "restarting"):
            cb(c.rec.exit_code)
            return lambda: None
        c.exit_waiters.append(cb)

        def cancel() -> None:
            if cb in c.exit_waiters:
                c.exit_waiters.remove(cb)

        return cancel

    # ---- recovery ----------------------------------------------------------------------------

    def recover(self) -> List[str]:
        """Rebuild from records + crun state: re-adopt live containers, clean or restart dead ones.
        Start-up only: tcr.containers.recovery, which tcrd drops once it listens (docs/profile.md)."""
        from tcr.containers import recovery

        return recovery.recover(self)

    def _watch_init(self, c: Container, pid: int) -> Any:
        """Watch a detached container's init; its exit goes to _on_exit."""
        return self.loop.watch_process(pid, lambda code, c=c: self._on_exit(c, code))

    def _watch_client(self, c: Container, pid: int) -> Any:
        """Watch the client that runs crun itself (an interactive run of the compat dialect)."""
        return self.loop.watch_process(pid, lambda _code, c=c: self._on_client_exit(c))

    # ---- shutdown ----------------------------------------------------------------------------

    def shutdown(self, done: Callable[[], None]) -> None:
        """Stop every running container in parallel (their stop timeouts), then done()."""
        self.shutting_down = True
        for c in self.containers.values():
            if c.restart_timer is not None:
                self._cancel_timers(c)
                self._save(c, state="exited", interrupted=True)
        running = [c for c in self.containers.values() if c.rec.state == "running"]
        if not running:
            done()
            return
        left = {"n": len(running)}

        def one(_code: Optional[int]) -> None:
            left["n"] -= 1
            if left["n"] == 0:
                done()

        for c in running:
            if not c.rec.interactive:
                self._save(c, interrupted=True)
            try:
                self.stop(c, None, one, by_user=False)
            except Exception:
                log.exception("stopping %s at shutdown", c.rec.id[:12])
                one(None)


# ---- helpers ----------------------------------------------------------------------------------


def _oom_killed(cid: str) -> bool:
    """Did the kernel's OOM killer act in the container's cgroup? One read of a counter at the
    exit (no polling, no eventfd kept per container): the cgroup lives until `crun delete`."""
    from tcr.kernel.cgroupmem import oom_kills_at  # not cgroupfs: the stats code stays out of tcrd

    # ociconfig's cgroupsPath: "/tcr/<id>" (tcr never sets another).
    return bool(oom_kills_at(f"/tcr/{cid}"))


def _port_text(p: Any) -> str:
    to_text = getattr(p, "to_text", None)
    if callable(to_text):
        return str(to_text())
    d = p.to_dict() if hasattr(p, "to_dict") else dict(p)
    host_ip = d.get("hostIp") or d.get("host_ip") or ""
    hp = d.get("hostPort") or d.get("host_port")
    cp = d.get("containerPort") or d.get("container_port")
    proto = d.get("proto") or d.get("protocol") or "tcp"
    return f"{host_ip + ':' if host_ip and host_ip != '0.0.0.0' else ''}{hp}->{cp}/{proto}"


INIT_CANDIDATES = ("/usr/bin/tini-static", "/usr/sbin/tini-static", "/sbin/tini-static", "/usr/bin/tini",
                   "/usr/sbin/tini", "/sbin/tini", "/bin/tini", "/usr/local/bin/tini")


def _find_init() -> Optional[str]:
    """tini for --init: the static build first (the image may have no libc of the host's kind)."""
    for p in INIT_CANDIDATES:
        if os.access(p, os.X_OK):
            return p
    return None


def exposed_ports(image_config: Dict[str, Any]) -> List[str]:
    """-P: every EXPOSEd port of the image (tcr-create-image keeps them in an annotation,
    "80/tcp,53/udp"), each on an ephemeral host port."""
    ann = image_config.get("annotations") or {}
    text = str(ann.get("org.opencontainers.image.exposedPorts") or "")
    out = []
    for item in text.split(","):
        port, _, proto = item.strip().partition("/")
        if port.isdigit() and 1 <= int(port) <= 65535 and (proto or "tcp") in ("tcp", "udp"):
            out.append(f"{port}/{proto or 'tcp'}")
    return out


def _targets_exist(rootfs: str, config: Dict[str, Any]) -> bool:
    from tcr.containers.bundle import resolve_in_root

    for m in config.get("mounts") or []:
        dst = m.get("destination") or ""
        host = resolve_in_root(rootfs, dst)
        if host is None or not os.path.lexists(host):
            return False
    return True


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _mount_rootfs(image: Any, paths: ContainerPaths) -> None:
    """The container's overlay over its image; the kernel's EIO there comes from the image (its
    file damaged on the storage): one line that names it, not the state root."""
    try:
        mount_overlay(image.rootfs, paths)
    except OSError as exc:
        if exc.errno != errno.EIO:
            raise
        raise StartFailed(f"cannot mount the root filesystem of image {image.id}: I/O error reading "
                          f"{image.stored}: check the storage (dmesg)",
                          hint=f"tcr image verify {image.id}; load the image again")


def _last_line(path: str, since: int = 0) -> str:
    try:
        with open(path, errors="replace") as f:
            if since:
                f.seek(since)
            lines = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
    except OSError:
        return ""
    if not lines:
        return ""
    last = lines[-1]
    if last.startswith("{"):  # --log-format=json lines
        from tcr.common import jsonc

        try:
            return str(jsonc.loads(last).get("msg", last))
        except (ValueError, AttributeError):
            return last
    return last


def _rmtree(path: str) -> None:
    remove_tree(path)


def _health_config(run: Optional[Dict[str, Any]], ann: Any) -> Optional[Dict[str, Any]]:
    """The check in effect: --health-* over the image's HEALTHCHECK; None (and no import of the
    health modules) when neither has one."""
    image_hc = ann.get("org.tcr.image.healthcheck") if isinstance(ann, dict) else None
    if run is None and not image_hc:
        return None
    from tcr.containers import healthcfg

    img = None
    if isinstance(image_hc, str):
        from tcr.common import jsonc

        try:
            img = healthcfg.from_image(jsonc.loads(image_hc))
        except ValueError:
            img = None
    return healthcfg.effective(run, img)

