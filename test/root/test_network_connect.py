"""`tcr network connect` / `network disconnect` with real containers (tcrd + crun + busybox).

A running container gains an interface (eth1...) with an address of the network, its NAT rules
and its DNS names (+ --alias) there; the other containers on that network resolve and reach it;
after disconnect the interface, the address and the names are gone. A stopped container is
connected in its record and plumbed at start. Everything holds across a container restart
(--restart always), a graceful tcrd restart and a tcrd crash. Errors are docker's, one line,
exit 1 (flags 125). A failed plumb or a tcrd killed inside a connect leaves nothing half-made.
Traffic goes only to tcr's own bridges and containers.
"""

import json
import os
import signal
import subprocess
from typing import List

import pytest

from test.fixtures.images import c_tool_sqfs
from test.fixtures.process import wait_for
from test.root import test_full_disk

pytestmark = pytest.mark.root
small_root = test_full_disk.small  # tcrd on a 20 MB tmpfs state root, busybox loaded


def cli(d, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    r = d.cli(*args)
    if ok:
        assert r.returncode == 0, (f"tcr {' '.join(args)}: rc={r.returncode}\n{r.stdout}\n{r.stderr}\n"
                                   f"--- tcrd log ---\n{d.log()}")
    return r


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(list(argv), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
    if check:
        assert r.returncode == 0, f"{' '.join(argv)}: {r.stderr}"
    return r


def inspect(d, name: str) -> dict:
    return json.loads(cli(d, "inspect", name).stdout)[0]


def net_inspect(d, name: str) -> dict:
    out = json.loads(cli(d, "network", "inspect", name).stdout)
    return out[0] if isinstance(out, list) else out


def ip_on(d, ctr: str, network: str) -> str:
    ips = [c["ip"] for c in net_inspect(d, network)["containers"] if c["name"] == ctr]
    assert len(ips) == 1, net_inspect(d, network)
    return ips[0]


def addrs(d, ctr: str) -> List[str]:
    """'ifname ip/plen' of every IPv4 address inside the container (busybox ip)."""
    out = cli(d, "exec", ctr, "ip", "-o", "-4", "addr", "show").stdout
    return sorted(f"{ln.split()[1]} {ln.split()[3]}" for ln in out.splitlines() if " inet " in ln)


def ns_addrs(d, ctr: str) -> List[str]:
    """addrs() as the host sees the container's namespace (for images without `ip`)."""
    netns = os.path.join(d.run_dir, "netns", inspect(d, ctr)["Id"])
    out = sh("nsenter", f"--net={netns}", "ip", "-o", "-4", "addr", "show").stdout
    return sorted(f"{ln.split()[1]} {ln.split()[3]}" for ln in out.splitlines() if " inet " in ln)


def default_route(d, ctr: str) -> str:
    out = cli(d, "exec", ctr, "ip", "route").stdout  # busybox ip ignores a "default" filter
    return "\n".join(ln.strip() for ln in out.splitlines() if ln.startswith("default"))


def resolves(d, ctr: str, name: str) -> List[str]:
    r = cli(d, "exec", ctr, "nslookup", name, ok=False)
    lines = r.stdout.splitlines()
    at = [i for i, ln in enumerate(lines) if ln.startswith("Name:")]
    return [ln.split()[-1] for ln in lines[at[0]:] if ln.startswith("Address")] if at else []


def veths(d) -> List[str]:
    from tcr.network import netplan

    prefix = netplan.if_prefix(netplan.instance_tag(d.root)) + "v"
    out = sh("ip", "-o", "link", "show").stdout
    names = [ln.split(":", 2)[1].strip().split("@")[0] for ln in out.splitlines() if ln.count(":") >= 2]
    return sorted(n for n in names if n.startswith(prefix))


def nft_text(d) -> str:
    from tcr.network import netplan

    return sh("nft", "list", "table", "ip", netplan.nft_table(netplan.instance_tag(d.root))).stdout


def ps_names(d, *filters: str) -> List[str]:
    return sorted(cli(d, "ps", "-a", "--format", "{{.Names}}", *filters).stdout.split())


@pytest.fixture
def d(tcrd, tmp_path):
    cli(tcrd, "image", "load", c_tool_sqfs(str(tmp_path)))
    yield tcrd
    tcrd.clean_networked()


def run_d(d, name: str, *args: str) -> None:
    cli(d, "run", "-d", "--name", name, *args, "busybox", "sleep", "1000")


def test_connect_and_disconnect_a_running_container(d):
    cli(d, "network", "create", "ncA")
    run_d(d, "c1")
    run_d(d, "peer", "--network", "ncA")
    before = addrs(d, "c1")
    route = default_route(d, "c1")
    assert [a.split()[0] for a in before] == ["eth0", "lo"] and "eth0" in route

    cli(d, "network", "connect", "--alias", "c1alias", "ncA", "c1")
    ip = ip_on(d, "c1", "ncA")
    subnet = net_inspect(d, "ncA")["subnet"]
    plen = subnet.split("/")[1]
    assert addrs(d, "c1") == sorted(before + [f"eth1 {ip}/{plen}"])
    assert default_route(d, "c1") == route  # the primary network keeps the default route
    # the network's DNS forwarder answers for it; the peer resolves and reaches it
    assert resolves(d, "peer", "c1") == [ip] and resolves(d, "peer", "c1alias") == [ip]
    # and it resolves the names of its new network (through its primary network's forwarder)
    assert resolves(d, "c1", "peer") == [ip_on(d, "peer", "ncA")]
    assert resolves(d, "peer", "c1") == [ip]
    cli(d, "exec", "peer", "ping", "-c", "1", "-W", "3", ip)
    cli(d, "exec", "c1", "ping", "-c", "1", "-W", "3", ip_on(d, "peer", "ncA"))
    assert subnet in nft_text(d)
    # ps, inspect and network inspect show both attachments
    assert ps_names(d, "--filter", "network=ncA") == ["c1", "peer"]
    assert ps_names(d, "--filter", "network=tcr_default") == ["c1"]
    shown = cli(d, "ps", "--filter", "name=c1", "--format", "{{.Networks}}").stdout.strip()
    assert shown == "tcr_default,ncA"
    nets = inspect(d, "c1")["NetworkSettings"]["Networks"]
    assert sorted(nets) == sorted(["tcr_default", "ncA"])
    assert nets["ncA"]["IPAddress"] == ip and nets["ncA"]["Aliases"] == ["c1alias"]
    assert nets["ncA"]["InterfaceName"] == "eth1" and nets["tcr_default"]["IPAddress"]
    cid = inspect(d, "c1")["Id"]
    ep = net_inspect(d, "ncA")["Containers"][cid]
    assert ep["IPv4Address"] == f"{ip}/{plen}" and ep["EndpointID"] == nets["ncA"]["EndpointID"]
    assert nets["ncA"]["DNSNames"] == ["c1", cid[:12], "c1alias"]
    assert len(veths(d)) == 3

    # refusals: one line, exit 1, nothing changes
    for args, words in [
        (("ncA", "c1"), "endpoint with name c1 already exists in network ncA"),
        (("nosuchnet", "c1"), "not found"),
        (("ncA", "nosuchctr"), "no such container: nosuchctr"),
        (("host", "c1"), "container cannot be disconnected from host network or connected to host network"),
        (("--ip", "10.0.0.300", "tcr_default", "peer"), "invalid IPv4 address"),
    ]:
        r = cli(d, "network", "connect", *args, ok=False)
        assert r.returncode == 1 and words in r.stderr and len(r.stderr.strip().splitlines()) <= 2, r.stderr
    for args in (["--bogus", "ncA", "c1"], ["ncA"], ["--ip"]):
        assert cli(d, "network", "connect", *args, ok=False).returncode == 125
    assert cli(d, "network", "disconnect", "-x", "ncA", "c1", ok=False).returncode == 125
    r = cli(d, "network", "rm", "ncA", ok=False)
    assert r.returncode == 1 and "error while removing network: network ncA has active endpoints" in r.stderr
    assert len(veths(d)) == 3

    cli(d, "network", "disconnect", "ncA", "c1")
    assert addrs(d, "c1") == before and default_route(d, "c1") == route
    assert resolves(d, "peer", "c1") == [] and resolves(d, "peer", "c1alias") == []
    assert resolves(d, "c1", "peer") == []
    assert sorted(inspect(d, "c1")["NetworkSettings"]["Networks"]) == ["tcr_default"]
    assert ps_names(d, "--filter", "network=ncA") == ["peer"]
    assert cid not in net_inspect(d, "ncA")["Containers"]
    assert len(veths(d)) == 2  # its veth went with it, at once
    r = cli(d, "network", "disconnect", "ncA", "c1", ok=False)
    assert r.returncode == 1 and f"container {cid} is not connected to network ncA" in r.stderr
    cli(d, "network", "disconnect", "-f", "ncA", "c1")  # -f: not connected is no error


def test_stopped_container_is_plumbed_at_start_and_keeps_it_across_restarts(d):
    cli(d, "network", "create", "ncB")
    run_d(d, "peerB", "--network", "ncB", "--restart", "always")
    cli(d, "create", "--name", "c2", "--restart", "always", "busybox", "sleep", "1000")
    cli(d, "network", "connect", "--alias", "two", "ncB", "c2")
    assert sorted(inspect(d, "c2")["NetworkSettings"]["Networks"]) == sorted(["tcr_default", "ncB"])
    assert ps_names(d, "--filter", "network=ncB") == ["c2", "peerB"]
    r = cli(d, "network", "rm", "ncB", ok=False)  # a stopped container's network stays too
    assert r.returncode == 1 and "active endpoints" in r.stderr and "c2" in r.stderr
    cli(d, "start", "c2")

    def plumbed() -> None:
        ip = ip_on(d, "c2", "ncB")
        assert [a.split()[0] for a in addrs(d, "c2")] == ["eth0", "eth1", "lo"]
        assert f"eth1 {ip}/" in " ".join(addrs(d, "c2"))
        assert "eth0" in default_route(d, "c2")
        assert resolves(d, "peerB", "c2") == [ip] and resolves(d, "peerB", "two") == [ip]

    plumbed()
    # the container's process dies (a process tcr started for this test): --restart always
    pid = inspect(d, "c2")["State"]["Pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: inspect(d, "c2")["RestartCount"] >= 1 and inspect(d, "c2")["State"]["Running"],
             what="c2 restarted")
    plumbed()
    # a graceful tcrd restart (the policy brings it back) and a tcrd crash (re-adopted)
    d.restart()
    wait_for(lambda: all(inspect(d, c)["State"]["Running"] for c in ("c2", "peerB")),
             what="c2 and peerB back after the tcrd restart")
    plumbed()
    d.kill9()
    d.start()
    plumbed()
    assert sorted(inspect(d, "c2")["NetworkSettings"]["Networks"]) == sorted(["tcr_default", "ncB"])
    cli(d, "network", "disconnect", "ncB", "c2")
    assert [a.split()[0] for a in addrs(d, "c2")] == ["eth0", "lo"] and resolves(d, "peerB", "c2") == []
    cli(d, "restart", "c2")
    assert [a.split()[0] for a in addrs(d, "c2")] == ["eth0", "lo"]


def test_last_network_disconnected_then_connected_again(d):
    cli(d, "network", "create", "ncC")
    run_d(d, "c3", "-p", "127.0.0.1::80")
    cli(d, "network", "disconnect", "tcr_default", "c3")
    assert addrs(d, "c3") == ["lo 127.0.0.1/8"] and default_route(d, "c3") == ""
    assert inspect(d, "c3")["NetworkSettings"]["Networks"] == {}
    assert ps_names(d, "--filter", "network=tcr_default") == []
    assert cli(d, "port", "c3").stdout == ""
    # on no network, it still has its namespace: connect plugs a primary back in (eth0, default route)
    cli(d, "network", "connect", "ncC", "c3")
    ip = ip_on(d, "c3", "ncC")
    have = addrs(d, "c3")
    assert [a.split()[0] for a in have] == ["eth0", "lo"] and f"eth0 {ip}/" in " ".join(have)
    assert net_inspect(d, "ncC")["gateway"] in default_route(d, "c3")
    # and a restart keeps exactly that
    cli(d, "restart", "c3")
    assert ip_on(d, "c3", "ncC") and list(inspect(d, "c3")["NetworkSettings"]["Networks"]) == ["ncC"]
    cli(d, "network", "disconnect", "ncC", "c3")
    cli(d, "restart", "c3")
    assert addrs(d, "c3") == ["lo 127.0.0.1/8"]


def test_host_and_none_containers_refuse(d):
    cli(d, "network", "create", "ncD")
    run_d(d, "hostc", "--network", "host")
    run_d(d, "nonec", "--network", "none")
    r = cli(d, "network", "connect", "ncD", "hostc", ok=False)
    assert (r.returncode, r.stderr.strip().splitlines()[0]) == (
        1, "tcr: container cannot be disconnected from host network or connected to host network")
    r = cli(d, "network", "connect", "ncD", "nonec", ok=False)
    assert (r.returncode, r.stderr.strip().splitlines()[0]) == (
        1, "tcr: container cannot be connected to multiple networks with one of the networks in private "
           "(none) mode")
    r = cli(d, "network", "disconnect", "host", "hostc", ok=False)
    assert r.returncode == 1 and "host network" in r.stderr
    assert net_inspect(d, "ncD")["containers"] == []


def test_requested_address_and_a_failed_plumb_leave_nothing(d):
    cli(d, "network", "create", "ncE")
    run_d(d, "c5")
    run_d(d, "e1", "--network", "ncE")
    taken = ip_on(d, "e1", "ncE")
    gw = net_inspect(d, "ncE")["gateway"]
    want = gw.rsplit(".", 1)[0] + ".77"
    r = cli(d, "network", "connect", "--ip", taken, "ncE", "c5", ok=False)
    assert r.returncode == 1 and f"Address already in use: {taken}" in r.stderr
    r = cli(d, "network", "connect", "--ip", "192.0.2.9", "ncE", "c5", ok=False)
    assert r.returncode == 1 and "no configured subnet contains IP address 192.0.2.9" in r.stderr
    # the kernel refuses the plumb (an eth1 already in the container's namespace): nothing stays
    cid = inspect(d, "c5")["Id"]
    netns = os.path.join(d.run_dir, "netns", cid)
    sh("nsenter", f"--net={netns}", "ip", "link", "add", "eth1", "type", "veth", "peer", "name", "ncpeer")
    before = (veths(d), nft_text(d), net_inspect(d, "ncE")["containers"])
    r = cli(d, "network", "connect", "--ip", want, "ncE", "c5", ok=False)
    assert r.returncode != 0 and "ncE" in r.stderr and len(r.stderr.strip().splitlines()) <= 2, r.stderr
    assert (veths(d), nft_text(d), net_inspect(d, "ncE")["containers"]) == before
    assert sorted(inspect(d, "c5")["NetworkSettings"]["Networks"]) == ["tcr_default"]
    assert resolves(d, "e1", "c5") == []
    sh("nsenter", f"--net={netns}", "ip", "link", "del", "eth1")
    cli(d, "network", "connect", "--ip", want, "ncE", "c5")
    assert ip_on(d, "c5", "ncE") == want and f"eth1 {want}/" in " ".join(addrs(d, "c5"))
    assert inspect(d, "c5")["NetworkSettings"]["Networks"]["ncE"]["IPAMConfig"] == {"IPv4Address": want}
    cli(d, "restart", "c5")
    assert ip_on(d, "c5", "ncE") == want  # the asked-for address is kept


@pytest.mark.parametrize("point", ["network.attach.after_veth", "network.attach.after_lease"])
def test_tcrd_killed_inside_a_connect(d, point):
    """tcrd SIGKILLed inside `network connect` (after the veth; after the network record): after
    the restart the container is either connected (record, lease, interface) or not at all, and
    no veth, lease or nft rule is left without the others."""
    cli(d, "network", "create", "ncF")
    run_d(d, "c6")
    d.kill9()
    saved = {k: os.environ.get(k) for k in ("TCR_TEST_FAULTS", "TCR_FAULT_POINTS")}
    os.environ.update(TCR_TEST_FAULTS="1", TCR_FAULT_POINTS=point)
    try:
        d.start()  # c6 is re-adopted: no attach on this path
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    r = cli(d, "network", "connect", "ncF", "c6", ok=False)
    assert r.returncode != 0
    wait_for(lambda: not d.running(), what="tcrd killed at the fault point")
    d.start()
    leased = [c["name"] for c in net_inspect(d, "ncF")["containers"]]
    listed = sorted(inspect(d, "c6")["NetworkSettings"]["Networks"])
    ifs = [a.split()[0] for a in addrs(d, "c6")]
    if point == "network.attach.after_veth":  # rolled back: the orphan veth is gone
        assert (leased, listed, ifs) == ([], ["tcr_default"], ["eth0", "lo"])
        assert len(veths(d)) == 1
    else:  # rolled forward: the lease was durable, so the container's record follows it
        assert (leased, listed, ifs) == (["c6"], ["ncF", "tcr_default"], ["eth0", "eth1", "lo"])
        assert len(veths(d)) == 2
        assert net_inspect(d, "ncF")["subnet"] in nft_text(d)
    cli(d, "network", "disconnect", "-f", "ncF", "c6")
    cli(d, "network", "connect", "ncF", "c6")
    assert [a.split()[0] for a in addrs(d, "c6")] == ["eth0", "eth1", "lo"]


def test_connect_on_a_full_disk_leaves_nothing(small_root):
    """The state root is full when the network record is written, after the veth is in the
    container: the connect fails in one line and takes its veth, lease and rules back."""
    d = small_root
    cli(d, "network", "create", "ncfull")
    run_d(d, "c7")
    test_full_disk.fill(d, "rootfs")
    before = (veths(d), nft_text(d), net_inspect(d, "ncfull")["containers"], ns_addrs(d, "c7"))
    r = cli(d, "network", "connect", "ncfull", "c7", ok=False)
    assert r.returncode != 0 and "cannot connect container" in r.stderr, r.stderr
    assert "space" in r.stderr and len(r.stderr.strip().splitlines()) <= 2, r.stderr
    assert (veths(d), nft_text(d), net_inspect(d, "ncfull")["containers"], ns_addrs(d, "c7")) == before
    assert list(inspect(d, "c7")["NetworkSettings"]["Networks"]) == ["tcr_default"]
    cli(d, "rm", "-f", "filler")
    cli(d, "network", "connect", "ncfull", "c7")
    assert [a.split()[0] for a in ns_addrs(d, "c7")] == ["eth0", "eth1", "lo"]


def test_rename_follows_on_every_network_and_keeps_aliases(d):
    """rename: the new name answers on every network the container is on, and its aliases stay
    (a rename used to drop the lease's --network-alias names)."""
    cli(d, "network", "create", "ncG")
    run_d(d, "r1", "--network-alias", "ralias")
    run_d(d, "r0")
    cli(d, "rename", "r1", "r2")
    ip0 = ip_on(d, "r2", "tcr_default")
    assert resolves(d, "r0", "ralias") == [ip0] and resolves(d, "r0", "r2") == [ip0]
    run_d(d, "rpeer", "--network", "ncG")
    cli(d, "network", "connect", "--alias", "galias", "ncG", "r2")
    cli(d, "rename", "r2", "r3")
    ip_g = ip_on(d, "r3", "ncG")
    assert resolves(d, "rpeer", "r3") == [ip_g] and resolves(d, "rpeer", "galias") == [ip_g]
    assert resolves(d, "rpeer", "r2") == [] and resolves(d, "r0", "ralias") == [ip0]


def test_run_on_several_networks(d):
    """docker 25's `run --network A --network B` (what compose uses for a service on several
    networks): eth0 on A with the default route, eth1 on B, the alias on both."""
    cli(d, "network", "create", "ncH")
    cli(d, "network", "create", "ncI")
    run_d(d, "m1", "--network", "ncH", "--network", "ncI", "--network-alias", "malias")
    run_d(d, "hpeer", "--network", "ncH")
    run_d(d, "ipeer", "--network", "ncI")
    ip_h, ip_i = ip_on(d, "m1", "ncH"), ip_on(d, "m1", "ncI")
    have = addrs(d, "m1")
    assert f"eth0 {ip_h}/" in " ".join(have) and f"eth1 {ip_i}/" in " ".join(have)
    assert net_inspect(d, "ncH")["gateway"] in default_route(d, "m1")
    assert resolves(d, "hpeer", "malias") == [ip_h] and resolves(d, "ipeer", "malias") == [ip_i]
    assert resolves(d, "m1", "ipeer") == [ip_on(d, "ipeer", "ncI")]
    r = cli(d, "run", "--network", "none", "--network", "ncH", "busybox", "true", ok=False)
    assert r.returncode == 125 and "conflicting options" in r.stderr
