"""The C tool's command dialect, served on the compat socket (@tiny_container_runtime).

The C implementation's `tcr` client always connects to that abstract socket, sends argv as is and
prints the reply verbatim (`Error (N): message` for an error reply, exit 1). Scripts written for it
parse what the C daemon printed: `ID=$(tcr image load f.sqfs)`, `tcr ps | grep running`. This
module is the one place that knows that dialect. It maps the C client's argv to tcr's internal
requests (RunOptions and manager calls) and renders the results exactly as the C daemon prints
them; the managers know nothing about it, and tcrd's own socket keeps docker's dialect
(tcr.commands.*). docs/formats.md, "Migrating from the C tool", lists what is identical and what
differs; test/root/test_cdialect.py replays the C tool's recorded answers against it.

Where the C daemon is broken, tcr does the right thing and keeps only the output format: `stop`
really stops the container (and answers once it has exited), `exec` works right after `run -d`,
`--network none` means no network instead of a bridge named "none".

Commands the C tool does not have (logs, inspect, wait, version, network create ...) are served
by tcr's own handlers, so C-client users get them too. A request that asks for stream messages
comes from tcr's own client (the C client does not know that extension), which falls back to this
socket when tcrd's filesystem socket is elsewhere: it is served in tcr's own dialect.
"""

from __future__ import annotations

import os

from tcr.commands.base import Ctx, Output, Pending
from tcr.common.errors import (
    CONTAINER_NOT_FOUND,
    IMAGE_NOT_FOUND,
    IN_USE,
    INTERNAL,
    INVALID_ARGUMENT,
    NETWORK_NOT_FOUND,
    SYNTAX,
    TcrError,
)

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple, Union

if TYPE_CHECKING:
    DispatchFn = Callable[..., Union[Output, Pending]]

# What the C daemon answers for these codes, whatever tcr's own message would say.
_C_TEXT = {
    CONTAINER_NOT_FOUND: "container not found",
    IMAGE_NOT_FOUND: "image not found",
    NETWORK_NOT_FOUND: "network not found",
}

HELP = """\
Usage: tcr <command> [args...]

Container commands:
  run [options] <image> [cmd...]        create and run a container
  exec [options] <container> <cmd...>   run a command in a running container
  ps                                    list all containers
  stop <container>                      stop (SIGTERM, SIGKILL after the stop timeout)
  kill <container>                      stop at once (SIGKILL)
  rm <container>                        remove a container (stops it first)

Image commands:
  image load <path>                     load a squashfs image, print its id
  image ls                              list images
  image rm <id|name:tag>                remove an image no container uses

Network commands:
  network ls                            list NAT networks
  network rm <name>                     remove a network no container uses

Run options:
  --config <file>          all options from a JSON run file (alone)
  -d                       detached (background), print the id
  --name <name>            container name
  --rm                     remove the container when it exits
  --read-only              read-only root filesystem
  -t                       allocate a pseudo-TTY
  -e KEY=VALUE             environment variable (repeatable)
  -v src:dst[:ro]          bind mount (repeatable)
  --tmpfs dst[:size]       tmpfs mount, size in bytes or 64m (repeatable)
  -p [ip:]hP:cP[/proto]    publish a port: tcp, udp or tcp+udp (repeatable)
  --network <name>         NAT network, created on first use (default: tcr_default)
  --no-network             no network at all
  --restart <policy>       no | on-failure[:N] | unless-stopped | always
  --stop-timeout <s>       seconds between SIGTERM and SIGKILL (default 10)

Exec options:
  -d                       detached (the output goes to the container's log)
  -t                       allocate a pseudo-TTY
  -e KEY=VALUE             environment variable (repeatable)

tcr also serves its own commands here: logs, inspect, wait, version, network create ...
"""


class CError(TcrError):
    """An error reply as the C daemon words it: a code and one line, never a hint."""

    def __init__(self, code: int, message: str):
        super().__init__(message, code=code)


def _c_printf(text: str, size: int) -> str:
    """The C daemon formats its messages into fixed buffers (snprintf): keep its truncation."""
    return text[: size - 1]


