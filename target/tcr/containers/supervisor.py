"""Restart policies: pure decisions (what to do when a container exits) plus the backoff arithmetic.

Rules (docker's, with tcr's guarantees):
- no: never restart.
- on-failure[:N]: restart when the exit code is non-zero (or unknown), at most N times (0 = no cap).
- unless-stopped / always: restart whatever the code.
- `tcr stop`/`kill`/`rm` set stopped_by_user: the policy never undoes that (for every policy).
- tcrd shutting down stops containers but never restarts them now, and does NOT mark them
  stopped_by_user: always/unless-stopped come back when tcrd starts again.
- At daemon start (recovery, boot): always and unless-stopped containers that were not stopped by
  the user come back; on-failure ones come back only if they were running when tcrd went away.
Backoff: 100 ms, doubling per consecutive quick failure, capped at 60 s; a run that stayed up for
10 s resets the streak, so a crash loop never spins and a long-lived service restarts fast.
"""

from __future__ import annotations

from tcr.common.errors import InvalidArgument
from tcr.common.record import dataclass

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Optional

POLICIES = ("no", "on-failure", "unless-stopped", "always")
BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
RESET_AFTER = 10.0


@dataclass(frozen=True)
class RestartPolicy:
    name: str = "no"
    max_retries: int = 0  # on-failure only; 0 = unlimited

    def __str__(self) -> str:
        if self.name == "on-failure" and self.max_retries:
            return f"on-failure:{self.max_retries}"
        return self.name


def parse_policy(text: Optional[str]) -> RestartPolicy:
    if text is None or text == "":
        return RestartPolicy()
    name, sep, count = text.partition(":")
    if name not in POLICIES:
        raise InvalidArgument(f"invalid restart policy {text!r}",
                              hint="use no, on-failure[:N], unless-stopped or always")
    if sep:
        if name != "on-failure":
            raise InvalidArgument(f"invalid restart policy {text!r}: only on-failure takes a count")
        if not count.isdigit():
            raise InvalidArgument(f"invalid restart policy {text!r}: the count must be a number >= 0")
        return RestartPolicy(name, int(count))
    return RestartPolicy(name)


def should_restart(policy: RestartPolicy, exit_code: Optional[int], stopped_by_user: bool,
                   restart_count: int, shutting_down: bool = False) -> bool:
    """Decide, when a detached container's process has exited, whether to start it again."""
    if stopped_by_user or shutting_down or policy.name == "no":
        return False
    if policy.name == "on-failure":
        if exit_code == 0:
            return False
        return policy.max_retries == 0 or restart_count < policy.max_retries
    return True  # always, unless-stopped


def restart_at_boot(policy: RestartPolicy, stopped_by_user: bool, was_running: bool) -> bool:
    """Decide, when tcrd starts and finds a container not running, whether to start it."""
    if stopped_by_user or policy.name == "no":
        return False
    if policy.name == "on-failure":
        return was_running  # it was interrupted (daemon crash, reboot): that counts as a failure
    return True


def backoff_delay(streak: int) -> float:
    """Delay before restart number streak+1 of a crash streak: 0.1, 0.2, 0.4 ... 60 s."""
    if streak <= 0:
        return BACKOFF_START
    if streak >= 10:  # 0.1 * 2**10 > 60: avoid big powers
        return BACKOFF_MAX
    return min(BACKOFF_MAX, BACKOFF_START * (2 ** streak))


def next_streak(streak: int, uptime: float) -> int:
    """The crash streak after a run that lasted uptime seconds (reset by a long enough run)."""
    return 0 if uptime >= RESET_AFTER else streak + 1


@dataclass(frozen=True)
class Decision:
    restart: bool
    delay: float = 0.0
    streak: int = 0


def on_exit(policy: RestartPolicy, exit_code: Optional[int], stopped_by_user: bool,
            restart_count: int, streak: int, uptime: float, shutting_down: bool = False) -> Decision:
    """Everything the manager needs when a supervised process exits."""
    if not should_restart(policy, exit_code, stopped_by_user, restart_count, shutting_down):
        return Decision(False, 0.0, 0)
    base = 0 if uptime >= RESET_AFTER else streak
    return Decision(True, backoff_delay(base), next_streak(streak, uptime))
