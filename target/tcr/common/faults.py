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

Host errors (EIO from a failing flash, ENOSPC ...) are injected the same way, at the points of
ERRNO_POINTS, where fail(name, path) raises the OSError the kernel would:

    TCR_FAULT_ERRNO=state.write=EIO,...    raise OSError(EIO) there, every time
"""

from __future__ import annotations

import _signal as signal  # not `signal`: its enums bring enum and functools (docs/profile.md)
import errno
import os

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Dict, FrozenSet


def _armed(env=os.environ) -> FrozenSet[str]:
    if env.get("TCR_TEST_FAULTS") != "1":
        return frozenset()
    return frozenset(p.strip() for p in env.get("TCR_FAULT_POINTS", "").split(",") if p.strip())


ARMED: FrozenSet[str] = _armed()


def _failing(env=os.environ) -> Dict[str, int]:
    if env.get("TCR_TEST_FAULTS") != "1":
        return {}
    out = {}
    for item in env.get("TCR_FAULT_ERRNO", "").split(","):
        name, _, code = item.strip().partition("=")
        if name and hasattr(errno, code.strip()):
            out[name] = int(getattr(errno, code.strip()))
    return out


FAILING: Dict[str, int] = _failing()

# Points where fail() can raise a host error (test/root/test_eio.py).
ERRNO_POINTS = (
    "state.write",  # StateStore.save: a record cannot be written (EIO: the flash fails)
)

# Every point that the daemon's code calls, so tests and docs/reliability.md can enumerate them.
POINTS = (
    "image.after_loop_attach",             # load: loop device attached to the staged file
    "image.after_mount",                   # load: squashfs mounted at its final place, no record yet
    "image.after_state_write",             # load: record written
    "image.rm.after_umount",               # rm: unmounted, record still there
    "image.rm.after_state_delete",         # rm: record gone, directory still there
    "container.create.after_dir",          # create: directory made, no record yet
    "container.create.after_state_write",  # create: record written
    "container.start.after_prepare",       # start: overlay mounted, network attached, no crun yet
    "container.start.after_crun_start",    # start: crun runs it, state not saved yet
    "container.rm.after_teardown",         # rm: crun deleted, overlay unmounted, network detached
    "container.rm.after_state_delete",     # rm: files and record gone
    "network.create.after_bridge",         # create: bridge up, no record yet
    "network.create.after_state_write",    # create: record written, nft not applied yet
    "network.rm.after_state_delete",       # rm: record gone, nft and bridge still there
    "network.attach.after_netns",          # attach: netns file made, no veth yet
    "network.attach.after_veth",           # attach: veth pair made, no address/route yet
    "network.attach.after_lease",          # attach: lease (and ports) saved, nft not applied yet
    "network.ports.after_nft",             # attach: published ports in nft
    "network.detach.after_state_write",    # detach: lease released, nft/veth not yet
)


_daemon = 0  # in a worker (tcr.daemon.worker): tcrd's pid


def in_worker_of(daemon: int) -> None:
    """This process is a worker of tcrd `daemon`: a fault here takes tcrd down too."""
    global _daemon
    _daemon = daemon


def fault(name: str) -> None:
    """Kill this process with SIGKILL if the point `name` is armed (see the module doc). In a
    worker, tcrd first: a power cut takes both, and the crash tests restart tcrd."""
    if name in ARMED:
        if _daemon:
            os.kill(_daemon, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


def fail(name: str, path: str) -> None:
    """Raise the OSError armed for the point `name` (TCR_FAULT_ERRNO), as the kernel would for path."""
    if name in FAILING:
        code = FAILING[name]
        raise OSError(code, os.strerror(code), path)
