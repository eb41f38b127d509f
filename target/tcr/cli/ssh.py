"""`tcr -H ssh://user@host[:port] ...`: run a tcr command on a device over ssh.

The remote side runs its own `tcr` (found on the remote PATH), so everything the local client
can do works remotely, interactive `run -it`/`exec -it` included, and the exit code comes back
through ssh. Paths in arguments (-v, --env-file, --config) are the device's paths; only
`image load FILE` is special: the local file is first copied into the daemon's incoming dir.

Extra ssh options: env TCR_SSH_OPTS, written as for ssh and split like a shell would (e.g.
"-i KEY -o StrictHostKeyChecking=accept-new"). ssh and scp disagree on letters (`-p` is the port
for ssh but "preserve times" for scp; `-l`, `-S`, `-B` differ too), so the options are translated
once into the `-o Key=Value` form both tools read the same way (translate_options()).

One connection is reused by default: ssh's ControlMaster/ControlPersist with the control sockets
in a private 0700 directory, so a sequence of commands (and the three steps of `image load`)
pays the ssh handshake once. TCR_SSH_OPTS="-o ControlMaster=no" turns it off (the first value
given for an ssh option wins, and the user's options come before tcr's defaults).
"""

import os
import re
import shlex
import sys
from typing import List, NamedTuple, Optional, Sequence

from tcr.common.errors import TcrError, UsageError

SSH_FAILED = 255  # ssh's own exit code for connection/authentication failures
INTERACTIVE_COMMANDS = frozenset(("run", "exec", "start", "attach", "create"))


class Target(NamedTuple):
    user: Optional[str]
    host: str
    port: Optional[int]

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        return f"ssh://{self.destination}" + (f":{self.port}" if self.port else "")


_HOST_RE = re.compile(
    r"^(?:(?P<user>[^@/:\s]+)@)?(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9._-]+))"
    r"(?::(?P<port>\d{1,5}))?/?$"
)


def parse_host(spec: str) -> Target:
    """ssh://[user@]host[:port] (IPv6 in brackets) -> Target. Anything else is a usage error."""
    if not spec.startswith("ssh://"):
        raise UsageError(f"-H {spec!r}: only ssh://[user@]host[:port] is supported")
    m = _HOST_RE.match(spec[len("ssh://") :])
    if not m:
        raise UsageError(f"-H {spec!r}: expected ssh://[user@]host[:port]")
    port = int(m.group("port")) if m.group("port") else None
    if port is not None and not 0 < port < 65536:
        raise UsageError(f"-H {spec!r}: port out of range")
    host = m.group("v6") or m.group("host")
    if host.startswith("-"):
        raise UsageError(f"-H {spec!r}: invalid host name")
    return Target(m.group("user"), host, port)


# ssh's single-letter options -> the ssh_config keyword both ssh and scp take through -o.
_WITH_VALUE = {
    "-p": "Port",
    "-i": "IdentityFile",
    "-l": "User",
    "-J": "ProxyJump",
    "-c": "Ciphers",
    "-m": "MACs",
    "-b": "BindAddress",
    "-B": "BindInterface",
    "-S": "ControlPath",
    "-I": "PKCS11Provider",
    "-F": None,  # same letter and meaning for both tools: kept as it is
}
_FLAGS = {
    "-4": ["-o", "AddressFamily=inet"],
    "-6": ["-o", "AddressFamily=inet6"],
    "-A": ["-o", "ForwardAgent=yes"],
    "-a": ["-o", "ForwardAgent=no"],
    "-C": ["-o", "Compression=yes"],
    "-q": ["-o", "LogLevel=QUIET"],
    "-v": ["-v"],  # both tools
    "-K": ["-o", "GSSAPIAuthentication=yes", "-o", "GSSAPIDelegateCredentials=yes"],
    "-k": ["-o", "GSSAPIDelegateCredentials=no"],
}
# Session options: tcr decides these itself (-t for interactive commands) or they make no sense
# for a command that must return (forwardings, -N, -f, -W, control commands).
_REFUSED = "-tTnNfsGVMgyxXYeEDLRWwOQ"

CONTROL_PERSIST = "60"  # seconds the shared connection outlives the last command


