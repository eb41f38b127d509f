"""NAT networks against the real kernel: bridges, netns + veth, nftables, published ports.

Containers are simulated by the netns files attach() creates (what crun would join). Traffic goes
only to loopback and to namespaces/links these tests create: the "other host" is a test netns
behind a test veth pair in a /30. Every test removes its links, netns files and nft table.
"""

import ipaddress
import os
import socket
import threading
import types

import pytest

from tcr.common.errors import InUse, InvalidArgument, NetworkNotFound
from tcr.common.run import run
from tcr.daemon.state import StateStore
from tcr.kernel import netns
from tcr.network import netplan
from tcr.network.links import Netlink
from tcr.network.manager import NetworkManager
from tcr.network.records import KIND

pytestmark = pytest.mark.root

# Test-only subnets, varied by pid so parallel runs do not collide.
N = 200 + os.getpid() % 50


def _daemon(tmp_path):
    root = str(tmp_path / "state")
    os.makedirs(root, exist_ok=True)
    return types.SimpleNamespace(root=root, run_dir=str(tmp_path / "run"), loop=None, store=StateStore(root))


def _our_links(prefix):
    with Netlink() as nl:
        return sorted(link.name for link in nl.links() if link.name.startswith(prefix))


def _table_exists(table):
    return run(["nft", "list", "table", "ip", table], check=False).returncode == 0


@pytest.fixture
def env(tmp_path):
    d = _daemon(tmp_path)
    mgr = NetworkManager(d)
    extra = []  # (kind, name) of things a test made itself
    yield types.SimpleNamespace(d=d, mgr=mgr, extra=extra, tmp=tmp_path)
    # Teardown: through the manager first, then a sweep that must find nothing left.
    for rec in list(mgr._nets.values()):
        for le in rec.leases:
            mgr.detach(le.cid)
        mgr.remove(rec.name)
    mgr.shutdown()
    for kind, name in extra:
        if kind == "netns":
            netns.remove(name)
        elif kind == "link":
            with Netlink() as nl:
                nl.delete(name)
    left_links = _our_links(mgr.prefix)
    left_ns = os.listdir(mgr.netns_dir) if os.path.isdir(mgr.netns_dir) else []
    left_table = _table_exists(mgr.table)
    for n in left_links:  # still clean up, then fail
        with Netlink() as nl:
            nl.delete(n)
    for e in left_ns:
        netns.remove(os.path.join(mgr.netns_dir, e))
    if left_table:
        run(["nft", "delete", "table", "ip", mgr.table], check=False)
    assert not left_links and not left_ns and not left_table


def _serve(nspath, port, tag):
    """A TCP server whose socket lives in nspath; it answers '<tag> <peer ip>'."""
    with netns.inside(nspath):
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(8)

    def loop():
        while True:
            try:
                c, addr = srv.accept()
            except OSError:
                return
            with c:
                c.sendall(f"{tag} {addr[0]}".encode())

    threading.Thread(target=loop, daemon=True).start()
    return srv


def _fetch(ip, port, nspath=None, timeout=5.0):
    if nspath:
        with netns.inside(nspath):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with s:
        s.settimeout(timeout)
        s.connect((ip, port))
        return s.recv(200).decode()


def _unreachable(ip, port, nspath):
    try:
        _fetch(ip, port, nspath, timeout=1.0)
    except OSError:
        return True
    return False


def _nsrun(nspath, *argv):
    return run(["nsenter", f"--net={nspath}", *argv], check=False)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _other_host(env, idx):
    """A test netns playing 'another machine', linked to the host by a veth pair in a /30."""
    path = str(env.tmp / "otherhost")
    netns.create(path)
    env.extra.append(("netns", path))
    host_end = f"{env.mgr.prefix}x{idx}"
    host_ip, peer_ip = f"10.253.{N}.1", f"10.253.{N}.2"
    with Netlink() as nl:
        fd = os.open(path, os.O_RDONLY)
        try:
            nl.add_veth(host_end, 0, "eth0", fd)
        finally:
            os.close(fd)
        env.extra.append(("link", host_end))
        nl.add_addr(nl.index(host_end), host_ip, 30)
    with netns.inside(path):
        inner = Netlink()
    with inner:
        e = inner.index("eth0")
        inner.set_up(1)
        inner.add_addr(e, peer_ip, 30)
        inner.set_up(e)
        inner.add_default_route(host_ip, e)
    return path, host_ip


