"""tcr: the thin client of tcrd.

`tcr [global options] COMMAND [ARGS...]` sends COMMAND as the RPC method and ARGS untouched to the
daemon (the C implementation's contract), prints what comes back and exits with its code.
Exit codes are decided here and only here.

The fast path imports only sys, posix (tcr.common.leanos), tcr.rpc.client and the C modules
_socket and _json: no os, argparse,
logging or dataclasses (measured with `python -X importtime`, see bench/bench_cli.py).
"""

import sys

from tcr.common import leanos as os  # the os subset on posix: `import os` costs ~1 ms

USAGE = """\
Usage: tcr [OPTIONS] COMMAND [ARGS...]

Options:
  -H, --host ssh://USER@HOST[:PORT]  run the command on a device over ssh (env TCR_HOST)
  --socket PATH                      tcrd socket (env TCR_SOCKET; default /run/tcr/tcrd.sock,
                                     then the abstract socket @tiny_container_runtime)
  --debug                            show tracebacks and debug output
  -v, --version                      print the client and daemon versions
  -h, --help                         this help

Run 'tcr help' for the list of commands, 'tcr compose --help' for declarative stacks.
"""

# docker semantics: any error of tcr itself in these commands exits 125, never the container's code
RUN_LIKE = frozenset(("run", "create", "start", "exec"))
# docker/podman: a flag error, or tcr itself failing (no daemon, internal error), is 125 in every
# command; "no such container", "in use" and other refusals of an existing daemon are 1.
EXIT_TCR = 125
EXIT_USAGE = EXIT_TCR
SYNTAX, INTERNAL = 1, 7
FAST_EXIT = False  # set by main() when it owns the process (not when called from tests)
CONNECT_HINT = "is tcrd running? (systemctl start tcrd)"


def error_exit_code(method: str, code: int) -> int:
    """Exit code for an RPC error reply with the given code (1 syntax ... 7 internal)."""
    if method in RUN_LIKE or code in (SYNTAX, INTERNAL):
        return EXIT_TCR
    return 1


def connect_exit_code(method: str) -> int:
    return EXIT_TCR


class UsageExit(Exception):
    pass


class Options:
    __slots__ = ("host", "socket", "debug", "version", "help")

    def __init__(self) -> None:
        self.host = None
        self.socket = None
        self.debug = False
        self.version = False
        self.help = False


def parse_global(argv):
    """Hand-parse the few global flags; everything from COMMAND on belongs to the daemon."""
    opts = Options()
    i = 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("-") or a == "-":
            return opts, a, list(argv[i + 1 :])
        if a == "--":
            i += 1
            break
        name, eq, val = a.partition("=")
        if name in ("-H", "--host", "--socket"):
            if not eq:
                i += 1
                if i >= len(argv):
                    raise UsageExit(f"option {name} needs a value")
                val = argv[i]
            if name == "--socket":
                opts.socket = val
            else:
                opts.host = val
        elif a.startswith("-H") and len(a) > 2:
            opts.host = a[2:]
        elif a in ("--debug", "-D"):
            opts.debug = True
        elif a in ("--version", "-v"):
            opts.version = True
        elif a in ("--help", "-h"):
            opts.help = True
        else:
            raise UsageExit(f"unknown option {a!r}")
        i += 1
    if i < len(argv):
        return opts, argv[i], list(argv[i + 1 :])
    return opts, None, []


def _write(stream, text: str) -> None:
    if text:
        stream.buffer.write(text.encode("utf-8", "replace"))
        stream.flush()


def _stream(out: str, err: str) -> None:
    _write(sys.stdout, out)
    _write(sys.stderr, err)


def print_error(message: str, hint=None) -> None:
    _write(sys.stderr, f"tcr: {message}\n" + (f"hint: {hint}\n" if hint else ""))