def c_error(exc: TcrError) -> CError:
    """tcr's error -> the C daemon's wording for the same code (tcr's own text where the C tool
    has none: it only said 'failed to ...')."""
    if isinstance(exc, CError):
        return exc
    return CError(exc.code, _C_TEXT.get(exc.code, exc.message))


# ---- argv -> internal requests ------------------------------------------------------------------


def _host_path(path: str, pwd: str) -> str:
    """The C daemon's rule: absolute paths as they are, others joined to the client's cwd."""
    return os.path.normpath(path if path.startswith("/") else os.path.join(pwd or "/", path))


def _env(spec: str) -> str:
    key, eq, _ = spec.partition("=")
    if not eq or not key or "\0" in spec:
        raise CError(INVALID_ARGUMENT, "bad -e format, expected KEY=VALUE")
    return spec


def _volume(spec: str, pwd: str) -> Any:
    from tcr.containers.runrecord import Volume

    src, sep, rest = spec.partition(":")
    dst, _, mode = rest.partition(":")
    dst = "/" + os.path.normpath(dst).lstrip("/") if dst.startswith("/") else ""
    if not sep or not src or dst in ("", "/"):
        raise CError(INVALID_ARGUMENT, "bad -v format, expected src:dst[:ro]")
    return Volume(_host_path(src, pwd), dst, mode == "ro")  # like the C daemon, only "ro" counts


def _tmpfs(spec: str) -> Any:
    from tcr.containers.runopts import parse_tmpfs

    try:
        return parse_tmpfs(spec)  # DST[:SIZE] (bytes, or 64m ...)
    except TcrError:
        raise CError(INVALID_ARGUMENT, "bad --tmpfs format, expected dst[:size]")


_PROTOS = {"tcp": ("tcp",), "udp": ("udp",), "tcp+udp": ("tcp", "udp"), "udp+tcp": ("tcp", "udp")}


def _publish(spec: str) -> List[str]:
    """[hostIP:]hostPort:containerPort[/tcp|udp|tcp+udp] -> tcr's -p specs (one per protocol)."""
    from tcr.network.ports import parse_publish

    body, slash, proto = spec.partition("/")
    protos = _PROTOS.get(proto if slash else "tcp")
    if protos is None or body.count(":") not in (1, 2):
        raise CError(INVALID_ARGUMENT, "bad -p format, expected [hostIP:]hostPort:containerPort[/proto]")
    out = [f"{body}/{p}" for p in protos]
    try:
        for s in out:
            if any(m.host_port == 0 for m in parse_publish(s)):
                raise ValueError("host port 0")
    except (TcrError, ValueError):
        raise CError(INVALID_ARGUMENT, "bad -p format, expected [hostIP:]hostPort:containerPort[/proto]")
    return out


def _network(name: str) -> Dict[str, Any]:
    """--network NAME: made on first use and removed with its last container (the C tool's rule).
    "none" is no network (the C daemon made a bridge called "none"), "host" the host's."""
    from tcr.containers.runopts import parse_network

    if name in ("none", "host"):
        return {"network": name}
    try:
        return {"network": parse_network(name), "network_create": True}
    except TcrError as exc:
        raise CError(INVALID_ARGUMENT, exc.message)


def _restart(text: str) -> Any:
    from tcr.containers.runopts import parse_restart

    try:
        return parse_restart(text)
    except TcrError:
        raise CError(INVALID_ARGUMENT, "bad --restart value, expected no, on-failure[:N], unless-stopped "
                                       "or always")


def _stop_timeout(text: str) -> int:
    if not text.isdigit():
        raise CError(INVALID_ARGUMENT, "bad --stop-timeout value, expected whole seconds")
    return int(text)


_VALUED = ("--name", "-e", "-v", "--tmpfs", "-p", "--network", "--restart", "--stop-timeout")
_SWITCHES = {"-d": "detach", "--rm": "rm", "--read-only": "read_only", "-t": "tty"}


