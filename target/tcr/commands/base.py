"""The daemon-side command layer: argv (from the RPC request) -> managers -> Output.

The `tcr` client is thin (the C implementation's contract): it sends argv[1] as the method and
argv[2:] as params.args. Parsing, validation and rendering happen here, in the daemon. Command
handlers know nothing about sockets: they get a Ctx and return an Output, or a Pending that they
resolve later from the event loop (wait, stop -t, logs -f).
"""

from __future__ import annotations

from tcr.commands.argv import ArgParser, Namespace
from tcr.common.errors import TcrError, UsageError
from tcr.common.record import dataclass, field

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Mapping, Optional, Union


@dataclass(frozen=True)
class Output:
    """A finished command: what the client prints and its exit code, or argv for it to exec."""

    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""
    exec_args: Optional[List[str]] = None


class Pending:
    """A reply that comes later. The transport installs _send; handlers call resolve() once."""

    def __init__(self) -> None:
        self._send: Optional[Callable[[Output], None]] = None
        self._early: Optional[Output] = None
        self.done = False
        self.on_cancel: Optional[Callable[[], None]] = None  # client went away

    def resolve(self, out: Output) -> None:
        if self.done:
            return
        self.done = True
        if self._send is not None:
            self._send(out)
        else:
            self._early = out

    def fail(self, err: TcrError) -> None:
        """Finish with an error reply (the transport turns a TcrError into {"error": ...})."""
        self.resolve(err)  # type: ignore[arg-type]

    def bind(self, send: Callable[[Output], None]) -> None:
        self._send = send
        if self._early is not None:
            send(self._early)

    def cancel(self) -> None:
        if not self.done:
            self.done = True
            if self.on_cancel:
                self.on_cancel()


@dataclass
class Ctx:
    """One request: who asked, from where, with which arguments."""

    daemon: Any  # tcr.daemon.app.Daemon
    method: str
    args: List[str]
    pwd: str = "/"
    pid: Optional[int] = None
    uid: int = 0
    gid: int = 0
    # Streaming extension (logs -f): set by the transport when the client asked for it;
    # stream("stdout"|"stderr", text) sends a partial message.
    stream: Optional[Callable[[str, str], None]] = None
    # Attach extension: a tcr.rpc.channel.Channel when the client can take a data channel.
    channel: Any = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def path(self, p: str) -> str:
        """Resolve a client path against the client's working directory."""
        import os.path

        return os.path.normpath(os.path.join(self.pwd or "/", os.path.expanduser(p)))


if TYPE_CHECKING:
    Handler = Callable[[Ctx], Union[Output, Pending]]

COMMANDS: Dict[str, Handler] = {}
SUMMARIES: Dict[str, str] = {}


def command(name: str, summary: str):
    """Register a top-level command (the RPC method name)."""

    def deco(fn: Handler) -> Handler:
        COMMANDS[name] = fn
        SUMMARIES[name] = summary
        return fn

    return deco


class HelpRequested(Exception):
    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


class Parser(ArgParser):
    """The command parser that never prints or exits: usage errors raise UsageError, -h raises
    HelpRequested (tcr.commands.argv: argparse's interface without its memory)."""

    def __init__(self, prog: str, **kw: Any):
        super().__init__(prog=f"tcr {prog}", **kw)

    def error(self, message: str) -> None:
        raise UsageError(f"{self.prog}: {message}", hint=f"see '{self.prog} --help'")

    def print_help(self) -> None:
        raise HelpRequested(self.format_help())

    def parse(self, args: List[str]) -> Namespace:
        return self.parse_args(args)


def subcommand(ctx: Ctx, group: str, handlers: Mapping[str, Callable[[Ctx, List[str]], Any]],
               usage: str, details: str) -> Any:
    """`tcr GROUP VERB ARGS...`: pick the handler for VERB; help and usage errors alike for all groups."""
    if not ctx.args or ctx.args[0] in ("-h", "--help", "help"):
        if not ctx.args:
            raise UsageError(f"{group}: missing subcommand", hint=usage)
        return Output(0, usage + "\n\n" + details)
    handler = handlers.get(ctx.args[0])
    if handler is None:
        raise UsageError(f"{group}: unknown subcommand {ctx.args[0][:40]!r}", hint=usage)
    return handler(ctx, ctx.args[1:])


def add_format(p: ArgParser, short: bool = False) -> None:
    """--format table|json|GO-TEMPLATE and --json, on every listing and inspect command
    (`short`: also docker's `-f` of inspect)."""
    names = ("-f", "--format") if short else ("--format",)
    p.add_argument(*names, dest="format", default="table", metavar="FORMAT",
                   help="table, json, or a Go template such as '{{.Names}}' ('table ...' adds headers)")
    p.add_argument("--json", dest="format", action="store_const", const="json")
