"""NAT bridge networks: records, bridges, per-container netns + veth, nftables, DNS wiring.

Order of every change: validate everything first (names, ports, conflicts, subnet) so that bad
input changes nothing; then kernel objects; then the record (durable); then the nft ruleset,
regenerated whole from the records and applied in one transaction. Failures roll back.
"""

from __future__ import annotations

import errno
import os

from tcr.common import syntax
from tcr.common.errors import InternalError, InvalidArgument, NetworkNotFound, TcrError
from tcr.common.faults import fault
from tcr.common.log import get_logger
from tcr.common.run import run
from tcr.kernel import netns
from tcr.network import netplan, nftplan, ports
from tcr.network.records import KIND, Attachment, Lease, NetworkRecord, PortMapping

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

log = get_logger("tcr.network")

EPHEMERAL = (49152, 65535)  # where `-p CTR` picks its host port
FD_RESERVE = 256  # open files tcrd keeps free for clients, logs and crun when it holds published ports
NOT_ATTACHED = ("host", "none")


def _oserr(what: str, exc: OSError) -> TcrError:
    from tcr.common import oserrors

    if oserrors.is_host_error(exc):  # a full disk names its filesystem and free space
        return InternalError(f"{what}: {oserrors.describe(exc)}")
    return InternalError(f"{what}: {exc.strerror or exc}")


def _write_sysctl(path: str, value: str) -> None:
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
        with open(path, "w") as f:
            f.write(value)
    except OSError as exc:
        raise _oserr(f"cannot set {path}", exc)