def fork_exec(argv) -> int:
    """Run argv as a child and return its docker-style exit code (128+N for a signal).

    The parent ignores the terminal's job-control signals while it waits, so ^C goes to the child
    only; the child restores the defaults before exec (SIG_IGN would survive exec).
    """
    import signal

    sigs = (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP)
    old = {s: signal.signal(s, signal.SIG_IGN) for s in sigs}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - replaced by exec
            try:
                for s in sigs:
                    signal.signal(s, signal.SIG_DFL)
                os.execvp(argv[0], argv)
            except OSError as exc:
                os.write(2, f"tcr: cannot run {argv[0]}: {exc.strerror}\n".encode())
                os._exit(127 if exc.errno == 2 else 126)
            finally:
                os._exit(126)
        _, status = os.waitpid(pid, 0)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return status_code(status)


def status_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 1


def exec_replace(argv) -> int:
    """Become argv (execArgs: `crun run`/`crun exec`); returns only if the exec fails.

    No fork: the process keeps its pid, which tcrd watches (params.pid), crun gets the terminal's
    signals itself and its exit status is the client's, and no Python waits and tears down after
    the container (measured ~7 ms per `tcr run`, docs/containers.md). SIGPIPE/SIGXFSZ go back to
    their defaults: Python ignores them and an ignored signal would survive the exec.
    """
    import _signal

    sys.stdout.flush()
    sys.stderr.flush()
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(_signal, name):
            _signal.signal(getattr(_signal, name), _signal.SIG_DFL)
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(2, f"tcr: cannot run {argv[0]}: {exc.strerror}\n".encode())
        return 127 if exc.errno == 2 else 126
    return 126  # pragma: no cover - execvp returns only by raising


def handle_reply(reply) -> int:
    """Act on a final reply: print output and return its code, or become execArgs."""
    if reply["kind"] == "exec":
        return exec_replace(reply["args"])
    _write(sys.stdout, reply["stdout"])
    _write(sys.stderr, reply["stderr"])
    code = reply["exit_code"]
    return code if 0 <= code <= 255 else 1


def rpc(opts, method, args) -> int:
    from tcr.rpc import client

    path = client.resolve_socket(opts.socket)
    sock = client.connect(path)
    try:
        reply = client.call(sock, method, args, on_stream=_stream, where=path, attach=True)
        if reply["kind"] == "attach" and reply.get("cp") is not None:  # `tcr cp`: the local side
            from tcr.cli import cp

            return cp.run(sock, reply, 1, path)
        if reply["kind"] == "attach":  # tcrd runs the container; we only relay (tcr.cli.attach)
            from tcr.cli import attach

            sys.stdout.flush()
            sys.stderr.flush()
            code = attach.run(sock, reply, 1, path)
            if FAST_EXIT:  # nothing left to flush or clean: skip the interpreter's teardown (~5 ms)
                os._exit(code)
            return code
    finally:
        sock.close()  # before any exec: the child must not inherit the connection
    return handle_reply(reply)


def cmd_version(opts, args) -> int:
    from tcr import __version__

    as_json = (
        "--json" in args
        or "--format=json" in args
        or (
            "--format" in args
            and args.index("--format") + 1 < len(args)
            and args[args.index("--format") + 1] == "json"
        )
    )
    client = {"version": __version__, "python": ".".join(map(str, sys.version_info[:3]))}
    if not as_json:
        _write(sys.stdout, f"Client: tcr {client['version']} (python {client['python']})\n")
        return rpc(opts, "version", args)
    from tcr.common import jsonc
    from tcr.rpc import client as rpcc

    path = rpcc.resolve_socket(opts.socket)
    sock = rpcc.connect(path)
    try:
        reply = rpcc.call(sock, "version", args, where=path)
    finally:
        sock.close()
    server = jsonc.loads(reply.get("stdout") or "null") if reply["kind"] == "result" else None
    import json

    _write(sys.stdout, json.dumps({"client": client, "server": server}, indent=2, sort_keys=True) + "\n")
    return 0


def _local_check(args) -> int:
    from tcr.commands.system import check_output

    out = check_output(args)
    _write(sys.stdout, out.stdout)
    _write(sys.stderr, out.stderr)
    return out.exit_code


def _incoming_dir(opts) -> str:
    """The daemon's root-only upload directory (`tcr _incoming`)."""
    from tcr.rpc import client

    path = client.resolve_socket(opts.socket)
    sock = client.connect(path)
    try:
        reply = client.call(sock, "_incoming", [], where=path)
    finally:
        sock.close()
    out = (reply.get("stdout") or "").strip()
    if reply.get("exit_code") != 0 or not out.startswith("/"):
        from tcr.common.errors import InternalError

        raise InternalError(f"tcrd gave no upload directory: {(reply.get('stderr') or out)[:80]!r}")
    return out


