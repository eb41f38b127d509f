"""The container manager's occasional operations, loaded on first use (an idle tcrd does not hold
their code, docs/profile.md): `exec -d`, and the compat dialect's interactive run (the C client
execs crun itself). ContainerManager keeps a thin entry point for each.
"""

from __future__ import annotations

import os
import time

from tcr.common.errors import InternalError, InvalidArgument
from tcr.containers import crun
from tcr.containers import logs as clogs
from tcr.containers.manager import StartFailed

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import List, Optional

    from tcr.containers.manager import Container, ContainerManager


def run_interactive(cm: ContainerManager, c: Container, client_pid: Optional[int]) -> List[str]:
    if client_pid is None or client_pid <= 0:
        raise InvalidArgument("an interactive run needs the client's pid (params.pid)")
    cm._prepare(c)
    try:
        c.watch = cm._watch_client(c, client_pid)
    except OSError as exc:
        cm._teardown(c)
        raise InternalError(f"cannot watch the client process {client_pid}: {exc.strerror}")
    cm._save(c, state="running", pid=client_pid, started_at=time.time(), exit_code=None)
    return crun.run_argv(cm.crun_root, c.paths.bundle, c.rec.id)


def exec_detached(cm: ContainerManager, c: Container, cmd: List[str], env: List[str], user: Optional[str],
                  cwd: Optional[str]) -> None:
    """`exec -d`: started by tcrd, output into the container's log."""
    from tcr.common.run import PIPE, run

    argv = cm._exec_argv(c, cmd, False, env, user, cwd, detach=True)
    fifo = c.paths.log_fifo
    w = clogs.open_writer(fifo) if os.path.exists(fifo) else os.open(os.devnull, os.O_WRONLY)
    try:
        r = run(argv, check=False, timeout=30, stdout=w, stderr=PIPE)
    finally:
        os.close(w)
    if r.returncode != 0:
        msg = (r.stderr or "").strip().splitlines()
        text = msg[-1] if msg else f"crun exec exited with {r.returncode}"
        raise StartFailed(f"exec in {c.rec.name} failed: {text}", crun.classify_start_error(text))
