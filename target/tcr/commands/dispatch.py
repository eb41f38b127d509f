"""RPC method -> command handler: the glue between tcr.rpc.server and the command modules."""

from __future__ import annotations

from tcr.commands import base
from tcr.commands.base import Ctx, HelpRequested, Output, Pending
from tcr.common.errors import TcrError, UsageError, echo, shorten_echoes, shorten_error

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, Union

# Every module that registers commands with @base.command: loaded with the daemon...
COMMAND_MODULES = (
    "tcr.commands.images",
    "tcr.commands.containers",
)
# ... and the others, loaded by their first command: until then a stub stands in (same name and
# summary; test_lazy_commands keeps this table equal to their @base.command lines), so an idle tcrd
# that loaded an image and ran containers does not hold their code (docs/profile.md). The `image`
# group's verbs other than load are loaded the same way (tcr.commands.images.HANDLERS).
LAZY_COMMANDS = {
    "_incoming": ("tcr.commands.system", "Directory where remote clients copy files to load (internal)"),
    "container": ("tcr.commands.lifecycle", "Manage containers (ls, run, stop, rm, logs, inspect ...)"),
    "create": ("tcr.commands.lifecycle", "Create a new container (start it with 'tcr start')"),
    "exec": ("tcr.commands.lifecycle", "Run a command in a running container"),
    "rm": ("tcr.commands.lifecycle", "Remove containers"),
    "start": ("tcr.commands.lifecycle", "Start stopped containers (-a: attach to one)"),
    "stop": ("tcr.commands.lifecycle", "Stop running containers (SIGTERM, then SIGKILL after the timeout)"),
    "images": ("tcr.commands.imageops", "List images (same as 'image ls')"),
    "inspect": ("tcr.commands.showing", "Show details of containers, images, networks or volumes as JSON"),
    "logs": ("tcr.commands.showing", "Show a container's output"),
    "ps": ("tcr.commands.showing", "List containers"),
    "attach": ("tcr.commands.occasional", "Attach to a running container's output (and stdin with -i)"),
    "kill": ("tcr.commands.occasional", "Send a signal to running containers (default SIGKILL)"),
    "port": ("tcr.commands.occasional", "List a container's published ports"),
    "restart": ("tcr.commands.occasional", "Stop then start containers"),
    "wait": ("tcr.commands.occasional", "Wait for containers to stop, print their exit codes"),
    "_modules": ("tcr.commands.system",
                 "The Python modules tcrd has loaded, in load order (internal: footprint checks)"),
    "check": ("tcr.commands.system", "Check kernel features and tools tcr needs"),
    "help": ("tcr.commands.system", "Show the commands, or the help of one command"),
    "version": ("tcr.commands.system", "Show the tcrd version"),
    "_container_prune": ("tcr.commands.housekeeping",
                         "Remove all stopped containers (as 'tcr container prune')"),
    "cp": ("tcr.commands.cp", "Copy files/folders between a container and the local filesystem"),
    "events": ("tcr.commands.monitor", "Show container, image, network and volume events"),
    "info": ("tcr.commands.housekeeping", "Show board-wide information (same as 'system info')"),
    "network": ("tcr.commands.networks", "Manage NAT networks: create, ls, rm, inspect"),
    "networks": ("tcr.commands.networks", "List networks (same as 'network ls')"),
    "pause": ("tcr.commands.changes", "Pause all processes of containers (cgroup freezer)"),
    "rename": ("tcr.commands.changes", "Rename a container"),
    "stats": ("tcr.commands.monitor", "Show containers' CPU, memory, network and block I/O, and PIDs"),
    "system": ("tcr.commands.housekeeping", "Board-wide information and housekeeping: info, df, prune"),
    "top": ("tcr.commands.monitor", "Show the processes of a container"),
    "unpause": ("tcr.commands.changes", "Resume paused containers"),
    "update": ("tcr.commands.changes", "Change the limits or restart policy of containers"),
    "volume": ("tcr.commands.volumes", "Manage volumes: create, ls, inspect, rm, prune"),
    "volumes": ("tcr.commands.volumes", "List volumes (same as 'volume ls')"),
}

if TYPE_CHECKING:
    DispatchFn = Callable[..., Union[Output, Pending]]


def load_commands(lazy: bool = True) -> None:
    """Register every command; lazy=False imports the rarely used modules too (tests, tools)."""
    for name in COMMAND_MODULES:
        __import__(name)  # registration only; importlib.import_module would load importlib
    for method, (module, summary) in LAZY_COMMANDS.items():
        if lazy:
            if method not in base.COMMANDS:
                base.command(method, summary)(_stub(method, module))
        else:
            __import__(module)


def _stub(method: str, module: str) -> Callable[[Ctx], Any]:
    def load_and_run(ctx: Ctx) -> Any:
        __import__(module)  # its @base.command replaces this stub in base.COMMANDS
        handler = base.COMMANDS[method]
        if handler is load_and_run:
            raise UsageError(f"unknown command: {method!r}", hint=f"{module} does not define it")
        return handler(ctx)

    load_and_run.lazy_module = module  # type: ignore[attr-defined]
    return load_and_run


def make_dispatch(daemon: Any) -> DispatchFn:
    load_commands()

    def dispatch(
        method: str,
        args: List[str],
        pwd: str = "/",
        pid: Optional[int] = None,
        uid: int = 0,
        gid: int = 0,
        stream: Optional[Callable[[str, str], None]] = None,
        channel: Any = None,
    ) -> Union[Output, Pending]:
        handler = base.COMMANDS.get(method)
        if handler is None:
            raise UsageError(f"unknown command: {echo(method)}", hint="see 'tcr help'")
        ctx = Ctx(
            daemon=daemon,
            method=method,
            args=list(args),
            pwd=pwd or "/",
            pid=pid,
            uid=uid,
            gid=gid,
            stream=stream,
            channel=channel,
        )
        try:
            return handler(ctx)
        except HelpRequested as h:
            return Output(0, h.text)
        except TcrError as exc:
            # Invalid input is echoed back at most ECHO_MAX characters, whichever message has it.
            shorten_error(exc, ctx.args)
            raise
        except OSError as exc:
            # A full disk, the fd limit, an I/O error: one clear line for the client, one (rate-
            # limited) line in the log, never "internal error: OSError" and a traceback.
            from tcr.common import oserrors
            from tcr.common.log import get_logger

            err = oserrors.to_error(exc)
            err.message = shorten_echoes(err.message, ctx.args)
            oserrors.warn(get_logger("tcr.rpc"), f"rpc.{method}.{exc.errno}", "%s: %s", method[:64],
                          err.message)
            raise err from None

    return dispatch