def dispatch(opts, method, args) -> int:
    if method in ("run", "create", "exec", "container"):
        from tcr.cli.runargs import expand_command

        args = expand_command(method, args)  # -e VAR and --env-file are the user's, not tcrd's
    host = opts.host or os.getenv("TCR_HOST") or None
    if host:
        from tcr.cli import ssh

        return ssh.run_remote(host, method, args, socket=opts.socket, debug=opts.debug)
    if method == "version":
        return cmd_version(opts, args)
    if method == "check" and "--local" in args:
        return _local_check(args)
    if method == "image" and args[:1] == ["load"]:  # -i FILE, or the image piped into stdin
        from tcr.cli import loadinput

        args = loadinput.rewrite(args, lambda: _incoming_dir(opts))
    if method == "compose":  # client-side: parses the file, plans, then makes the CLI's own RPC calls
        try:
            from tcr.compose import cli as compose
        except ModuleNotFoundError as exc:  # a board package built without it (docs/board-integration.md)
            if exc.name not in ("tcr.compose", "tcr.compose.cli"):
                raise
            os.write(2, b"tcr: compose is not installed here (a board package built without it); run it "
                        b"from another machine with -H ssh://THIS-BOARD, or install tcr with compose\n")
            return 1
        return compose.main(opts.socket, args)
    return rpc(opts, method, args)


def main(argv=None) -> int:
    global FAST_EXIT
    FAST_EXIT = argv is None
    code = _main(sys.argv[1:] if argv is None else list(argv))
    if FAST_EXIT:
        # The process is ours and done: flush and leave without the interpreter's teardown (freeing
        # every module and object: ~2 ms CPU of a ~10 ms `tcr ps`, docs/profile.md). Nothing of the
        # client needs it: no atexit handler, threads are joined, files are closed where used.
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:
            return code  # a broken pipe at the last flush: the normal exit reports it as before
        os._exit(code & 0xFF)
    return code


def _main(argv) -> int:
    try:
        opts, method, args = parse_global(argv)
    except UsageExit as exc:
        _write(sys.stderr, f"tcr: {exc}\n{USAGE}")
        return EXIT_USAGE
    if opts.help:
        _write(sys.stdout, USAGE)
        return 0
    if method is None:
        if not opts.version:
            _write(sys.stderr, USAGE)
            return EXIT_USAGE
        method = "version"
    debug = opts.debug or bool(os.getenv("TCR_DEBUG"))
    if debug:
        from tcr.common import log

        log.setup(debug=True, prog="tcr")
    try:
        return dispatch(opts, method, args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `tcr ps | head`: the reader went away; stay quiet like a C tool killed by SIGPIPE
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # no second EPIPE when Python flushes at exit
        except OSError:
            pass
        return 141
    except Exception as exc:
        return report(exc, method, debug)


def report(exc: BaseException, method: str, debug: bool) -> int:
    """Print an exception as `tcr: message` (+ hint) and map it to the exit code."""
    if debug:
        import traceback

        traceback.print_exc()
    from tcr.rpc.client import ConnectError, RpcError

    if isinstance(exc, RpcError):
        print_error(exc.message, exc.hint)
        return error_exit_code(method, exc.code)
    if isinstance(exc, ConnectError):
        hint = CONNECT_HINT
        if "ermission" in exc.reason:
            hint = "run as root or add your user to group 'tcr'"
        print_error(str(exc), hint)
        return connect_exit_code(method)
    from tcr.common.errors import TcrError

    if isinstance(exc, TcrError):
        print_error(exc.message, exc.hint)
        return error_exit_code(method, exc.code)
    if isinstance(exc, OSError):
        print_error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return connect_exit_code(method)
    print_error(
        f"internal error: {type(exc).__name__}: {exc}", None if debug else "run with --debug for details"
    )
    return connect_exit_code(method)


if __name__ == "__main__":
    sys.exit(main())
