"""The Daemon object: owns the loop, the state store and the managers, and wires them together.

Start-up order: flock the state root -> remove a stale pidfile -> signal handlers -> become a
child subreaper -> recover images -> recover networks -> recover containers -> listen -> write the
pidfile (so it appears only once the socket accepts). SIGTERM/SIGINT: stop accepting, let the
managers stop (containers policy-aware), leave images mounted, exit 0.

Signals (docs/daemon.md): TERM/INT shut down; HUP reopens the log (reconnects to syslog; with
stderr logging there is nothing to reopen); USR1, USR2 and ALRM are logged and ignored. They are
handled through the loop (not SIG_IGN, which crun and the containers would inherit).
"""

from __future__ import annotations

import _signal as signal  # not `signal`: its enums bring enum and functools (docs/profile.md)
import os

from tcr.commands.argv import Namespace
from tcr.common import oserrors
from tcr.common.atomic import remove_durable, write_atomic
from tcr.common.log import get_logger
from tcr.daemon.loop import EventLoop
from tcr.daemon.state import StateStore
from tcr.images.manager import ImageManager
from tcr.kernel import pidfd
from tcr.kernel.flock import FileLock
from tcr.rpc.protocol import ABSTRACT_NAME

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional

log = get_logger("tcrd")

DEFAULT_ROOT = "/var/lib/tcr"
DEFAULT_RUN_DIR = "/run/tcr"
DEFAULT_SOCKET = "/run/tcr/tcrd.sock"
DEFAULT_RESOLV_CONF = "/etc/resolv.conf"
IGNORED_SIGNALS = ("SIGUSR1", "SIGUSR2", "SIGALRM")
# Containers get their own stop timeouts at shutdown; past the longest one plus this margin tcrd
# exits anyway (a container that cannot even be SIGKILLed must not keep the daemon alive).
SHUTDOWN_MARGIN = 15.0


def default_options(**kw: Any) -> Namespace:
    ns = Namespace(root=DEFAULT_ROOT, run_dir=DEFAULT_RUN_DIR, socket=DEFAULT_SOCKET,
                            compat_socket=ABSTRACT_NAME, pidfile=None, syslog=False, debug=False, check=False,
                            resolv_conf=DEFAULT_RESOLV_CONF)
    for k, v in kw.items():
        setattr(ns, k, v)
    return ns