def run_options(args: List[str], pwd: str, read_file: Optional[Callable[[str], str]] = None) -> Any:
    """The C client's `run` argv -> RunOptions (validated). Pure apart from reading --config."""
    from tcr.containers.runopts import validate
    from tcr.containers.runrecord import RunOptions

    if len(args) >= 2 and args[0] == "--config":
        if len(args) > 2:
            raise CError(INVALID_ARGUMENT, "--config cannot be combined with other arguments")
        opts = _config_options(_host_path(args[1], pwd), read_file or _read_config)
    else:
        fields: Dict[str, Any] = {}
        lists: Dict[str, List[Any]] = {"env": [], "volumes": [], "tmpfs": [], "publish": []}
        no_network = False
        i = 0
        image = ""
        while i < len(args):
            a = args[i]
            if a in _SWITCHES:
                fields[_SWITCHES[a]] = True
            elif a == "--no-network":
                no_network = True
            elif a in _VALUED and i + 1 < len(args):
                i += 1
                v = args[i]
                if a == "--name":
                    fields["name"] = v
                elif a == "-e":
                    lists["env"].append(_env(v))
                elif a == "-v":
                    lists["volumes"].append(_volume(v, pwd))
                elif a == "--tmpfs":
                    lists["tmpfs"].append(_tmpfs(v))
                elif a == "-p":
                    lists["publish"] += _publish(v)
                elif a == "--network":
                    fields.update(_network(v))
                elif a == "--restart":
                    fields["restart"] = _restart(v)
                else:
                    fields["stop_timeout"] = _stop_timeout(v)
            elif a.startswith("-"):
                raise CError(INVALID_ARGUMENT, _c_printf(f"unknown option: {a}", 256))
            else:
                image = a
                break
            i += 1
        if not image:
            raise CError(INVALID_ARGUMENT, "no image specified")
        if no_network:
            if "network" in fields:
                raise CError(INVALID_ARGUMENT, "--network and --no-network are mutually exclusive")
            fields["network"] = "none"
        command = tuple(args[i + 1:])
        if command:
            fields["command"] = command
            fields["entrypoint"] = ()  # the C tool's COMMAND is the whole argv
        fields.update({k: tuple(v) for k, v in lists.items()})
        opts = RunOptions(image=image, **fields)
    try:
        validate(opts, client_runs_crun=True)  # a foreground run of the C client is its crun's
    except TcrError as exc:
        raise c_error(exc)
    return opts


def _read_config(path: str) -> str:
    from tcr.common.fileread import RUN_CONFIG_CAP, read_bytes

    return read_bytes(path, RUN_CONFIG_CAP, what=f"run config {path}").decode("utf-8", errors="replace")


def _config_options(path: str, read_file: Callable[[str], str]) -> Any:
    """`run --config FILE`: the C tool's JSON run file (tools/run-config-schema.json)."""
    from tcr.common import jsonc
    from tcr.common.record import replace
    from tcr.containers.runopts import parse_run_config
    from tcr.containers.runrecord import RunOptions

    try:
        data = jsonc.loads(read_file(path))
    except TcrError as exc:
        raise CError(INVALID_ARGUMENT, _c_printf(f"failed to load config file: {path}", 4096)) from exc
    except ValueError:
        raise CError(INVALID_ARGUMENT, _c_printf(f"failed to load config file: {path}", 4096))
    try:
        fields = parse_run_config(data, os.path.dirname(path))
    except TcrError as exc:
        raise CError(INVALID_ARGUMENT, exc.message)
    fields.update({k: tuple(fields.pop(k, ())) for k in ("env", "volumes", "tmpfs", "publish")})
    opts = RunOptions(config_file=path, **fields)
    if opts.network not in ("none", "host"):
        opts = replace(opts, network_create=True)
    return opts


