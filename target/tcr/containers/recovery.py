"""Container recovery at tcrd's start: records + crun state -> re-adopt live containers, roll back
half-made ones, clean up or restart (restart policy) the dead ones.

Start-up only: ContainerManager.recover() imports this module, and tcrd drops it once it listens
(tcr.daemon.main, as tcr.check), so its code is not resident in an idle daemon (docs/profile.md).
Nothing here may outlive the call: callbacks a re-adopted container needs (its exit watch, its
health monitor) are the manager's methods, never functions or lambdas of this module.
"""

from __future__ import annotations

import os
import time

from tcr.common.errors import TcrError
from tcr.containers import crun
from tcr.containers.bundle import ContainerPaths, is_mounted, umount_overlay
from tcr.containers.manager import KIND, LIVE, Container, _health_config, _policy, _rmtree, log
from tcr.containers.record import ContainerRecord
from tcr.kernel.pidfd import pid_alive

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List

    from tcr.containers.manager import ContainerManager

def recover(cm: ContainerManager) -> List[str]:
    """Rebuild from records + crun state: re-adopt live containers, clean or restart dead ones."""
    problems: List[str] = []
    records, errors = cm.store.load_records(KIND, ContainerRecord.from_dict, "container",
                                              key_of=lambda r: r.id)
    problems += errors
    for rec in records.values():
        cm.containers[rec.id] = Container(rec, ContainerPaths.of(cm.root, rec.id))
    # Half-made containers: a directory without a record, or crun state nobody owns.
    try:
        entries = os.listdir(cm.dir)
    except FileNotFoundError:
        entries = []
    for name in entries:
        p = os.path.join(cm.dir, name)
        if os.path.isdir(p) and name not in cm.containers and len(name) == 16:
            problems.append(f"container dir {name} had no record: rolled back")
            _rollback(cm, name)
    for cid in crun.list_ids(cm.crun_root):
        if cid not in cm.containers:
            problems.append(f"crun container {cid} had no record: deleted")
            try:
                crun.delete(cm.crun_root, cid)
            except TcrError as exc:
                problems.append(f"crun delete {cid}: {exc}")
    # Which containers still run decides which network leases survive: networks recover first.
    live = {cid for cid in crun.list_ids(cm.crun_root) if cid in cm.containers
            and _crun_alive(cm, cid)}
    nets = cm.daemon.networks
    if nets is not None and hasattr(nets, "recover"):
        try:
            problems += list(nets.recover(live) or [])
        except (OSError, TcrError) as exc:
            problems.append(f"network recovery failed: {exc}")
    to_start: List[Container] = []
    for c in list(cm.containers.values()):
        try:
            if _recover_one(cm, c):
                to_start.append(c)
        except (OSError, TcrError) as exc:
            problems.append(f"container {c.rec.id}: recovery failed: {exc}")
    for c in to_start:
        try:
            cm.start(c)
        except (OSError, TcrError) as exc:  # one container's trouble must not stop tcrd
            problems.append(f"container {c.rec.name}: restart at start-up failed: {exc}")
            if c.rec.state != "exited" or not c.rec.error:
                cm._save(c, state="exited", pid=0, error=str(exc), finished_at=time.time())
    # A network made on first use whose last container went in a crash (record deleted, not
    # pruned yet) goes now.
    for name in nets.auto_networks() if nets is not None else ():
        cm._prune_network(name)
    return problems


def _live_networks(cm: ContainerManager, c: Container) -> Dict[str, Any]:
    """A re-adopted container's networks are what is plumbed (the leases, kept by the network
    recovery): a tcrd that died inside `network connect`/`disconnect` after the network record
    and before this one is rolled forward."""
    nets = cm.daemon.networks
    if nets is None or not hasattr(nets, "attachments") or c.opts.network in ("host", "none"):
        return {}
    from tcr.containers.record import Endpoint

    atts = nets.attachments(c.rec.id)
    plumbed = {a.network for a in atts}
    listed = {e.network for e in c.rec.networks}
    keep = tuple(e for e in c.rec.networks if e.network in plumbed)
    new = keep + tuple(Endpoint(a.network, a.aliases) for a in atts if a.network not in listed)
    if new == tuple(c.rec.networks):
        return {}
    log.info("container %s: networks %s after recovery", c.rec.id[:12], [e.network for e in new])
    return {"networks": new, "net": cm.net_summary(c)}