class NetworkManager:
    def __init__(self, daemon: Any, dns: Any = None):
        self.daemon = daemon
        self.store = daemon.store
        self.loop = getattr(daemon, "loop", None)
        self.tag = netplan.instance_tag(daemon.root)
        self.prefix = netplan.if_prefix(self.tag)
        self.table = netplan.nft_table(self.tag)
        self.netns_dir = os.path.join(daemon.run_dir, "netns")
        # Where the host's resolvers are listed (tcrd --resolv-conf): DNS upstreams and the fallback.
        self.host_resolv_conf = getattr(getattr(daemon, "options", None), "resolv_conf", None) \
            or "/etc/resolv.conf"
        self._dns = dns
        self._dns_tried = dns is not None
        self._dns_up: Set[str] = set()  # gateways the DNS service listens on
        self._nl: Any = None
        self._bridge_idx: Dict[str, int] = {}
        self._nft_applied: Optional[str] = None
        self._forward_on = False
        self._nets: Dict[str, NetworkRecord] = {}
        self._held: Dict[str, List[Any]] = {}  # cid -> bound sockets holding its published ports
        records, errors = self.store.load_records(KIND, NetworkRecord.from_dict, "network")
        for line in errors:
            log.warning("%s", line)
        for rec in records.values():
            self._nets[rec.name] = rec

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def nl(self) -> Any:
        if self._nl is None:
            from tcr.network.links import Netlink

            self._nl = Netlink()
        return self._nl

    def _save(self, rec: NetworkRecord) -> None:
        self.store.save(KIND, rec.name, rec.to_dict())

    def _apply_nft(self, force: bool = False) -> None:
        text = nftplan.ruleset(self.table, list(self._nets.values()))
        if text == self._nft_applied and not force:
            return
        run(["nft", "-f", "-"], input=text)
        self._nft_applied = text

    def _enable_forwarding(self) -> None:
        if not self._forward_on:
            _write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
            self._forward_on = True

    def _ensure_bridge(self, rec: NetworkRecord) -> int:
        nl = self.nl
        idx = nl.index(rec.bridge)
        if idx is None:
            idx = nl.add_bridge(rec.bridge)
        # A fixed MAC: otherwise the bridge takes the lowest MAC of its ports and changes it when
        # that container leaves, and the others' ARP entries for the gateway go stale (no DNS, no
        # way out for up to a minute).
        nl.set_mac(idx, netplan.mac_for(rec.gateway))
        nl.add_addr(idx, rec.gateway, rec.prefixlen)
        nl.set_up(idx)
        # Lets the host reach a published port via 127.0.0.1: after DNAT the packet leaves through
        # the bridge with a 127.x source, which the kernel refuses to route without this.
        _write_sysctl(f"/proc/sys/net/ipv4/conf/{rec.bridge}/route_localnet", "1")
        self._bridge_idx[rec.bridge] = idx
        return idx

    def _later(self, fn: Any) -> None:
        """Slow teardown (veth deletion waits for an RCU grace period) off the caller's path."""
        if self.loop is not None:
            self.loop.call_soon(fn)
        else:
            fn()

    # -- DNS -----------------------------------------------------------------------------------

    @property
    def dns(self) -> Any:
        if not self._dns_tried:
            self._dns_tried = True
            if self.loop is not None:
                try:
                    from tcr.network.dns.server import DnsService  # type: ignore[import-not-found]

                    self._dns = DnsService(self.loop, resolv_conf=self.host_resolv_conf)
                except Exception as exc:  # DNS is a convenience; networking works without it
                    log.warning("DNS forwarder unavailable: %s", exc)
        return self._dns

    def _dns_sync(self, rec: Optional[NetworkRecord], gone_gateway: Optional[str] = None) -> None:
        dns = self.dns
        if dns is None:
            return
        try:
            if gone_gateway is not None:
                if gone_gateway in self._dns_up:
                    dns.unlisten(gone_gateway)
                    self._dns_up.discard(gone_gateway)
                return
            if rec is None:
                return
            if rec.gateway not in self._dns_up:
                dns.listen(rec.gateway)
                self._dns_up.add(rec.gateway)
            dns.set_names(rec.gateway, self._names(rec))
        except Exception as exc:
            log.warning("DNS on %s: %s", rec.gateway if rec else gone_gateway, exc)
        self._dns_peers()

    def _dns_peers(self) -> None:
        """A container on several networks asks its primary network's forwarder (its resolv.conf)
        and gets the names of its other networks too (docker's DNS answers for every network of
        the asking container): per forwarder, client address -> those names. Networks are few on
        a board, so all of it is recomputed on each change."""
        dns = self.dns
        if dns is None or not hasattr(dns, "set_peers"):
            return
        names = {n: self._names(r) for n, r in self._nets.items()}
        multi: Dict[str, List[str]] = {}
        for n, r in self._nets.items():
            for le in r.leases:
                multi.setdefault(le.cid, []).append(n)
        for n, r in self._nets.items():
            if r.gateway not in self._dns_up:
                continue
            peers: Dict[str, Dict[str, str]] = {}
            for le in r.leases:
                others = [o for o in multi.get(le.cid, ()) if o != n]
                if others:
                    merged: Dict[str, str] = {}
                    for o in others:
                        for k, v in names[o].items():
                            merged.setdefault(k, v)
                    peers[le.ip] = merged
            try:
                dns.set_peers(r.gateway, peers)
            except Exception as exc:
                log.warning("DNS on %s: %s", r.gateway, exc)

    @staticmethod
    def _names(rec: NetworkRecord) -> Dict[str, str]:
        try:
            from tcr.network.dns.forwarder import names_for_container
        except ImportError:  # pragma: no cover
            names_for_container = None  # type: ignore[assignment]
        names: Dict[str, str] = {}
        for le in rec.leases:
            if names_for_container is not None:
                names.update(names_for_container(le.name, le.cid, le.ip))
            else:
                names.update({n: le.ip for n in (le.name, le.cid) if n})
        for le in rec.leases:  # aliases never shadow a container's own name
            for a in le.aliases:
                names.setdefault(a.lower(), le.ip)
        return names

    # -- queries -------------------------------------------------------------------------------

    def get(self, name: str) -> NetworkRecord:
        rec = self._nets.get(name)
        if rec is None:
            raise NetworkNotFound(f"network {name[:80]!r} not found",
                                  hint="see 'tcr network ls'; create it with 'tcr network create NAME'")
        return rec

    def find(self, name: str) -> Optional[NetworkRecord]:
        return self._nets.get(name)

    def leases_of(self, cid: str) -> List[Tuple[NetworkRecord, Lease]]:
        """Every network container cid is attached to, primary (eth0, the default route) first."""
        out = []
        for rec in self._nets.values():
            le = rec.lease(cid)
            if le is not None:
                out.append((rec, le))
        return sorted(out, key=lambda x: netplan.if_index(x[1].ifname))

    def network_of(self, cid: str) -> Optional[NetworkRecord]:
        """The container's primary network (the one its default route goes through)."""
        both = self.leases_of(cid)
        return both[0][0] if both else None

    def _published(self) -> List[Tuple[str, PortMapping]]:
        return [(le.cid, m) for rec in self._nets.values() for le in rec.leases for m in le.ports]

    def netns_path(self, cid: str) -> str:
        return os.path.join(self.netns_dir, cid)

    def attachment(self, cid: str) -> Optional[Attachment]:
        both = self.attachments(cid)
        return both[0] if both else None

    def attachments(self, cid: str) -> List[Attachment]:
        """One per network the container is on, primary first."""
        return [Attachment(network=rec.name, netns_path=self.netns_path(cid), ip=le.ip,
                           prefixlen=rec.prefixlen, gateway=rec.gateway, dns=(rec.gateway,), mac=le.mac,
                           ports=le.ports, aliases=le.aliases, ifname=le.ifname)
                for rec, le in self.leases_of(cid)]

    def resolv_conf(self, cid: str) -> str:
        """resolv.conf for the container: the DNS forwarder on its gateway, or (without it) the
        host's own non-loopback resolvers."""
        rec = self.network_of(cid)
        if rec is not None and rec.gateway in self._dns_up:
            return f"nameserver {rec.gateway}\noptions ndots:0\n"
        servers = []
        try:
            with open(self.host_resolv_conf) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 2 and parts[0] == "nameserver" and not parts[1].startswith("127."):
                        servers.append(parts[1])
        except OSError:
            pass
        return "".join(f"nameserver {s}\n" for s in servers or ["8.8.8.8"])

    def hosts_entries(self, cid: str) -> List[Tuple[str, str]]:
        """(ip, names) lines for the container's /etc/hosts: itself and its neighbours on every
        network it is on (primary first)."""
        out = []
        seen = set()
        for rec, _own in self.leases_of(cid):
            for le in rec.leases:
                if le.ip in seen:
                    continue
                seen.add(le.ip)
                names = " ".join(n for n in (le.name, le.cid[:12], *le.aliases) if n)
                out.append((le.ip, names))
        return out

    def list(self) -> List[Dict[str, Any]]:
        return [{"name": r.name, "subnet": r.subnet, "gateway": r.gateway, "bridge": r.bridge,
                 "containers": len(r.leases), "created": r.created, "labels": dict(r.labels)}
                for r in sorted(self._nets.values(), key=lambda r: r.name)]

    def inspect(self, name: str) -> Dict[str, Any]:
        self.get(name)  # not a network (`inspect REF` tries containers and images first): no import
        from tcr.network import occasional  # `network inspect`, `inspect NET`: loaded on first use

        return occasional.inspect(self, name)

    # -- networks ------------------------------------------------------------------------------

    def create(self, name: str, subnet: Optional[str] = None,
               labels: Tuple[Tuple[str, str], ...] = ()) -> Dict[str, Any]:
        from tcr.network import occasional  # `network create`: loaded on first use

        return occasional.create(self, name, subnet, labels)

    def _create(self, name: str, net: Any, auto: bool = False,
                labels: Tuple[Tuple[str, str], ...] = ()) -> NetworkRecord:
        """A new network: bridge, record, ruleset, DNS (tcr.network.create)."""
        from tcr.network import create  # network create, or the first use of a network

        return create.create_network(self, name, net, auto, labels)

    def remove(self, name: str) -> None:
        """`network rm`, or a network made on first use whose last container went
        (tcr.network.occasional)."""
        self.get(name)  # not a network: refused without loading the module
        from tcr.network import occasional

        occasional.remove(self, name)

    def auto_networks(self) -> List[str]:
        return sorted(n for n, r in self._nets.items() if r.auto)

    def prune_auto(self, name: str) -> bool:
        """Remove a network made on first use (attach(create=True)) once no container needs it any
        more; the caller knows that no container (running or not) refers to it. True if removed."""
        rec = self._nets.get(name)
        if rec is None or not rec.auto or rec.leases:
            return False
        self.remove(name)
        return True

    # -- containers ----------------------------------------------------------------------------

    def _check_target(self, cid: str, network: str, create: bool) -> Optional[NetworkRecord]:
        if not isinstance(cid, str) or not syntax.name(cid):
            raise InvalidArgument(f"invalid container id {cid!r}")
        if network in NOT_ATTACHED:
            raise InvalidArgument(f"--network {network} needs no network attachment")
        if network != netplan.DEFAULT_NETWORK:
            netplan.validate_name(network)
        rec = self._nets.get(network)
        if rec is None and network != netplan.DEFAULT_NETWORK and not create:
            self.get(network)  # raises NetworkNotFound
        return rec

    def _make(self, network: str) -> NetworkRecord:
        """A missing network on first use (tcr.network.create): tcr_default once per board."""
        from tcr.network import create

        return create.make(self, network)

    def attach(self, cid: str, name: str, network: str, publish: List[str],
               create: bool = False, aliases: Sequence[str] = (), ip: Optional[str] = None) -> Attachment:
        """Give container cid a fresh network namespace and its first (primary) lease, on
        `network`: eth0 with the default route and the published ports. The default network is
        made on first use; any other must exist, unless create=True (it is then made, marked
        auto: see prune_auto). More networks: connect()."""
        rec = self._check_target(cid, network, create)
        mappings = ports.parse_all(publish or [])
        ports.check_conflicts(self._published(), mappings, owner=cid)
        if self.leases_of(cid):
            self.detach(cid)  # a stale attachment (restart): start clean
        if rec is None:
            rec = self._make(network)
        plan = netplan.plan_attachment(cid, self.tag, rec.subnet, rec.gateway, [le.ip for le in rec.leases],
                                       (), ip)
        mappings, held = self._reserve_ports(mappings)
        lease = Lease(cid=cid, ip=plan.ip, mac=plan.mac, name=name or "", ports=tuple(mappings),
                      aliases=tuple(aliases), ifname=plan.ifname)
        try:
            self._plumb(rec, lease, plan)
        except BaseException:
            _close_all(held)
            raise
        self._held[cid] = held
        try:
            self._commit(rec, lease)
        except BaseException:
            self._unplumb(cid, [plan.ifname], defer=False)
            _close_all(self._held.pop(cid, []))
            raise
        att = self.attachment(cid)
        assert att is not None
        return att

    def sandbox(self, cid: str) -> str:
        """A NAT container on no network at all (every network disconnected, as docker allows):
        its own namespace with only lo, so that `network connect` can plug into it later."""
        if not isinstance(cid, str) or not syntax.name(cid):
            raise InvalidArgument(f"invalid container id {cid!r}")
        if self.leases_of(cid):
            self.detach(cid)
        path = self.netns_path(cid)
        try:
            self._new_netns(path)
        except OSError as exc:
            netns.remove(path)
            raise _oserr(f"cannot make the network namespace of container {cid[:12]}", exc)
        return path

    def connect(self, cid: str, name: str, network: str, aliases: Sequence[str] = (),
                ip: Optional[str] = None) -> Attachment:
        """Plug a running container into one more network (tcr.network.occasional)."""
        from tcr.network import occasional  # `network connect`, a run on several networks

        return occasional.connect(self, cid, name, network, aliases, ip)

    def _commit(self, rec: NetworkRecord, lease: Lease) -> None:
        """State after the kernel objects: the record (durable), the ruleset, the DNS names. A
        failure puts the record back (the caller removes the kernel objects)."""
        new = rec.with_lease(lease)
        try:
            self._nets[rec.name] = new
            self._save(new)
            fault("network.attach.after_lease")
            self._apply_nft()
            fault("network.ports.after_nft")
        except BaseException:
            self._nets[rec.name] = rec
            try:
                self._save(rec)
            except Exception:
                pass
            raise
        self._dns_sync(new)

    def disconnect(self, cid: str, network: str) -> bool:
        """Take one network away from a container (tcr.network.occasional); False if it was not
        attached there."""
        from tcr.network import occasional  # `network disconnect`: loaded on first use

        return occasional.disconnect(self, cid, network)

    def _new_netns(self, path: str) -> None:
        """A fresh namespace file with lo up (leftovers of an earlier life of this id go first)."""
        from tcr.network.links import Netlink

        os.makedirs(self.netns_dir, mode=0o755, exist_ok=True)
        netns.remove(path)
        netns.create(path)
        fault("network.attach.after_netns")
        with netns.inside(path):
            inner = Netlink()
        try:
            inner.set_up(1)  # lo is always ifindex 1 in a fresh namespace
        finally:
            inner.close()

    def _plumb(self, rec: NetworkRecord, lease: Lease, plan: netplan.AttachPlan) -> None:
        """netns file + the first veth (peer born as eth0 inside the netns) + address, default route."""
        path = self.netns_path(lease.cid)
        self._drop_link(plan.veth)
        try:
            self._new_netns(path)
            self._link(rec, lease, plan)
        except OSError as exc:
            self._unplumb(lease.cid, [plan.ifname], defer=False)
            raise _oserr(f"cannot attach container {lease.cid[:12]} to network {rec.name}", exc)
        except BaseException:
            self._unplumb(lease.cid, [plan.ifname], defer=False)
            raise

    def _link(self, rec: NetworkRecord, lease: Lease, plan: netplan.AttachPlan) -> None:
        """One veth pair: the host end on the network's bridge, the peer born inside the
        container's namespace as plan.ifname, with its address (and the default route if primary)."""
        from tcr.network.links import Netlink

        path = self.netns_path(lease.cid)
        br = self._bridge_idx.get(rec.bridge)
        if br is None:
            br = self._ensure_bridge(rec)
        with netns.inside(path):
            inner = Netlink()
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                try:
                    self.nl.add_veth(plan.veth, br, plan.ifname, fd, plan.mac)
                except OSError as exc:
                    if exc.errno not in (errno.ENODEV, errno.EINVAL):
                        raise
                    br = self._ensure_bridge(rec)  # the bridge vanished under us: rebuild once
                    self.nl.add_veth(plan.veth, br, plan.ifname, fd, plan.mac)
            finally:
                os.close(fd)
            # Hairpin: with br_netfilter loaded, a container reaching its OWN published port via a
            # host address is DNATed back out of the port it came in on; the bridge drops such
            # frames unless the port is in hairpin mode.
            fault("network.attach.after_veth")
            _write_sysctl(f"/sys/class/net/{plan.veth}/brport/hairpin_mode", "1")
            idx = inner.index(plan.ifname)
            if idx is None:
                raise OSError(errno.ENODEV, f"{plan.ifname} missing in the container's namespace")
            inner.add_addr(idx, plan.ip, plan.prefixlen)
            inner.set_up(idx)
            if plan.default_route:
                inner.add_default_route(plan.gateway, idx)
        finally:
            inner.close()

    def _drop_link(self, veth: str) -> None:
        """Delete a veth pair now (its peer and address in the container go with it)."""
        try:
            self.nl.delete(veth)
        except OSError as exc:
            log.warning("cannot delete %s: %s", veth, exc.strerror)

    def _unplumb(self, cid: str, ifnames: Sequence[str] = ("eth0",), defer: bool = True) -> None:
        netns.remove(self.netns_path(cid))
        idxs = []
        for ifname in ifnames:
            veth = netplan.veth_name(cid, self.tag, ifname)
            try:
                idx = self.nl.index(veth)
            except OSError:
                idx = None
            if idx is not None:
                idxs.append((veth, idx))
        if not idxs:
            return

        def reap() -> None:
            for veth, idx in idxs:
                try:
                    self.nl.delete(index=idx)
                except OSError as exc:
                    log.warning("cannot delete %s: %s", veth, exc.strerror)

        # By ifindex, so a re-attach of the same id (same veth name) meanwhile is never hit.
        self._later(reap) if defer else reap()

    def _reserve_ports(self, mappings: List[PortMapping]) -> Tuple[List[PortMapping], List[Any]]:
        """Bind and hold every host address:port of -p (tcr.network.published). All or nothing."""
        if not mappings:
            return [], []  # no -p: nothing to bind (nor the publishing code to load into tcrd)
        from tcr.network import published

        return published.reserve_ports(self, mappings)

    def reacquire(self, cid: str) -> List[str]:
        """Bind a live container's published ports again (after a daemon restart)."""
        if cid in self._held or not any(le.ports for _r, le in self.leases_of(cid)):
            self._held.setdefault(cid, [])
            return []
        from tcr.network import published

        return published.reacquire(self, cid)

    def _release(self, rec: NetworkRecord, cid: str) -> None:
        new = rec.without(cid)
        self._nets[rec.name] = new
        try:
            self._save(new)
        except OSError as exc:
            # A full disk must not keep the veth, netns, ports and DNS name alive: the next
            # write of this network saves the release, and recovery drops stale leases anyway.
            from tcr.common import oserrors

            oserrors.warn(log, "network.save", "network %s: lease release not saved yet: %s", rec.name,
                          oserrors.describe(exc))
        fault("network.detach.after_state_write")
        self._dns_sync(new)

    def _apply_nft_logged(self, cid: str) -> None:
        try:
            self._apply_nft()
        except TcrError as exc:
            log.warning("nft update after detaching %s failed: %s", cid[:12], exc)

    def detach(self, cid: str) -> None:
        """Idempotent: every network of the container. Leases, ports and DNS names go at once;
        kernel objects are reaped after."""
        _close_all(self._held.pop(cid, []))
        both = self.leases_of(cid)
        for rec, _le in both:
            self._release(rec, cid)
        if both:
            self._apply_nft_logged(cid)
        if syntax.name(cid or ""):
            self._unplumb(cid, [le.ifname for _r, le in both] or ["eth0"])

    def rename(self, cid: str, name: str) -> None:
        from tcr.network import occasional  # `tcr rename` of a NAT container: loaded on first use

        occasional.rename(self, cid, name)

    # -- life cycle ----------------------------------------------------------------------------

    def recover(self, live_container_ids: Set[str]) -> List[str]:
        """Rebuild bridges + nft + DNS from the records; drop leases, veths and netns files of
        containers that are gone. Start-up only: tcr.network.recovery, which tcrd drops once it
        listens (docs/profile.md)."""
        from tcr.network import recovery

        return recovery.recover(self, live_container_ids)

    def shutdown(self) -> None:
        """Networks stay up across a daemon restart (bridges, nft, leases); close our handles."""
        if self._dns is not None:
            try:
                self._dns.close()
            except Exception as exc:
                log.warning("closing DNS: %s", exc)
            self._dns = None
            self._dns_up.clear()
        if self._nl is not None:
            self._nl.close()
            self._nl = None
        for cid in list(self._held):
            _close_all(self._held.pop(cid))


def _close_all(socks: List[Any]) -> None:
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
