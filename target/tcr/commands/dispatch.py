"""RPC method -> command handler: the glue between tcr.rpc.server and the command modules."""

from __future__ import annotations

from tcr.commands import base
from tcr.commands.base import Ctx, HelpRequested, Output, Pending
from tcr.common.errors import UsageError

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, Union

# Every module that registers commands with @base.command.
COMMAND_MODULES = (
    "tcr.commands.system",
    "tcr.commands.images",
    "tcr.commands.containers",
    "tcr.commands.networks",
    "tcr.commands.changes",
    "tcr.commands.monitor",
    "tcr.commands.housekeeping",
    "tcr.commands.volumes",
)

if TYPE_CHECKING:
    DispatchFn = Callable[..., Union[Output, Pending]]


def load_commands() -> None:
    for name in COMMAND_MODULES:
        __import__(name)  # registration only; importlib.import_module would load importlib


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
    ) -> Union[Output, Pending]:
        handler = base.COMMANDS.get(method)
        if handler is None:
            raise UsageError(f"unknown command: {method[:64]!r}", hint="see 'tcr help'")
        ctx = Ctx(
            daemon=daemon,
            method=method,
            args=list(args),
            pwd=pwd or "/",
            pid=pid,
            uid=uid,
            gid=gid,
            stream=stream,
        )
        try:
            return handler(ctx)
        except HelpRequested as h:
            return Output(0, h.text)

    return dispatch
