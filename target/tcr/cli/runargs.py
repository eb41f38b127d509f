"""Client-side expansion of the run/create/exec flags that name the user's own world.

`-e VAR` (no value) takes VAR from the environment of the `tcr` the user runs, and `--env-file F`
(and `--label-file F`) is read by that client, relative to its working directory: the daemon has neither that
environment nor, over `-H ssh://`, that file system. Both become plain `-e K=V` before the request
is sent. An unset VAR is dropped, as docker does. The daemon still reads --env-file itself for the
C client (which sends it unexpanded).

No argparse here (client start-up): the flags that take a value are listed below, and a unit test
checks the list against the daemon's parser.
"""

from __future__ import annotations

from tcr.common import leanos as os  # os itself only when -e/--env-file need it (~1 ms)

TYPE_CHECKING = False  # typing costs client start-up; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Callable, List, Mapping, Optional

# run/create flags that take a value (short letters and long names, without dashes)
RUN_VALUE_SHORT = frozenset("evpmuwhl")
RUN_VALUE_LONG = frozenset((
    "name", "env", "env-file", "volume", "tmpfs", "publish", "network", "net", "restart", "stop-timeout",
    "stop-signal", "memory", "cpus", "pids-limit", "cap-add", "cap-drop", "user", "workdir", "entrypoint",
    "hostname", "log-size", "log-files", "log-opt", "log-driver", "config", "mount", "device",
    "device-cgroup-rule", "group-add", "add-host", "dns", "dns-search", "dns-option", "dns-opt", "ulimit",
    "label", "label-file", "sysctl", "shm-size", "health-cmd", "health-interval", "health-timeout",
    "health-retries", "health-start-period", "network-alias"))
EXEC_VALUE_SHORT = frozenset("euw")
EXEC_VALUE_LONG = frozenset(("env", "user", "workdir"))

ENV_FILE_CAP = 1 << 20


def env_file_lines(text: str, environ: Mapping[str, str]) -> List[str]:
    """docker's env-file: KEY=VALUE taken literally, KEY alone copied from the environment (dropped
    if unset), # comments and blank lines skipped."""
    out = []
    for line in text.splitlines():
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        out += expand_env(line, environ)
    return out


def expand_env(item: str, environ: Mapping[str, str]) -> List[str]:
    if "=" in item or not item:
        return [item]
    return [f"{item}={environ[item]}"] if item in environ else []


def _read_client_file(path: str) -> str:
    from tcr.common.fileread import read_bytes

    return read_bytes(path, ENV_FILE_CAP, what=f"cannot read {path}").decode("utf-8", errors="replace")


def expand(args: List[str], environ: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
           read_file: Callable[[str], str] = _read_client_file, exec_flags: bool = False) -> List[str]:
    """The run/create (or exec) argv with -e VAR and --env-file F expanded; the image and the
    command after it are left untouched."""
    base = os.getcwd() if cwd is None else cwd
    short = EXEC_VALUE_SHORT if exec_flags else RUN_VALUE_SHORT
    long_ = EXEC_VALUE_LONG if exec_flags else RUN_VALUE_LONG
    out: List[str] = []
    i = 0

    def env() -> Mapping[str, str]:  # the client's environment, read only when -e/--env-file need it
        return os.environ if environ is None else environ

    def env_value(v: str) -> None:
        out.extend("--env=" + kv for kv in expand_env(v, env() if v and "=" not in v else {}))

    def env_file(v: str) -> None:
        path = os.path.normpath(os.path.join(base, v))
        # one argument per variable: a request carries at most 1024 arguments (rpc.protocol)
        out.extend("--env=" + kv for kv in env_file_lines(read_file(path), env()))

    while i < len(args):
        a = args[i]
        if a == "--" or not a.startswith("-") or a == "-":
            return out + args[i:]
        if a.startswith("--"):
            name, eq, val = a[2:].partition("=")
            takes = name in long_
            if takes and not eq:
                if i + 1 >= len(args):
                    return out + args[i:]
                val, i = args[i + 1], i + 1
            if name == "env":
                env_value(val)
            elif name == "env-file" and not exec_flags:
                env_file(val)
            elif name == "label-file" and not exec_flags:  # docker reads it in the client too
                path = os.path.normpath(os.path.join(base, val))
                out.extend("--label=" + ln.strip() for ln in read_file(path).splitlines()
                           if ln.strip() and not ln.lstrip().startswith("#"))
            else:
                out.extend([a] if eq or not takes else [a, val])
            i += 1
            continue
        # a cluster of short flags: -dit, -eVAR, -de VAR
        j = 1
        while j < len(a) and a[j] not in short:
            j += 1
        if j >= len(a):  # no value-taking letter
            out.append(a)
            i += 1
            continue
        letter, val = a[j], a[j + 1:]
        if not val:
            if i + 1 >= len(args):
                return out + args[i:]
            val, i = args[i + 1], i + 1
        if letter == "e":
            if j > 1:
                out.append(a[:j])
            env_value(val)
        else:
            out.extend([a[:j + 1], val])
        i += 1
    return out


def expand_command(method: str, args: List[str]) -> List[str]:
    """The hook for tcr.cli.main: expand where the method is run/create/exec (or `container X`)."""
    if method == "container" and args and args[0] in ("run", "create", "exec"):
        return args[:1] + expand_command(args[0], args[1:])
    if method in ("run", "create"):
        return expand(args)
    if method == "exec":
        return expand(args, exec_flags=True)
    return args
