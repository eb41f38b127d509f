"""Network recovery at tcrd's start: bridges, nft ruleset and DNS rebuilt from the records; the
leases, veths and netns files of containers that are gone dropped; live containers' published
ports bound again.

Start-up only: NetworkManager.recover() imports this module, and tcrd drops it once it listens
(tcr.daemon.main, as tcr.check), so its code is not resident in an idle daemon (docs/profile.md).
"""

from __future__ import annotations

import os

from tcr.common.errors import TcrError
from tcr.kernel import netns
from tcr.network import netplan
from tcr.network.manager import _oserr, log

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import List, Set

    from tcr.network.manager import NetworkManager


def recover(nm: NetworkManager, live_container_ids: Set[str]) -> List[str]:
    """Rebuild bridges + nft + DNS from the records; drop leases, veths and netns files of
    containers that are gone (after a crash or a reboot)."""
    live = set(live_container_ids)
    for name, rec in list(nm._nets.items()):
        dead = [le.cid for le in rec.leases if le.cid not in live]
        if dead:
            for c in dead:
                rec = rec.without(c)
            nm._nets[name] = rec
            nm._save(rec)
            log.info("network %s: released %d stale lease(s)", name, len(dead))
    if nm._nets:
        nm._enable_forwarding()
    for rec in nm._nets.values():
        try:
            nm._ensure_bridge(rec)
        except (OSError, TcrError) as exc:
            log.error("network %s: cannot bring up bridge %s: %s", rec.name, rec.bridge, exc)
    bridges = {r.bridge for r in nm._nets.values()}
    veths = {netplan.veth_name(le.cid, nm.tag, le.ifname)
             for r in nm._nets.values() for le in r.leases}
    leased = {le.cid for r in nm._nets.values() for le in r.leases}
    veth_master = {netplan.veth_name(le.cid, nm.tag, le.ifname): nm._bridge_idx[r.bridge]
                   for r in nm._nets.values() if r.bridge in nm._bridge_idx for le in r.leases}
    try:
        links = nm.nl.links()
    except OSError as exc:
        raise _oserr("cannot list network links", exc)
    for link in links:
        ours_bridge = link.kind == "bridge" and (link.name == nm.prefix + "0"
                                                 or link.name.startswith(nm.prefix + "-"))
        ours_veth = link.kind == "veth" and link.name.startswith(nm.prefix + "v")
        if (ours_bridge and link.name not in bridges) or (ours_veth and link.name not in veths):
            log.info("removing leftover link %s", link.name)
            try:
                nm.nl.delete(index=link.index)
            except OSError as exc:
                log.warning("cannot delete %s: %s", link.name, exc.strerror)
        elif ours_veth and link.master != veth_master.get(link.name, link.master):
            # a live container whose bridge was rebuilt: plug its veth into the new bridge
            try:
                nm.nl.set_master(link.index, veth_master[link.name])
            except OSError as exc:
                log.warning("cannot re-attach %s: %s", link.name, exc.strerror)
    try:
        entries = os.listdir(nm.netns_dir)
    except FileNotFoundError:
        entries = []
    for e in entries:
        if e not in leased and e not in live:  # a live container on no network keeps its lo-only netns
            log.info("removing leftover netns %s", e)
            netns.remove(os.path.join(nm.netns_dir, e))
    nm._apply_nft(force=True)
    for rec in nm._nets.values():
        nm._dns_sync(rec)
    problems: List[str] = []
    for cid in sorted(leased):
        problems += nm.reacquire(cid)
    for line in problems:
        log.warning("%s", line)
    return problems
