"""crun: pure argv builders and thin calls through tcr.common.run.

tcr gives crun its own state root (`crun --root <run_dir>/crun`), so tcr's containers are separate
from anything else on the board and several daemons (tests) never collide.
"""

from __future__ import annotations

import os

from tcr.common.errors import CommandError
from tcr.common.run import run, which

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Sequence

_CRUN: Optional[str] = None


def crun_path() -> str:
    """Absolute path of crun (the client execs it; an absolute path avoids a PATH search there)."""
    global _CRUN
    if _CRUN is None:
        _CRUN = which("crun") or "crun"
    return _CRUN


def base(root: str) -> List[str]:
    return [crun_path(), "--root", root]


def run_argv(root: str, bundle: str, cid: str) -> List[str]:
    """Foreground run (interactive: the client execs this)."""
    return base(root) + ["run", "--bundle", bundle, cid]


def run_detached_argv(root: str, bundle: str, cid: str, pid_file: str) -> List[str]:
    """create+start in one process; --pid-file spares a `crun state` call."""
    return base(root) + ["run", "--detach", "--pid-file", pid_file, "--bundle", bundle, cid]


def create_argv(root: str, bundle: str, cid: str, pid_file: str) -> List[str]:
    return base(root) + ["create", "--pid-file", pid_file, "--bundle", bundle, cid]


def start_argv(root: str, cid: str) -> List[str]:
    return base(root) + ["start", cid]


def kill_argv(root: str, cid: str, sig: str, all_processes: bool = False) -> List[str]:
    return base(root) + ["kill"] + (["--all"] if all_processes else []) + [cid, sig]


def delete_argv(root: str, cid: str, force: bool = True) -> List[str]:
    return base(root) + ["delete"] + (["--force"] if force else []) + [cid]


def state_argv(root: str, cid: str) -> List[str]:
    return base(root) + ["state", cid]


def list_argv(root: str) -> List[str]:
    return base(root) + ["list", "--quiet"]


def exec_argv(root: str, cid: str, cmd: Sequence[str], *, tty: bool = False, detach: bool = False,
              env: Sequence[str] = (), user: Optional[str] = None, cwd: Optional[str] = None,
              pid_file: Optional[str] = None) -> List[str]:
    argv = base(root) + ["exec"]
    if tty:
        argv.append("--tty")
    if detach:
        argv.append("--detach")
    for e in env:
        argv += ["--env", e]
    if user:
        argv += ["--user", user]
    if cwd:
        argv += ["--cwd", cwd]
    if pid_file:
        argv += ["--pid-file", pid_file]
    return argv + [cid] + list(cmd)


# ---- thin calls ------------------------------------------------------------------------------


def kill(root: str, cid: str, sig: str) -> bool:
    """Signal the container's init (the kernel then ends its whole pid namespace on exit).

    False if crun says there is no such running container.
    """
    r = run(kill_argv(root, cid, sig), check=False, timeout=10)
    return r.returncode == 0


def delete(root: str, cid: str) -> None:
    """`crun delete --force`: kills what is left and removes crun's state; missing is fine."""
    r = run(delete_argv(root, cid), check=False, timeout=20)
    if r.returncode != 0 and not _missing(r.stderr):
        raise CommandError(r.argv, r.returncode, r.stderr)


def state(root: str, cid: str) -> Optional[Dict]:
    """crun's state of cid ({"status": "running"|"stopped"|"created", "pid": N, ...}) or None."""
    if not os.path.isdir(os.path.join(root, cid)):
        return None  # no crun state dir: spare a subprocess
    r = run(state_argv(root, cid), check=False, timeout=10)
    if r.returncode != 0:
        return None
    from tcr.common import jsonc

    try:
        st = jsonc.loads(r.stdout)
    except ValueError:
        return None
    return st if isinstance(st, dict) else None


def list_ids(root: str) -> List[str]:
    """Container ids in crun's state root (a directory per container)."""
    try:
        return sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n)))
    except FileNotFoundError:
        return []


def _missing(stderr: str) -> bool:
    s = stderr.lower()
    return "does not exist" in s or "no such file" in s or "not found" in s


# docker exit codes for what crun reports when it cannot run the command.
CANNOT_INVOKE = 126
NOT_FOUND = 127
TCR_ERROR = 125


def classify_start_error(stderr: str) -> int:
    """Exit code for a failed crun start from its error text (docker's 125/126/127)."""
    s = stderr.lower()
    if "executable file" in s and "not found" in s:
        return NOT_FOUND
    if "no such file or directory" in s and ("exec" in s or "executable" in s):
        return NOT_FOUND
    if "permission denied" in s or "operation not permitted" in s or "exec format error" in s:
        return CANNOT_INVOKE
    return TCR_ERROR