def test_bridge_ping_publish_isolation_and_rm(env):
    mgr = env.mgr
    info = mgr.create("n1", f"10.{N}.1.0/24")
    br, gw = info["bridge"], info["gateway"]
    assert gw == f"10.{N}.1.1" and len(br) <= 15
    addr = run(["ip", "-4", "-br", "addr", "show", "dev", br]).stdout
    assert f"{gw}/24" in addr
    assert ",UP" in run(["ip", "-br", "link", "show", "dev", br]).stdout
    assert _table_exists(mgr.table)

    hp = _free_port()
    a1 = mgr.attach("c1aaaaaaaaaaaaaa", "web", "n1", [f"{hp}:8080"])
    a2 = mgr.attach("c2bbbbbbbbbbbbbb", "cli", "n1", [])
    assert (a1.ip, a2.ip) == (f"10.{N}.1.2", f"10.{N}.1.3")
    assert a1.gateway == gw and a1.prefixlen == 24 and a1.ports[0].host_port == hp
    assert netns.is_netns(a1.netns_path) and os.path.dirname(a1.netns_path) == mgr.netns_dir
    inner = _nsrun(a1.netns_path, "ip", "-br", "addr").stdout
    assert f"{a1.ip}/24" in inner and "eth0" in inner
    assert f"default via {gw}" in _nsrun(a1.netns_path, "ip", "route").stdout
    assert a1.mac in _nsrun(a1.netns_path, "ip", "link", "show", "eth0").stdout

    # container <-> container over the bridge
    assert _nsrun(a2.netns_path, "busybox", "ping", "-c", "1", "-W", "3", a1.ip).returncode == 0
    rules = run(["nft", "list", "table", "ip", mgr.table]).stdout
    assert f"dport {hp} dnat to {a1.ip}:8080" in rules

    srv = _serve(a1.netns_path, 8080, "c1")
    try:
        # from the host itself: 127.0.0.1 (masqueraded to the gateway) and a host address
        assert _fetch("127.0.0.1", hp) == f"c1 {gw}"
        assert _fetch(gw, hp).startswith("c1 ")
        # from "another machine" (test netns behind a test veth): its own address is kept
        other, host_ip = _other_host(env, 1)
        assert _fetch(host_ip, hp) .startswith("c1 ")  # the host's address on that link, from the host
        assert _fetch(host_ip, hp, nspath=other) == f"c1 10.253.{N}.2"
        # from another container: directly, and hairpin through a host address
        assert _fetch(a1.ip, 8080, nspath=a2.netns_path) == f"c1 {a2.ip}"
        assert _fetch(gw, hp, nspath=a2.netns_path) == f"c1 {gw}"
        assert _fetch(host_ip, hp, nspath=a1.netns_path) == f"c1 {gw}"  # to itself

        # a second network is isolated, but published ports stay reachable from it
        mgr.create("n2", f"10.{N}.2.0/24")
        a3 = mgr.attach("c3cccccccccccccc", "other", "n2", [])
        assert _unreachable(a1.ip, 8080, a3.netns_path)
        assert _fetch(f"10.{N}.2.1", hp, nspath=a3.netns_path).startswith("c1 ")
    finally:
        srv.close()

    with pytest.raises(InUse):
        mgr.remove("n1")
    assert mgr.get("n1").leases
    for cid in ("c1aaaaaaaaaaaaaa", "c2bbbbbbbbbbbbbb", "c3cccccccccccccc"):
        mgr.detach(cid)
    mgr.detach("c1aaaaaaaaaaaaaa")  # idempotent
    assert not os.path.exists(a1.netns_path)
    mgr.remove("n1")
    assert run(["ip", "link", "show", br], check=False).returncode != 0
    assert _table_exists(mgr.table)  # n2 still there
    mgr.remove("n2")
    assert not _table_exists(mgr.table)
    assert env.d.store.load_all(KIND)[0] == {}
    with pytest.raises(NetworkNotFound):
        mgr.remove("n1")