def extra_options(env: Optional[str] = None) -> List[str]:
    """TCR_SSH_OPTS as the user wrote it (ssh syntax), split like a shell would."""
    raw = os.environ.get("TCR_SSH_OPTS", "") if env is None else env
    try:
        return shlex.split(raw)
    except ValueError as exc:
        raise UsageError(f"TCR_SSH_OPTS: {exc}")


def translate_options(opts: Sequence[str]) -> List[str]:
    """ssh-syntax options -> options that mean the same to ssh and to scp (-o Key=Value, -F, -v).

    Grouped flags (-4C), attached values (-p2222, -oPort=1) and `-o Key Value` are understood;
    an option tcr cannot pass to both tools is a one-line usage error, never silently dropped.
    """
    out: List[str] = []
    i = 0
    while i < len(opts):
        a = opts[i]
        i += 1
        if not a.startswith("-") or a == "-" or a.startswith("--"):
            raise UsageError(f"TCR_SSH_OPTS: {a!r} is not an ssh option")
        j = 1
        while j < len(a):
            flag = "-" + a[j]
            j += 1
            if flag == "-o" or flag in _WITH_VALUE:
                if j < len(a):
                    value, j = a[j:], len(a)
                elif i < len(opts):
                    value, i = opts[i], i + 1
                else:
                    raise UsageError(f"TCR_SSH_OPTS: {flag} needs a value")
                if flag == "-o":
                    out += ["-o", value]
                elif _WITH_VALUE[flag] is None:
                    out += [flag, value]
                else:
                    out += ["-o", f"{_WITH_VALUE[flag]}={value}"]
            elif flag in _FLAGS:
                out += _FLAGS[flag]
            elif a[j - 1] in _REFUSED:
                raise UsageError(f"TCR_SSH_OPTS: {flag} is not supported (tcr runs the ssh session itself)")
            else:
                raise UsageError(f"TCR_SSH_OPTS: unknown ssh option {flag}")
    return out


def control_dir(base: Optional[str] = None) -> Optional[str]:
    """The private directory for the shared connections' sockets, or None if it is not safe.

    $XDG_RUNTIME_DIR/tcr-ssh, else /tmp/tcr-ssh-UID. It must be a real directory owned by us with
    no group/other access: a socket there lets anyone who can reach it run commands on the device
    as us. If someone else made it (or it is a symlink), tcr connects without sharing.
    """
    uid = os.getuid()
    if base is None:
        xdg = os.environ.get("XDG_RUNTIME_DIR", "")
        path = os.path.join(xdg, "tcr-ssh") if xdg.startswith("/") else f"/tmp/tcr-ssh-{uid}"
    else:
        path = os.path.join(base, "tcr-ssh")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    import stat

    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        return None
    return path


def control_options(directory: Optional[str]) -> List[str]:
    """Connection sharing: the first command starts a master, the next ones ride on it."""
    if directory is None:
        return []
    return [
        "-o", "ControlMaster=auto",
        "-o", f"ControlPath={directory}/%C",  # %C: hash of host, port, user (short, no quoting)
        "-o", f"ControlPersist={CONTROL_PERSIST}",
    ]


def connection_options(target: Target, user_opts: Sequence[str], directory: Optional[str]) -> List[str]:
    """All options for ssh and scp, in the order that makes ssh's "first value wins" do the
    right thing: the URL's port, then the user's options, then tcr's defaults."""
    port = ["-o", f"Port={target.port}"] if target.port else []
    return [*port, *translate_options(user_opts), *control_options(directory)]


def is_interactive(method: str, args: Sequence[str]) -> bool:
    """Does this command want the user's terminal (-i/-t/-it/--interactive/--tty)?"""
    if method not in INTERACTIVE_COMMANDS:
        return False
    if method == "attach":  # attach takes the terminal unless told not to (tcr.cli.attach)
        return "--no-stdin" not in args
    for a in args:
        if a == "--":
            break
        if a in ("--interactive", "--tty") or a.startswith(("--interactive=", "--tty=")):
            if not a.endswith("=false"):
                return True
        elif re.match(r"^-[A-Za-z]+$", a) and ("i" in a or "t" in a):
            return True
    return False


def remote_command(argv: Sequence[str]) -> str:
    """The remote shell command line: every argument quoted, nothing interpreted."""
    return " ".join(shlex.quote(a) for a in argv)