def _split_exec(args: List[str]) -> Tuple[bool, bool, List[str], str, List[str]]:
    detach = tty = False
    env: List[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-d":
            detach = True
        elif a == "-t":
            tty = True
        elif a == "-e" and i + 1 < len(args):
            i += 1
            env.append(_env(args[i]))
        elif a.startswith("-"):
            raise CError(INVALID_ARGUMENT, _c_printf(f"unknown option: {a}", 256))
        else:
            break
        i += 1
    if i >= len(args):
        raise CError(INVALID_ARGUMENT, "no container specified")
    if i + 1 >= len(args):
        raise CError(INVALID_ARGUMENT, "no command specified")
    return detach, tty, env, args[i], args[i + 1:]


# ---- rendering ----------------------------------------------------------------------------------

PS_HEADER = "ID               NAME                 IMAGE                    STATUS\n"
IMAGE_LS_HEADER = "IMAGE ID         NAME                           TAG        MOUNTED\n"
NETWORK_LS_HEADER = "NAME                 SUBNET             GATEWAY\n"


def ps_line(cid: str, name: str, image: str, tag: str, status: str) -> str:
    if tag:
        return f"{cid:<16} {name:<20} {image}:{tag:<10} {status}\n"
    return f"{cid:<16} {name:<20} {image:<24} {status}\n"


def image_ls_line(iid: str, name: str, tag: Optional[str], mounted: bool) -> str:
    return f"{iid:<16} {name:<30} {'<none>' if tag is None else tag:<10} {'yes' if mounted else 'no'}\n"


def network_ls_line(name: str, subnet: str, gateway: str) -> str:
    return f"{name:<20} {subnet:<18} {gateway}\n"


def c_status(state: str) -> str:
    """The C tool knows running and stopped; a container waiting to be restarted says so."""
    return state if state in ("running", "restarting") else "stopped"


# ---- handlers -----------------------------------------------------------------------------------


def _containers(ctx: Ctx) -> Any:
    mgr = ctx.daemon.containers
    if mgr is None:
        raise CError(INTERNAL, "the container manager is not available in this tcrd")
    return mgr


def _options_in_worker(args: List[str], pwd: str) -> Dict[str, Any]:
    """Runs in a forked worker, as tcr's own `run` parses (tcr.commands.containers): run_options
    needs validate() and the --config/--tmpfs/--restart parsers of tcr.containers.runopts, which a
    daemon serving the C client every day would otherwise keep resident. Errors leave in the C
    daemon's words (the dispatcher's c_error does not see a Pending's failure)."""
    try:
        return dict(run_options(args, pwd).to_dict())
    except TcrError as exc:
        raise c_error(exc) from None


def c_run(ctx: Ctx) -> Union[Output, Pending]:
    from tcr.daemon import worker

    loop = getattr(ctx.daemon, "loop", None)
    if not worker.has_room(loop):  # no loop (a test's), or every worker slot busy
        return _c_start(ctx, run_options(ctx.args, ctx.pwd))

    def then(d: Dict[str, Any]) -> Output:
        from tcr.containers.runrecord import RunOptions

        try:
            return _c_start(ctx, RunOptions.from_dict(d))
        except TcrError as exc:
            raise c_error(exc) from None
        except OSError as exc:  # what the server makes of one raised by the dispatcher
            from tcr.common import oserrors

            raise oserrors.to_error(exc) from None

    return worker.pending(loop, _options_in_worker, (list(ctx.args), ctx.pwd), what="run options",
                          then=then, timeout=60, cancel_on_disconnect=True)


def _c_start(ctx: Ctx, opts: Any) -> Output:
    from tcr.containers.manager import StartFailed

    mgr = _containers(ctx)
    c = mgr.create(opts, interactive=not opts.detach, persist=False)
    try:
        if opts.detach:
            mgr.start(c)
            return Output(0, c.rec.id + "\n")
        # The C client execs crun itself (and stays the container's foreground process).
        return Output(exec_args=mgr.run_interactive(c, ctx.pid))
    except BaseException as exc:
        try:  # like the C daemon: a container that did not start is removed
            mgr.remove(c, force=True)
        except (TcrError, OSError):
            pass  # the start's own error is the one to report
        if isinstance(exc, StartFailed):
            raise CError(INTERNAL, f"failed to start container: {exc.message}")
        raise


def c_exec(ctx: Ctx) -> Output:
    from tcr.containers.manager import StartFailed

    detach, tty, env, ref, cmd = _split_exec(ctx.args)
    mgr = _containers(ctx)
    c = mgr.find(ref)
    if c.rec.state != "running":
        raise CError(INVALID_ARGUMENT, "container is not running")
    if not detach:
        return Output(exec_args=mgr.exec_args(c, cmd, tty, env, None, None))
    try:
        mgr.exec_detached(c, cmd, env, None, None)
    except StartFailed as exc:
        raise CError(INTERNAL, f"failed to exec: {exc.message}")
    return Output(0)


def c_ps(ctx: Ctx) -> Output:
    images = ctx.daemon.images
    lines = [PS_HEADER]
    for c in sorted(_containers(ctx).list(), key=lambda c: (c.rec.created, c.rec.id)):
        r = c.rec
        img = images.records.get(r.image_id)
        if img is not None:
            name, tag = img.info.name, img.info.tag
        else:
            name, _, tag = r.image_ref.rpartition(":") if "@" not in r.image_ref else (r.image_ref, "", "")
        lines.append(ps_line(r.id, r.name, name, tag, c_status(r.state)))
    return Output(0, "".join(lines))


def _one_container(ctx: Ctx, verb: str) -> Any:
    if not ctx.args:
        raise CError(INVALID_ARGUMENT, f"usage: {verb} <name_or_id>")
    return _containers(ctx).find(ctx.args[0])


# The C client gives up on a request after 30 s: a longer stop is answered before that and goes
# on in the background (the C daemon always answered at once, before the container had stopped).
STOP_REPLY_BY = 25.0


def _stopped(ctx: Ctx, c: Any, timeout: Optional[float]) -> Pending:
    """Stop c (timeout None: its --stop-timeout; 0: SIGKILL at once); the id once it has exited."""
    pending = Pending()
    timers: List[Any] = []

    def finish(_code: Optional[int] = None) -> None:
        for t in timers:
            t.cancel()
        pending.resolve(Output(0, c.rec.id + "\n"))

    _containers(ctx).stop(c, timeout, finish)
    if not pending.done:
        timers.append(ctx.daemon.loop.call_later(STOP_REPLY_BY, finish))
        pending.on_cancel = timers[0].cancel
    return pending


def c_stop(ctx: Ctx) -> Pending:
    """The stop signal, SIGKILL after the stop timeout (the C daemon's stop left it running)."""
    return _stopped(ctx, _one_container(ctx, "stop"), None)


def c_kill(ctx: Ctx) -> Pending:
    """SIGKILL at once; a container that is not running is left as it is."""
    return _stopped(ctx, _one_container(ctx, "kill"), 0)


def c_rm(ctx: Ctx) -> Output:
    """Removes a running container too (the C tool's rm); its auto-made network goes with it."""
    c = _one_container(ctx, "rm")
    cid = c.rec.id
    _containers(ctx).remove(c, force=True)
    return Output(0, cid + "\n")


def image_load(ctx: Ctx, args: List[str]) -> Pending:
    """Answered when the load (copy and checks in a worker process) is done."""
    if not args:
        raise CError(INVALID_ARGUMENT, "usage: image load <path>")
    pending = Pending()

    def done(result: Any) -> None:
        if isinstance(result, TcrError):
            pending.fail(CError(result.code, f"failed to load image: {result.message}"))
        else:
            pending.resolve(Output(0, result.id + "\n"))  # only the id: ID=$(tcr image load f.sqfs)

    try:
        ctx.daemon.images.load_async(_host_path(args[0], ctx.pwd), False, done)
    except TcrError as exc:
        raise CError(exc.code, f"failed to load image: {exc.message}")
    return pending


def image_ls(ctx: Ctx, args: List[str]) -> Output:
    mgr = ctx.daemon.images
    lines = [IMAGE_LS_HEADER]
    for rec in list(mgr.records.values()):  # load order
        tag = rec.tags[0].rpartition(":")[2] if rec.tags else None  # a newer image may have taken it
        lines.append(image_ls_line(rec.id, rec.info.name, tag, mgr.is_mounted(rec)))
    return Output(0, "".join(lines))


def image_rm(ctx: Ctx, args: List[str]) -> Output:
    if not args:
        raise CError(INVALID_ARGUMENT, "usage: image rm <id_or_name:tag>")
    mgr = ctx.daemon.images
    rec = mgr.get(args[0])
    users = sum(1 for c in _containers(ctx).list() if c.rec.image_id == rec.id)
    if users:
        raise CError(IN_USE, f"image in use by {users} container(s)")
    mgr.remove(rec.id)
    return Output(0, rec.id + "\n")


def network_ls(ctx: Ctx, args: List[str]) -> Output:
    items = sorted(ctx.daemon.networks.list(), key=lambda i: (i["created"], i["name"]))  # creation order
    return Output(0, NETWORK_LS_HEADER + "".join(network_ls_line(i["name"], i["subnet"], i["gateway"])
                                                 for i in items))


def network_rm(ctx: Ctx, args: List[str]) -> Output:
    if not args:
        raise CError(INVALID_ARGUMENT, "usage: network rm <name>")
    name = args[0]
    nets = ctx.daemon.networks
    rec = nets.get(name)
    # Like the C tool, a network is in use while any container (running or not) refers to it.
    users = {c.rec.id for c in _containers(ctx).list()
             if c.opts.network == name or name in {e.network for e in getattr(c.rec, "networks", ())}}
    users |= {le.cid for le in rec.leases}
    if users:
        raise CError(IN_USE, f"network in use by {len(users)} container(s)")
    nets.remove(name)
    return Output(0, name + "\n")


_GROUPS: Dict[str, Dict[str, Callable[[Ctx, List[str]], Union[Output, Pending]]]] = {
    "image": {"load": image_load, "ls": image_ls, "rm": image_rm},
    "network": {"ls": network_ls, "rm": network_rm},
}
_GROUP_USAGE = {"image": "usage: image <load|ls|rm> [args...]", "network": "usage: network <ls|rm> [args...]"}

HANDLERS: Dict[str, Callable[[Ctx], Union[Output, Pending]]] = {
    "run": c_run, "exec": c_exec, "ps": c_ps, "stop": c_stop, "kill": c_kill, "rm": c_rm,
    "help": lambda ctx: Output(0, HELP),
}


def make_dispatch(daemon: Any, own: DispatchFn) -> DispatchFn:
    """The compat socket's dispatcher. `own` (tcr's docker-dialect dispatcher) serves what the C
    tool has no command for."""
    from tcr.commands import base
    from tcr.commands.dispatch import load_commands

    load_commands()  # base.COMMANDS: what `own` serves

    def dispatch(method: str, args: List[str], pwd: str = "/", pid: Optional[int] = None, uid: int = 0,
                 gid: int = 0, stream: Optional[Callable[[str, str], None]] = None,
                 channel: Any = None) -> Union[Output, Pending]:
        if stream is not None or channel is not None:
            # Only tcr's own client asks for stream messages or an attach channel (extensions the
            # C client does not know): it reached this socket by its fallback; docker's dialect.
            extra = {} if channel is None else {"channel": channel}
            return own(method, args, pwd, pid, uid, gid, stream, **extra)
        handler = HANDLERS.get(method)
        group = _GROUPS.get(method)
        if group is not None:
            if not args:
                raise CError(INVALID_ARGUMENT, _GROUP_USAGE[method])
            sub = group.get(args[0])
            if sub is None:
                if args[0] in _own_subcommands(method):  # image inspect, network create ...: tcr's own
                    return own(method, args, pwd, pid, uid, gid, stream)
                raise CError(SYNTAX, _c_printf(f"unknown {method} subcommand: {args[0]}", 128))
            handler = _bind(sub, args[1:])
        elif handler is None:
            if method in base.COMMANDS and not method.startswith("_"):
                return own(method, args, pwd, pid, uid, gid, stream)
            raise CError(SYNTAX, _c_printf(f"unknown command: {method}", 128))
        ctx = Ctx(daemon=daemon, method=method, args=list(args), pwd=pwd or "/", pid=pid, uid=uid, gid=gid)
        try:
            return handler(ctx)
        except TcrError as exc:
            raise c_error(exc) from None

    return dispatch


def _own_subcommands(group: str) -> Any:
    import importlib

    return importlib.import_module(f"tcr.commands.{group}s").HANDLERS


def _bind(fn: Callable[[Ctx, List[str]], Union[Output, Pending]],
          rest: List[str]) -> Callable[[Ctx], Union[Output, Pending]]:
    return lambda ctx: fn(ctx, rest)
