"""Named crash points for fault-injection tests (test builds only).

    from tcr.common.faults import fault
    fault("image.after_loop_attach")

fault(name) does nothing unless BOTH environment variables are set when tcr is imported:

    TCR_TEST_FAULTS=1                      arms fault injection at all (never set in production)
    TCR_FAULT_POINTS=name1,name2,...       the points at which the process kills itself

At an armed point the process sends itself SIGKILL: no cleanup, no atexit, no flushing, exactly
like a power cut or an OOM kill at that instant. test/root/test_crash_points.py uses this to show
that start-up recovery rolls every multi-step operation fully forward or fully back.

The environment is read once, at import, into a frozenset, so an unarmed fault() is one function
call and one set lookup on an empty set.
"""

import os
import signal
from typing import FrozenSet


def _armed(env=os.environ) -> FrozenSet[str]:
    if env.get("TCR_TEST_FAULTS") != "1":
        return frozenset()
    return frozenset(p.strip() for p in env.get("TCR_FAULT_POINTS", "").split(",") if p.strip())


ARMED: FrozenSet[str] = _armed()

# Every point that the daemon's code calls, so tests and docs/reliability.md can enumerate them.
POINTS = (
    "image.after_loop_attach",
    "image.after_mount",
    "image.after_state_write",
    "image.rm.after_state_delete",
    "container.create.after_state_write",
    "container.create.after_bundle",
    "container.start.after_crun_start",
    "container.rm.after_crun_delete",
    "network.create.after_state_write",
    "network.create.after_bridge",
    "network.attach.after_netns",
    "network.attach.after_veth",
    "network.attach.after_lease",
    "network.detach.after_veth_delete",
    "network.ports.after_nft",
)


def fault(name: str) -> None:
    """Kill this process with SIGKILL if the point `name` is armed (see the module doc)."""
    if name in ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