def ssh_argv(
    target: Target, command: str, *, tty: bool = False, batch: bool = False, options: Sequence[str] = ()
) -> List[str]:
    """options: from connection_options() (the port is in there)."""
    argv = ["ssh", *options]
    if tty:
        argv.append("-t")
    if batch:
        argv += ["-o", "BatchMode=yes"]
    return argv + [target.destination, "--", command]


def scp_argv(
    target: Target, local: str, remote: str, *, batch: bool, options: Sequence[str] = ()
) -> List[str]:
    argv = ["scp", "-q", *options]
    if batch:
        argv += ["-o", "BatchMode=yes"]
    # "./" keeps a local name with ':' from being read as host:path
    src = local if local.startswith("/") else "./" + local
    host = f"[{target.host}]" if ":" in target.host else target.host  # IPv6 needs brackets here
    dest = f"{target.user}@{host}" if target.user else host
    return argv + [src, f"{dest}:{remote}"]


def safe_name(path: str) -> str:
    """A file name that needs no quoting on the remote side."""
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", os.path.basename(path)) or "image.sqfs"
    return "_" + name if name.startswith((".", "-")) else name


def remote_tcr(socket: Optional[str]) -> List[str]:
    """The remote client's argv prefix (--socket selects the device's daemon socket)."""
    return ["tcr", "--socket", socket] if socket else ["tcr"]


def upload_image(
    target: Target, local: str, options: Sequence[str], batch: bool, socket: Optional[str]
) -> str:
    """Copy a local image (and its .sha256 sidecar) into the daemon's incoming dir; return its remote path."""
    from tcr.common.run import run

    if not os.path.isfile(local):
        raise TcrError(f"image load: {local}: no such file", code=6)
    res = run(
        ssh_argv(target, remote_command([*remote_tcr(socket), "_incoming"]), batch=True, options=options),
        timeout=60,
    )
    incoming = res.stdout.strip()
    if not incoming.startswith("/") or "\n" in incoming:
        raise TcrError(f"{target}: unexpected reply from 'tcr _incoming': {incoming[:80]!r}")
    name = safe_name(local)
    final = f"{incoming}/{name}"
    files = [(local, final)]
    if os.path.isfile(local + ".sha256"):
        files.append((local + ".sha256", final + ".sha256"))
    for src, dst in files:
        run(scp_argv(target, src, dst + ".part", batch=batch, options=options), timeout=None)
    moves = " && ".join(f"mv -f {shlex.quote(d + '.part')} {shlex.quote(d)}" for _s, d in files)
    run(ssh_argv(target, moves, batch=True, options=options), timeout=60)
    return final


def image_load_file(args: Sequence[str]) -> Optional[int]:
    """Index of the PATH argument of `image load [opts] PATH`, if any."""
    if len(args) < 2 or args[0] != "load":
        return None
    for i in range(1, len(args)):
        if not args[i].startswith("-"):
            return i
    return None


def run_remote(
    host: str, method: str, args: List[str], socket: Optional[str] = None, debug: bool = False
) -> int:
    from tcr.cli.main import fork_exec

    target = parse_host(host)
    options = connection_options(target, extra_options(), control_dir())
    stdin_tty = os.isatty(0)
    args = list(args)
    if method == "image":
        i = image_load_file(args)
        if i is not None:
            args[i] = upload_image(target, args[i], options, batch=not stdin_tty, socket=socket)
    if method == "cp" or (method == "container" and args[:1] == ["cp"]):
        from tcr.cli import cp  # a local path is copied here, as docker's client does

        code = cp.remote(target, options, socket, args[1:] if method == "container" else args)
        if code is not None:
            if code == SSH_FAILED:
                raise TcrError(f"ssh to {target} failed (exit 255)")
            return code
    interactive = is_interactive(method, args)
    command = remote_command([*remote_tcr(socket), method, *args])
    argv = ssh_argv(target, command, tty=stdin_tty and interactive, batch=not stdin_tty, options=options)
    if debug:
        sys.stderr.write("tcr: " + " ".join(map(shlex.quote, argv)) + "\n")
    code = fork_exec(argv)
    if code == SSH_FAILED:
        raise TcrError(
            f"ssh to {target} failed (exit 255)",
            hint="check the host, the port, your key (TCR_SSH_OPTS) and that sshd runs there",
        )
    return code