class Daemon:
    def __init__(self, options: Optional[Namespace] = None):
        self.options = options or default_options()
        self.root = os.path.abspath(self.options.root)
        self.run_dir = os.path.abspath(self.options.run_dir)
        self.socket_path = os.path.abspath(self.options.socket)
        self.loop = EventLoop()
        self.store = StateStore(self.root)
        from tcr.daemon.events import EventLog

        self.events = EventLog()
        self.store.on_change = self.events.observe
        self.store.on_load = self.events.seed
        self.images = ImageManager(self.root, self.store, daemon=self)
        # Built in start(), after the images are recovered (containers need both).
        self.networks: Any = None
        self.containers: Any = None
        self.server: Any = None
        self.problems: List[str] = []  # what recovery found, for `tcr info`-style reporting
        self._lock = FileLock(os.path.join(self.root, ".lock"), what=f"state root {self.root}")
        self._shutting_down = False
        self._pidfile: Optional[str] = None
        self.loop_stopped = False
        self.reopen_log: Optional[Callable[[], None]] = None  # set by tcr.daemon.main (SIGHUP)

    # ---- start -------------------------------------------------------------------------------

    @property
    def volumes(self) -> Any:
        """The VolumeManager (built on first use, by the container manager that uses it)."""
        return self.containers.volumes if self.containers is not None else None

    def start(self) -> None:
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        os.makedirs(self.run_dir, mode=0o711, exist_ok=True)
        oserrors.default_path = self.root
        self._lock.acquire()  # raises "state root X is in use by tcrd (pid N)"
        self._remove_stale_pidfile()
        try:
            pidfd.set_child_subreaper()
        except OSError as exc:
            log.warning("%s; orphaned container processes will not be reaped by tcrd", exc)
        self.loop.reap_orphans(True)
        from tcr.kernel.libc import heap_trim

        if heap_trim():  # after each burst of work, free heap pages back (docs/profile.md)
            self.loop.on_idle = heap_trim
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self.shutdown)
        self.loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        for name in IGNORED_SIGNALS:
            self.loop.add_signal_handler(getattr(signal, name), _ignored(name))

        self.problems += self.images.recover()

        # NetworkManager only loads its records here (no kernel work); its
        # recover(live_container_ids) runs inside the container recovery, which knows which
        # containers are still alive.
        from tcr.containers.manager import ContainerManager
        from tcr.network.manager import NetworkManager

        self.networks = NetworkManager(self)

        self.containers = ContainerManager(self)
        found = self.containers.recover()  # also runs self.networks.recover(live ids)
        for line in found:  # damaged records and rolled-back leftovers: one line each in the log
            log.warning("%s", line)
        self.problems += found

        from tcr.commands.dispatch import make_dispatch
        from tcr.rpc.server import RpcServer

        abstract = getattr(self.options, "compat_socket", ABSTRACT_NAME) or None
        if getattr(self.options, "no_compat_socket", False):
            abstract = None
        own = make_dispatch(self)
        # The C client's socket speaks its dialect (docs/formats.md, "Migrating from the C tool").
        compat = _compat_dispatch(self, own) if abstract else None
        self.server = RpcServer(self.loop, own, self.socket_path, abstract, compat_dispatch=compat)
        self.server.start()
        if self.options.pidfile:
            self._pidfile = os.path.abspath(self.options.pidfile)
            os.makedirs(os.path.dirname(self._pidfile), exist_ok=True)
            write_atomic(self._pidfile, f"{os.getpid()}\n")
        log.info("listening on %s%s (root %s, pid %d)", self.socket_path,
                 "" if abstract is None else f" and @{abstract}", self.root, os.getpid())

    def _remove_stale_pidfile(self) -> None:
        """We hold the root's lock, so a pidfile naming another pid is left by a crash (or names a
        recycled pid): remove it now, before the slow recovery, so nobody acts on it; the new
        one is written once the socket accepts."""
        if not self.options.pidfile:
            return
        path = os.path.abspath(self.options.pidfile)
        try:
            with open(path, "rb") as f:
                old = f.read(64).decode(errors="replace").strip()
        except FileNotFoundError:
            return
        except OSError as exc:
            old = f"unreadable: {exc.strerror}"
        try:
            remove_durable(path)
            log.info("removed stale pidfile %s (%s)", path, old[:20] or "empty")
        except OSError as exc:
            log.warning("cannot remove stale pidfile %s: %s", path, oserrors.describe(exc))

    def _on_sighup(self) -> None:
        if self.reopen_log is not None:
            self.reopen_log()
            log.info("SIGHUP: log reopened")
        else:
            log.info("SIGHUP: logging to stderr, nothing to reopen")

    # ---- stop --------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """SIGTERM path: stop accepting, let the managers stop, leave images mounted, stop the loop."""
        if self._shutting_down:
            return
        self._shutting_down = True
        log.info("shutting down")
        if self.server is not None:
            self.server.close()
            self.server = None
        # Containers stop gracefully and may take a while (stop timeouts): they call back when done.
        # Nothing here may keep tcrd alive: a failure is logged and the shutdown goes on, and past
        # the longest stop timeout the loop ends anyway.
        if self.containers is not None:
            longest = max([float(c.opts.stop_timeout) for c in self.containers.containers.values()] or [0.0])
            self.loop.call_later(longest + SHUTDOWN_MARGIN, self._shutdown_overdue)
            try:
                self.containers.shutdown(self._after_containers)
            except Exception as exc:
                log.error("stopping containers failed: %s", oserrors.describe(exc))
                self._after_containers()
        else:
            self._after_containers()

    def _shutdown_overdue(self) -> None:
        log.warning("containers did not stop in time; exiting anyway")
        self._after_containers()

    def _after_containers(self) -> None:
        if self.loop_stopped:
            return
        self.loop_stopped = True
        unsaved = getattr(self.containers, "unsaved", lambda: 0)()
        if unsaved:
            log.warning("%d container record(s) could not be written (disk full or failing); the next "
                        "start rebuilds them from the kernel and crun", unsaved)
        if self.networks is not None:
            try:
                self.networks.shutdown()
            except Exception as exc:
                log.error("network shutdown failed: %s", oserrors.describe(exc))
        self.loop.stop()

    def close(self) -> None:
        """Release what the process holds (after the loop ended, or when start() failed)."""
        if self.server is not None:
            self.server.close()
            self.server = None
        if self._pidfile:
            try:
                remove_durable(self._pidfile)
            except OSError:
                pass
            self._pidfile = None
        self.loop.close()
        self._lock.release()


def _compat_dispatch(daemon: Any, own: Any) -> Any:
    """The compat socket's dispatcher, imported at its first request (~100 kB that a board whose
    scripts never use the C client does not pay for)."""
    made: List[Any] = []

    def dispatch(method: str, args: List[str], pwd: str = "/", pid: Optional[int] = None, uid: int = 0,
                 gid: int = 0, stream: Any = None, channel: Any = None) -> Any:
        if not made:
            from tcr.commands import cdialect

            made.append(cdialect.make_dispatch(daemon, own))
        return made[0](method, args, pwd, pid, uid, gid, stream, channel)

    return dispatch


def _ignored(name: str) -> Callable[[], None]:
    def handler() -> None:
        log.info("%s ignored", name)

    return handler
