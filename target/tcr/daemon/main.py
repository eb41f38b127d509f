"""tcrd: the tcr daemon (entry point).

  tcrd [--root DIR] [--socket PATH] [--run-dir DIR] [--compat-socket NAME | --no-compat-socket]
       [--pidfile PATH] [--syslog] [--debug] [--check] [--resolv-conf PATH] [--allow-insecure-crun]
"""

from __future__ import annotations

import sys

from tcr.common.errors import TcrError
from tcr.common.log import get_logger

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Callable, List, Optional

    from tcr.commands.argv import Namespace

log = get_logger("tcrd")


def _setup_logging(opts: Namespace) -> Optional[Callable[[], None]]:
    """Set up logging; returns what SIGHUP calls to reopen the log (None: stderr, nothing to reopen)."""
    from tcr.common import log as tlog

    tlog.setup(debug=opts.debug, prog="tcrd", syslog=opts.syslog)
    if not opts.syslog:
        return None

    def reopen() -> None:  # a fresh /dev/log connection (e.g. after syslogd restarted)
        tlog.setup(debug=opts.debug, prog="tcrd", syslog=True)

    return reopen


# Imported by the managers' recover() during Daemon.start() and needed never again: dropped once
# tcrd listens, as tcr.check is (~50 kB of bytecode; nothing of theirs may stay referenced). The
# loop device code too (tcr.check and the image recovery use it): `image rm` and a failed load
# import it again; a load attaches its loop device in a worker. And the RPC sockets' binding.
STARTUP_ONLY = ("tcr.images.recovery", "tcr.network.recovery", "tcr.containers.recovery",
                "tcr.kernel.loopdev", "tcr.rpc.listen")


def _forget_module(name: str) -> None:
    """Drop a module used once at start-up (a later import loads it again, e.g. `tcr check`)."""
    sys.modules.pop(name, None)
    parent, _, child = name.rpartition(".")
    if parent in sys.modules and hasattr(sys.modules[parent], child):
        delattr(sys.modules[parent], child)


def main(argv: Optional[List[str]] = None) -> int:
    from tcr.daemon import options  # start-up only: dropped below, with tcr.check

    opts = options.parse_args(argv)
    reopen_log = _setup_logging(opts)
    from tcr.common.run import cloexec_inherited

    cloexec_inherited()  # fds our parent left open must not reach crun, nft or containers
    from tcr import check

    if opts.check:
        results = check.run_checks()
        sys.stdout.write(check.render(results))
        return 0 if all(c.ok for c in results) else 1
    missing = [f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "")
               for c in check.daemon_prerequisites() if not c.ok]
    crun_ok = missing or options.crun_is_secure(opts, check)
    del check, options
    _forget_module("tcr.check")  # start-up only: its code (~20 kB of bytecode) need not stay resident
    _forget_module("tcr.daemon.options")
    if missing:
        for line in missing:
            print(f"tcrd: prerequisite missing: {line}", file=sys.stderr)
        return 1
    if not crun_ok:
        return 1

    from tcr.daemon.app import Daemon

    daemon = Daemon(opts)
    daemon.reopen_log = reopen_log
    try:
        try:
            daemon.start()
            for name in STARTUP_ONLY:
                _forget_module(name)
            # A dropped module's functions and its dict reference each other: only the cyclic GC
            # frees them (and tcr.check's), and its oldest generation may not run for hours.
            import gc

            gc.collect()
        except TcrError as exc:
            print(f"tcrd: {exc.render()}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"tcrd: cannot start: {exc}", file=sys.stderr)
            return 1
        daemon.loop.run()
        log.info("stopped")
        return 0
    finally:
        daemon.close()


if __name__ == "__main__":
    sys.exit(main())
