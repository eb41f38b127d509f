"""tcrd: the tcr daemon (entry point).

  tcrd [--root DIR] [--socket PATH] [--run-dir DIR] [--compat-socket NAME | --no-compat-socket]
       [--pidfile PATH] [--syslog] [--debug] [--check] [--resolv-conf PATH] [--allow-insecure-crun]
"""

from __future__ import annotations

import os
import sys

from tcr.commands.argv import ArgParser, ArgumentTypeError, Namespace
from tcr.common.errors import TcrError
from tcr.common.log import get_logger
from tcr.daemon.app import DEFAULT_RESOLV_CONF, DEFAULT_ROOT, DEFAULT_RUN_DIR, DEFAULT_SOCKET
from tcr.rpc.protocol import ABSTRACT_NAME

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Callable, List, Optional

log = get_logger("tcrd")


def _abstract_name(text: str) -> str:
    name = text[1:] if text.startswith("@") else text
    if not name or len(name) > 100 or "\0" in name or "/" in name:
        raise ArgumentTypeError(f"invalid abstract socket name {text!r}")
    return name


def parse_args(argv: Optional[List[str]] = None) -> Namespace:
    p = ArgParser(prog="tcrd", description="tcr daemon: images, containers, networks.")
    p.add_argument("--root", default=DEFAULT_ROOT, help=f"state root (default {DEFAULT_ROOT})")
    p.add_argument("--socket", default=DEFAULT_SOCKET, help=f"RPC socket path (default {DEFAULT_SOCKET})")
    p.add_argument("--run-dir", default=DEFAULT_RUN_DIR,
                   help=f"runtime directory (default {DEFAULT_RUN_DIR})")
    # One destination, so the last of --compat-socket / --no-compat-socket wins (test fixtures
    # turn the socket off, a test that needs it turns it back on under a private name).
    p.add_argument("--compat-socket", metavar="NAME", default=ABSTRACT_NAME, type=_abstract_name,
                   help=f"abstract socket name for the C client and its dialect (default @{ABSTRACT_NAME})")
    p.add_argument("--no-compat-socket", dest="compat_socket", action="store_const", const="",
                   help="do not listen on the compat socket")
    p.add_argument("--pidfile", help="write the daemon's pid here (removed on exit)")
    p.add_argument("--syslog", action="store_true", help="log to syslog instead of stderr")
    p.add_argument("--debug", action="store_true", help="debug logging")
    p.add_argument("--check", action="store_true", help="check prerequisites and exit")
    p.add_argument("--allow-insecure-crun", action="store_true",
                   help="start even if crun lacks +CAP or +SECCOMP (containers then keep every "
                        "capability and have no seccomp filter); also TCR_ALLOW_INSECURE_CRUN=1")
    p.add_argument("--resolv-conf", default=DEFAULT_RESOLV_CONF, metavar="PATH",
                   help=f"upstream resolvers for the DNS forwarder (default {DEFAULT_RESOLV_CONF})")
    return p.parse_args(argv)


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


def _crun_is_secure(opts: Namespace, check: ModuleType) -> bool:
    """A crun without +CAP/+SECCOMP ignores --cap-drop and seccomp: refuse to start on it unless
    the operator said so (flag or environment), and then warn loudly."""
    c = check.crun_security()
    if c is None or c.ok:
        return True
    allowed = opts.allow_insecure_crun or os.environ.get(check.INSECURE_CRUN_OVERRIDE, "") not in ("", "0")
    if not allowed:
        print(f"tcrd: refusing to start: {c.detail} (fix: {c.fix}; to start anyway: "
              f"--allow-insecure-crun or {check.INSECURE_CRUN_OVERRIDE}=1)", file=sys.stderr)
        return False
    log.warning("INSECURE: %s; starting anyway (--allow-insecure-crun)", c.detail)
    return True


def main(argv: Optional[List[str]] = None) -> int:
    opts = parse_args(argv)
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
    crun_ok = missing or _crun_is_secure(opts, check)
    del check
    _forget_module("tcr.check")  # start-up only: its code (~20 kB of bytecode) need not stay resident
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