def test_bad_input_changes_nothing(env):
    mgr = env.mgr
    mgr.create("n1", f"10.{N}.3.0/24")
    with pytest.raises(InUse):
        mgr.create("n1")
    with pytest.raises(InUse):
        mgr.create("n1b", f"10.{N}.3.128/25")  # overlaps n1
    with pytest.raises(InvalidArgument):
        mgr.create("bad name!")
    with pytest.raises(InvalidArgument):
        mgr.create("host")
    hp = _free_port()
    mgr.attach("c1aaaaaaaaaaaaaa", "one", "n1", [f"{hp}:80"])
    before = (mgr.get("n1"), run(["nft", "list", "table", "ip", mgr.table]).stdout, _our_links(mgr.prefix))
    with pytest.raises(InUse):
        mgr.attach("c2bbbbbbbbbbbbbb", "two", "n1", [f"127.0.0.1:{hp}:81"])
    with pytest.raises(InvalidArgument):
        mgr.attach("c2bbbbbbbbbbbbbb", "two", "n1", ["99999:80"])
    with pytest.raises(NetworkNotFound):
        mgr.attach("c2bbbbbbbbbbbbbb", "two", "nope", [])
    with pytest.raises(InvalidArgument):
        mgr.attach("c2bbbbbbbbbbbbbb", "two", "host", [])
    after = (mgr.get("n1"), run(["nft", "list", "table", "ip", mgr.table]).stdout, _our_links(mgr.prefix))
    assert before == after
    assert not os.path.exists(mgr.netns_path("c2bbbbbbbbbbbbbb"))
    # `-p CTR` gets a free host port
    a = mgr.attach("c3cccccccccccccc", "three", "n1", ["90/udp"])
    assert a.ports[0].host_port >= 49152 and a.ports[0].proto == "udp"


def test_default_network_on_first_use_and_leases_persist(env):
    mgr = env.mgr
    a = mgr.attach("c1aaaaaaaaaaaaaa", "web", netplan.DEFAULT_NETWORK, [])
    rec = mgr.get(netplan.DEFAULT_NETWORK)
    assert rec.bridge == netplan.bridge_name(netplan.DEFAULT_NETWORK, mgr.tag)
    assert a.ip == str(ipaddress.IPv4Network(rec.subnet).network_address + 2)
    # a new manager on the same root sees the lease (records are the source of truth)
    mgr2 = NetworkManager(env.d)
    assert mgr2.get(netplan.DEFAULT_NETWORK).lease("c1aaaaaaaaaaaaaa").ip == a.ip
    mgr2.shutdown()


