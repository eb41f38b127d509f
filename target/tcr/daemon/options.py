"""tcrd's command line, and the gate that refuses a crun without +CAP/+SECCOMP.

Start-up only: tcr.daemon.main imports this module and drops it (with tcr.check) before the
daemon starts, so its code is not resident in an idle daemon (docs/profile.md).
"""

from __future__ import annotations

import os
import sys

from tcr.commands.argv import ArgParser, ArgumentTypeError, Namespace
from tcr.daemon.app import DEFAULT_RESOLV_CONF, DEFAULT_ROOT, DEFAULT_RUN_DIR, DEFAULT_SOCKET
from tcr.daemon.main import log
from tcr.rpc.protocol import ABSTRACT_NAME

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from types import ModuleType
    from typing import List, Optional


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


def crun_is_secure(opts: Namespace, check: ModuleType) -> bool:
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