def _crun_alive(cm: ContainerManager, cid: str) -> bool:
    st = crun.state(cm.crun_root, cid)
    return st is not None and st.get("status") in LIVE and pid_alive(int(st.get("pid") or 0))


def _rollback(cm: ContainerManager, cid: str) -> None:
    paths = ContainerPaths.of(cm.root, cid)
    if os.path.isdir(os.path.join(cm.crun_root, cid)):
        try:
            crun.delete(cm.crun_root, cid)
        except TcrError:
            pass
    try:
        umount_overlay(paths)
    except OSError:
        pass
    if cm.daemon.networks is not None:
        try:
            cm.daemon.networks.detach(cid)
        except TcrError:
            pass
    if not is_mounted(paths.merged):
        _rmtree(paths.dir)


def _recover_one(cm: ContainerManager, c: Container) -> bool:
    """Re-adopt or clean up one container; True if it should be started now."""
    rec = c.rec
    st = crun.state(cm.crun_root, rec.id)
    alive = st is not None and st.get("status") in LIVE and pid_alive(int(st.get("pid") or 0))
    c.paused = alive and st is not None and st.get("status") == "paused"
    if rec.state == "creating":
        _rollback(cm, rec.id)
        cm.store.delete(KIND, rec.id)
        del cm.containers[rec.id]
        return False
    if alive and rec.interactive:
        if rec.pid and pid_alive(rec.pid):  # the client still runs crun: watch it again
            c.watch = cm._watch_client(c, rec.pid)
            cm._save(c, state="running")
            return False
        alive = False
    if alive:
        assert st is not None
        pid = int(st["pid"])
        # Not our child any more (tcrd restarted): the exit code will be unknown.
        c.watch = cm._watch_init(c, pid)
        if os.path.exists(c.paths.log_fifo) and not c.opts.tty:
            c.pump = cm._new_pump(c)
        cm._save(c, state="running", pid=pid, **_live_networks(cm, c))
        log.info("container %s (%s) re-adopted, pid %d", rec.id[:12], rec.name, pid)
        _recover_health(cm, c)
        return False
    was_running = rec.state in ("running", "restarting") or rec.interrupted
    cm._teardown(c)
    if rec.state in ("running", "restarting"):
        cm._save(c, state="exited", pid=0, exit_code=None if rec.state == "running" else rec.exit_code,
                   finished_at=time.time())
    if c.opts.rm:
        if was_running or rec.interactive:
            cm._remove_now(c)
        return False
    if rec.interactive:
        # A foreground run without --rm stays, exited, with its exit code and logs (as with
        # docker) until `rm`; it is never restarted (its client, which ran it, is gone).
        return False
    policy = _policy(c)
    if policy is None:
        return False
    from tcr.containers import supervisor

    return supervisor.restart_at_boot(policy, rec.stopped_by_user, was_running)


def _recover_health(cm: ContainerManager, c: Container) -> None:
    """A re-adopted container gets its monitor back (status starts over at `starting`)."""
    ann: Dict[str, Any] = {}
    try:
        data = cm.daemon.images.read_config(cm.daemon.images.get(c.rec.image_id))
        if b"org.tcr.image.healthcheck" in data:  # parse only the images that have one
            from tcr.common import jsonc

            ann = (jsonc.loads(data) or {}).get("annotations") or {}
    except (TcrError, ValueError, AttributeError):
        pass
    c.health_cfg = _health_config(c.opts.health, ann)
    cm._health_begin(c)
