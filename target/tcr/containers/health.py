"""Health checks of running containers (imported only when a container has one).

One Monitor per running container with a check: a timer on the event loop fires every
`interval`; each check runs `crun exec` in a short-lived forked worker (tcr.daemon.worker), so the
loop never waits for it. The result updates the status docker users know: starting -> healthy /
unhealthy (after `retries` consecutive failures; failures within `startPeriod` do not count), with
the last five results kept for `inspect` (.State.Health.Log). A container without a check has no
timer and this module is never imported (docs/containers.md, "Health checks").
"""

from __future__ import annotations

import os
import signal
import time

from tcr.common.log import get_logger
from tcr.containers import healthcfg

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional

log = get_logger("tcr.health")

MAX_OUTPUT = 4096  # bytes of a check's output kept (docker keeps 4 KiB)
LOG_ENTRIES = 5
BUSY_RETRY = 1.0   # seconds before retrying a check the worker pool had no room for


def rfc3339(ts: float) -> str:
    frac = f"{ts % 1:.9f}"[1:]
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + frac + "Z"


def run_check(argv: List[str], timeout: float, pid_file: str) -> Dict[str, Any]:
    """In the worker: run the check through crun exec; exit code and output (docker's rules:
    a timeout is a failure, -1)."""
    from tcr.common.errors import CommandError, TcrError
    from tcr.common.run import run

    try:
        r = run(argv, check=False, timeout=timeout)
    except CommandError as exc:
        try:
            with open(pid_file) as f:
                os.kill(int(f.read().strip()), signal.SIGKILL)  # the check itself, inside the container
        except (OSError, ValueError):
            pass
        return {"code": -1, "output": f"Health check exceeded timeout ({timeout:g}s)" if exc.returncode == -9
                else str(exc)}
    except TcrError as exc:
        return {"code": -1, "output": exc.message}
    finally:
        try:
            os.unlink(pid_file)
        except OSError:
            pass
    out = (r.stdout or "") + (r.stderr or "")
    return {"code": r.returncode, "output": out[-MAX_OUTPUT:]}


class Monitor:
    """Runs one container's check on a timer; status/log for ps and inspect."""

    def __init__(self, loop: Any, cfg: Dict[str, Any], argv_for: Callable[[List[str], str], List[str]],
                 pid_file: str, name: str, on_change: Optional[Callable[[str], None]] = None,
                 paused: Optional[Callable[[], bool]] = None):
        self.loop = loop
        self.cfg = cfg
        self.argv_for = argv_for  # cmd, pid_file -> crun exec argv
        self.pid_file = pid_file
        self.name = name
        self.on_change = on_change
        self.paused = paused  # a frozen container cannot run a check: skip it (docker does too)
        self.status = "starting"
        self.failing_streak = 0
        self.log: List[Dict[str, Any]] = []
        self.started = loop.time()
        self.timer: Any = None
        self.job: Any = None
        self.stopped = False

    def start(self) -> None:
        self._schedule(self.cfg["interval"])

    def stop(self) -> None:
        self.stopped = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.job is not None:
            self.job.cancel()
            self.job = None

    def _schedule(self, delay: float) -> None:
        if not self.stopped:
            self.timer = self.loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self.timer = None
        if self.stopped or self.job is not None:
            return
        if self.paused is not None and self.paused():
            self._schedule(self.cfg["interval"])
            return
        from tcr.common.errors import TcrError
        from tcr.daemon import worker

        argv = self.argv_for(healthcfg.command(self.cfg["test"]), self.pid_file)
        began = time.time()

        def done(res: Any) -> None:
            self._done(res, began)

        try:
            self.job = worker.spawn(self.loop, run_check, (argv, self.cfg["timeout"], self.pid_file),
                                    what=f"health check of {self.name}", on_done=done,
                                    timeout=self.cfg["timeout"] + 10)
        except TcrError as exc:  # the worker pool is full or fork failed: try again soon, not a failure
            log.warning("container %s: health check postponed: %s", self.name, exc)
            self._schedule(BUSY_RETRY)

    def _done(self, res: Any, began: float) -> None:
        self.job = None
        if self.stopped:
            return
        if isinstance(res, dict):
            code, out = int(res.get("code", -1)), str(res.get("output", ""))
        else:
            code, out = -1, str(res)
        self.record(code, out, began, time.time())
        self._schedule(self.cfg["interval"])

    def record(self, code: int, output: str, began: float, ended: float) -> None:
        """Fold one result into the status (pure apart from the clock the caller read)."""
        self.log.append({"Start": rfc3339(began), "End": rfc3339(ended), "ExitCode": code, "Output": output})
        del self.log[:-LOG_ENTRIES]
        old = self.status
        if code == 0:
            self.failing_streak = 0
            self.status = "healthy"
        elif self.loop.time() - self.started < self.cfg["startPeriod"] and self.status == "starting":
            pass  # failures in the start period do not count
        else:
            self.failing_streak += 1
            if self.failing_streak >= self.cfg["retries"]:
                self.status = "unhealthy"
        if self.status != old:
            log.info("container %s is %s", self.name, self.status)
            if self.on_change is not None:
                self.on_change(self.status)

    def view(self) -> Dict[str, Any]:
        """docker's .State.Health."""
        return {"Status": self.status, "FailingStreak": self.failing_streak, "Log": list(self.log)}