def test_recover_removes_leftovers(env):
    mgr = env.mgr
    mgr.create("n1", f"10.{N}.4.0/24")
    hp1, hp2 = _free_port(), _free_port()
    a1 = mgr.attach("c1aaaaaaaaaaaaaa", "keep", "n1", [f"{hp1}:80"])
    a2 = mgr.attach("c2bbbbbbbbbbbbbb", "gone", "n1", [f"{hp2}:80"])
    # crash: the manager object vanishes; a stray veth and netns file of ours are lying around
    mgr.shutdown()
    stray_ns = os.path.join(mgr.netns_dir, "deadbeefdeadbeef")
    netns.create(stray_ns)
    with Netlink() as nl:
        nl.delete(mgr.get("n1").bridge)  # and the bridge is gone too (as after a reboot)
        fd = os.open(stray_ns, os.O_RDONLY)
        try:
            nl.add_veth(netplan.veth_name("deadbeefdeadbeef", mgr.tag), 0, "eth0", fd)
        finally:
            os.close(fd)

    mgr2 = NetworkManager(env.d)
    env.mgr = mgr2
    mgr2.recover({"c1aaaaaaaaaaaaaa"})
    rec = mgr2.get("n1")
    assert [le.cid for le in rec.leases] == ["c1aaaaaaaaaaaaaa"]
    assert os.listdir(mgr2.netns_dir) == ["c1aaaaaaaaaaaaaa"]
    assert not os.path.exists(a2.netns_path)
    names = _our_links(mgr2.prefix)
    assert rec.bridge in names and netplan.veth_name("c2bbbbbbbbbbbbbb", mgr2.tag) not in names
    assert netplan.veth_name("deadbeefdeadbeef", mgr2.tag) not in names
    rules = run(["nft", "list", "table", "ip", mgr2.table]).stdout
    assert f"dport {hp1} dnat" in rules and f"dport {hp2} dnat" not in rules
    # the bridge was rebuilt with its gateway and the live container's veth plugged back in
    assert f"10.{N}.4.1/24" in run(["ip", "-4", "-br", "addr", "show", "dev", rec.bridge]).stdout
    assert _nsrun(a1.netns_path, "busybox", "ping", "-c", "1", "-W", "3", f"10.{N}.4.1").returncode == 0
    # the lease of the live container survives; a new container gets the freed address
    a3 = mgr2.attach("c3cccccccccccccc", "new", "n1", [])
    assert a3.ip == a2.ip and a1.ip != a3.ip
    # teardown runs through env.mgr
    for cid in ("c1aaaaaaaaaaaaaa", "c3cccccccccccccc"):
        mgr2.detach(cid)


def test_commands_and_dns_names(env):
    import json
    import struct

    from tcr.commands import networks as cmds
    from tcr.commands.base import Ctx
    from tcr.daemon.loop import EventLoop

    loop = EventLoop()
    env.d.loop = loop
    mgr = env.mgr = env.d.networks = NetworkManager(env.d)

    def cmd(*args):
        return cmds.cmd_network(Ctx(daemon=env.d, method="network", args=list(args)))

    try:
        assert cmd("create", "--subnet", f"10.{N}.5.0/24", "web").stdout == "web\n"
        with pytest.raises(InvalidArgument):
            cmd("create", "--subnet", "10.1.2.3/24", "web2")
        items = json.loads(cmd("ls", "--format", "json").stdout)
        assert [(i["name"], i["subnet"], i["containers"]) for i in items] == [("web", f"10.{N}.5.0/24", 0)]
        assert "web" in cmd("ls").stdout and cmd("ls", "-q").stdout == "web\n"
        a = mgr.attach("c1aaaaaaaaaaaaaa", "db", "web", [])
        assert mgr.resolv_conf("c1aaaaaaaaaaaaaa").startswith(f"nameserver {a.gateway}\n")
        hosts = [(ip, n.split()) for ip, n in mgr.hosts_entries("c1aaaaaaaaaaaaaa")]
        assert (a.ip, ["db", "c1aaaaaaaaaa"]) in hosts
        # the container's name resolves through the forwarder on its gateway
        q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + b"\x02db\x00" + struct.pack(">HH", 1, 1)
        with netns.inside(a.netns_path):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with s:
            s.setblocking(False)
            s.sendto(q, (a.gateway, 53))
            reply = b""
            for _ in range(20):
                loop.run_once(0.2)
                try:
                    reply = s.recv(512)
                    break
                except BlockingIOError:
                    continue
        assert reply[:2] == b"\x42\x42" and reply.endswith(socket.inet_aton(a.ip))
        info = json.loads(cmd("inspect", "web").stdout)[0]
        assert info["containers"][0]["ip"] == a.ip and info["dns"] is True
        with pytest.raises(InUse):
            cmd("rm", "web")
        mgr.detach("c1aaaaaaaaaaaaaa")
        assert cmd("rm", "web").stdout == "web\n"
        with pytest.raises(NetworkNotFound):
            cmd("inspect", "web")
    finally:
        mgr.shutdown()
        loop.close()
