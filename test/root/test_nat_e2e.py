"""Issue 5 "must show": real containers (tcrd + crun + busybox image) on NAT networks.

Covers, end to end through the `tcr` CLI:
- container names over the DNS forwarder on the gateway (`<name>`, `tcr-<name>`, `<id>`) and HTTP
  between two containers on the default network;
- forwarding of other names to an upstream: tcrd runs with `--resolv-conf` pointing at a stub
  resolver the test runs on a unique loopback address;
- a published port reached from the host (127.0.0.1, the gateway), from a network namespace the
  test makes ("another machine", a private /30 on a veth pair) and from another container via that
  host address; a conflicting host port is refused and creates nothing;
- `tcr network create/ls/inspect/rm`: isolation from the default network, `rm` refused while in
  use, then bridge, leases and (with no network left) the nft table gone.
Traffic goes only to loopback, to tcr's own bridges/containers and to the test's own netns.
After each test nothing of that daemon's networking is left (the tcrd fixture checks links and
nft tables; here also its netns dir) and the test's own netns and veth are deleted.
"""

import json
import os
import socket
import struct
import subprocess
import threading
import urllib.request
from typing import List, Optional

import pytest

from test.fixtures.images import c_tool_sqfs
from test.fixtures.process import wait_for

pytestmark = pytest.mark.root

IMG = "busybox"
PID = os.getpid()
HELLO = "hello from tcr"
# A unique loopback address for the stub upstream resolver (root may bind any 127/8 address).
STUB_IP = f"127.77.{(PID >> 8) & 0xFF}.{max(PID & 0xFF, 1)}"
STUB_NAME = "upstream-only.test"
STUB_ANSWER = "198.51.100.77"  # only ever a DNS answer: no packet is sent to it
# "Another machine": a /30 between the host and a netns the test creates, never routed anywhere.
_K = PID % 64
HOST_END = f"192.168.251.{4 * _K + 1}"
PEER_END = f"192.168.251.{4 * _K + 2}"


def cli(d, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    r = d.cli(*args)
    if ok:
        assert r.returncode == 0, (f"tcr {' '.join(args)}: rc={r.returncode}\n{r.stdout}\n{r.stderr}\n"
                                   f"--- tcrd log ---\n{d.log()}")
    return r


def net_inspect(d, name: str) -> dict:
    out = json.loads(cli(d, "network", "inspect", name).stdout)
    return out[0] if isinstance(out, list) else out


def default_net(d) -> dict:
    from tcr.network import netplan

    return net_inspect(d, netplan.DEFAULT_NETWORK)


def ip_of(d, name: str, network: Optional[str] = None) -> str:
    info = net_inspect(d, network) if network else default_net(d)
    ips = [c["ip"] for c in info["containers"] if c.get("name") == name]
    assert len(ips) == 1, info
    return ips[0]


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def wget_in(d, ctr: str, url: str, ok: bool = True) -> subprocess.CompletedProcess:
    # busybox 1.35's `wget -T` segfaults; the timeout applet bounds a connection that gets no answer.
    return cli(d, "exec", ctr, "busybox", "timeout", "3", "wget", "-qO-", url, ok=ok)


def nslookup_ips(d, ctr: str, name: str) -> List[str]:
    """The addresses busybox nslookup reports for name (after the 'Name:' line)."""
    r = cli(d, "exec", ctr, "nslookup", name, ok=False)
    assert r.returncode == 0, (f"nslookup {name} in {ctr}: {r.stdout}{r.stderr}\n--- host routes ---\n"
                               + sh("ip", "-o", "-4", "addr").stdout + sh("ip", "route").stdout
                               + f"--- tcrd log ---\n{d.log()}")
    out = r.stdout
    lines = out.splitlines()
    names = [i for i, ln in enumerate(lines) if ln.startswith("Name:")]
    assert names, f"nslookup {name}:\n{out}"
    return [ln.split()[-1] for ln in lines[names[0]:] if ln.startswith("Address")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(list(argv), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
    if check:
        assert r.returncode == 0, f"{' '.join(argv)}: {r.stderr}"
    return r


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def d(tcrd, tmp_path):
    """tcrd (restarted with --resolv-conf naming only the stub) with the busybox image loaded."""
    resolv = os.path.join(tcrd.base, "resolv.conf")
    with open(resolv, "w") as f:
        f.write(f"# test stub\nnameserver {STUB_IP}\n")
    tcrd.extra_args += ["--resolv-conf", resolv]
    tcrd.restart()
    cli(tcrd, "image", "load", c_tool_sqfs(str(tmp_path)))
    yield tcrd
    tcrd.clean_networked()


class StubResolver:
    """A tiny UDP DNS server on STUB_IP:53: A STUB_NAME -> STUB_ANSWER, NXDOMAIN for the rest."""

    def __init__(self, ip: str):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 53))
        self.sock.settimeout(0.2)
        self.queries: List[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _qname(data: bytes) -> tuple:
        i, labels = 12, []
        while data[i]:
            n = data[i]
            labels.append(data[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += 1 + n
        qtype = struct.unpack("!H", data[i + 1:i + 3])[0]
        return ".".join(labels).lower(), qtype, i + 5

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                name, qtype, end = self._qname(data)
            except (IndexError, struct.error):
                continue
            self.queries.append(name)
            question = data[12:end]
            txid = data[:2]
            if name == STUB_NAME and qtype == 1:
                answer = (b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(STUB_ANSWER))
                reply = txid + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + question + answer
            elif name == STUB_NAME:
                reply = txid + struct.pack("!HHHHH", 0x8180, 1, 0, 0, 0) + question
            else:
                reply = txid + struct.pack("!HHHHH", 0x8183, 1, 0, 0, 0) + question
            try:
                self.sock.sendto(reply, addr)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def stub():
    s = StubResolver(STUB_IP)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def peer_ns():
    """A netns joined to the host by a veth pair on a private /30: "another machine"."""
    ns = f"tcrt{PID}"
    host_if, peer_if = f"tcrt{PID}h"[:15], f"tcrt{PID}p"[:15]
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if, "netns", ns)
        sh("ip", "addr", "add", f"{HOST_END}/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "-n", ns, "addr", "add", f"{PEER_END}/30", "dev", peer_if)
        sh("ip", "-n", ns, "link", "set", peer_if, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        # Only the host end is reachable from there: no default route out of the /30.
        yield ns
    finally:
        sh("ip", "link", "del", host_if, check=False)
        sh("ip", "netns", "del", ns, check=False)
        assert host_if not in sh("ip", "-o", "link", "show").stdout
        assert ns not in sh("ip", "netns", "list").stdout.split()


def run_web(d, name: str = "web", *extra: str) -> str:
    cid = cli(d, "run", "-d", "--name", name, *extra, IMG, "httpd", "-f", "-p", "80", "-h",
              "/var/www").stdout.strip()
    return cid


def run_client(d, name: str = "client", *extra: str) -> str:
    return cli(d, "run", "-d", "--name", name, *extra, IMG, "sleep", "3600").stdout.strip()


def wait_http(d, ctr: str, url: str) -> str:
    out: List[str] = []

    def ok() -> bool:
        r = wget_in(d, ctr, url, ok=False)
        out[:] = [r.stdout + r.stderr]
        return r.returncode == 0 and HELLO in r.stdout

    wait_for(ok, what=lambda: f"{url} from {ctr}: {out}")
    return out[0]


# ---- tests -----------------------------------------------------------------------------------


def test_names_and_http_between_containers(d, stub):
    web = run_web(d)
    run_client(d)
    web_ip = ip_of(d, "web")
    client_ip = ip_of(d, "client")
    assert web_ip != client_ip
    gw = default_net(d)["gateway"]
    resolv = cli(d, "exec", "client", "cat", "/etc/resolv.conf").stdout
    assert f"nameserver {gw}" in resolv
    for name in ("web", "tcr-web", web, "WEB"):
        assert nslookup_ips(d, "client", name) == [web_ip], name
    assert nslookup_ips(d, "web", "client") == [client_ip]
    # HTTP by name, through the real resolver path (busybox wget uses resolv.conf).
    assert HELLO in wait_http(d, "client", "http://web/")
    assert HELLO in wget_in(d, "client", "http://tcr-web:80/").stdout
    # A one-shot container on the same network sees web too.
    r = cli(d, "run", "--rm", IMG, "wget", "-qO-", "http://web/")
    assert HELLO in r.stdout
    # Unknown local-looking names are forwarded upstream, whose NXDOMAIN comes back.
    r = cli(d, "exec", "client", "nslookup", "no-such-ctr", ok=False)
    assert "NXDOMAIN" in r.stdout + r.stderr, r.stdout
    assert "no-such-ctr" in stub.queries


def test_forwarding_to_upstream(d, stub):
    run_client(d)
    assert nslookup_ips(d, "client", STUB_NAME) == [STUB_ANSWER]
    assert STUB_NAME in stub.queries  # it really came through the stub, not from anywhere else
    # Our own container names are answered locally: never forwarded.
    run_web(d)
    stub.queries.clear()
    assert nslookup_ips(d, "client", "web") == [ip_of(d, "web")]
    assert "web" not in stub.queries


def test_published_port(d, peer_ns):
    port = free_port()
    run_web(d, "web", "-p", f"{port}:80")
    run_client(d)
    gw = default_net(d)["gateway"]
    # from the host: loopback, the gateway, the host's address on the test's /30
    wait_for(lambda: _get_quiet(f"http://127.0.0.1:{port}/"), what="httpd via 127.0.0.1")
    for host in ("127.0.0.1", gw, HOST_END):
        assert HELLO in http_get(f"http://{host}:{port}/"), host
    # from "another machine": the test's netns reaches the host end of its /30
    r = sh("ip", "netns", "exec", peer_ns, "busybox", "timeout", "5", "busybox", "wget", "-qO-",
           f"http://{HOST_END}:{port}/", check=False)
    assert r.returncode == 0 and HELLO in r.stdout, r.stderr
    # from another container, through the host's address and through the gateway (hairpin-free)
    assert HELLO in wget_in(d, "client", f"http://{HOST_END}:{port}/").stdout
    assert HELLO in wget_in(d, "client", f"http://{gw}:{port}/").stdout
    # and from web itself through the host address (hairpin)
    assert HELLO in wget_in(d, "web", f"http://{HOST_END}:{port}/").stdout

    # A second container wanting the same host port: a clear error and nothing created.
    before_ps = cli(d, "ps", "-aq", "--no-trunc").stdout.split()
    before_net = default_net(d)["containers"]
    r = cli(d, "run", "-d", "--name", "web2", "-p", f"{port}:80", IMG, "httpd", "-f", ok=False)
    assert r.returncode != 0
    err = r.stderr.strip()
    assert str(port) in err and "already" in err, err
    assert len(err.splitlines()) <= 2, err
    assert cli(d, "ps", "-aq", "--no-trunc").stdout.split() == before_ps
    assert default_net(d)["containers"] == before_net
    assert "web2" not in cli(d, "ps", "-a").stdout
    # the first one still serves
    assert HELLO in http_get(f"http://127.0.0.1:{port}/")

    # rm frees the port: nothing answers there any more, and another container can take it
    cli(d, "rm", "-f", "web")
    assert not _get_quiet(f"http://127.0.0.1:{port}/", timeout=1)
    run_web(d, "web3", "-p", f"127.0.0.1:{port}:80")
    wait_for(lambda: _get_quiet(f"http://127.0.0.1:{port}/"), what="httpd of web3 via 127.0.0.1")


def _get_quiet(url: str, timeout: float = 2) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return HELLO in r.read().decode()
    except OSError:
        return False


def test_user_network_isolation_and_rm(d, stub):
    from tcr.network import netplan

    name = f"e2e{PID}"
    subnet = f"10.{200 + PID % 50}.{(PID >> 6) % 250}.0/24"
    run_web(d)  # on the default network
    web_ip = ip_of(d, "web")
    cli(d, "network", "create", "--subnet", subnet, name)
    info = net_inspect(d, name)
    assert info["subnet"] == subnet and info["containers"] == []
    bridge = info["bridge"]
    assert sh("ip", "link", "show", bridge, check=False).returncode == 0
    ls = cli(d, "network", "ls").stdout
    assert name in ls and subnet in ls
    assert set(cli(d, "network", "ls", "-q").stdout.split()) == {name, netplan.DEFAULT_NETWORK}

    run_web(d, "inweb", "--network", name)
    run_client(d, "inclient", "--network", name)
    in_ip = ip_of(d, "inweb", name)
    assert in_ip in _subnet_hosts(subnet)
    # positive control: the user network works (names and HTTP inside it)
    assert nslookup_ips(d, "inclient", "inweb") == [in_ip]
    assert HELLO in wait_http(d, "inclient", "http://inweb/")
    # isolation: the default network's container is not reachable by IP, and not known by name
    r = cli(d, "exec", "inclient", "busybox", "timeout", "2", "wget", "-qO-", f"http://{web_ip}/", ok=False)
    assert r.returncode != 0 and HELLO not in r.stdout
    r = cli(d, "exec", "inclient", "nslookup", "web", ok=False)
    assert "NXDOMAIN" in r.stdout + r.stderr and web_ip not in r.stdout

    # rm refused while in use; nothing changes
    r = cli(d, "network", "rm", name, ok=False)
    assert r.returncode == 1 and "has active endpoints" in r.stderr and "inweb" in r.stderr, r.stderr
    assert len(net_inspect(d, name)["containers"]) == 2

    cli(d, "rm", "-f", "inweb", "inclient")
    assert net_inspect(d, name)["containers"] == []  # leases released
    cli(d, "network", "rm", name)
    assert sh("ip", "link", "show", bridge, check=False).returncode != 0  # bridge gone
    r = cli(d, "network", "inspect", name, ok=False)
    assert r.returncode != 0 and "not found" in r.stderr
    assert cli(d, "network", "ls", "-q").stdout.split() == [netplan.DEFAULT_NETWORK]
    table = netplan.nft_table(netplan.instance_tag(d.root))
    assert table in sh("nft", "list", "tables").stdout.split()  # the default network still uses it

    # the default network: refused while web is on it, then the table goes with the last network
    r = cli(d, "network", "rm", netplan.DEFAULT_NETWORK, ok=False)
    assert r.returncode != 0 and "has active endpoints" in r.stderr
    cli(d, "rm", "-f", "web")
    assert default_net(d)["containers"] == []
    cli(d, "network", "rm", netplan.DEFAULT_NETWORK)
    assert cli(d, "network", "ls", "-q").stdout.split() == []
    assert table not in sh("nft", "list", "tables").stdout.split()
    wait_for(lambda: not d.net_leftovers(), what=lambda: f"links gone: {d.net_leftovers()}")
    assert os.listdir(os.path.join(d.run_dir, "netns")) == []


def _subnet_hosts(subnet: str) -> List[str]:
    import ipaddress

    return [str(h) for h in ipaddress.IPv4Network(subnet).hosts()]


def test_names_and_ports_survive_restarts(d, stub):
    """tcrd restart (graceful: `always` containers come back; crash: containers are re-adopted)
    and container stop/start keep DNS names and published ports right."""
    port = free_port()
    # PID 1 ignores SIGTERM (httpd, sleep): a short stop timeout keeps the graceful restart quick.
    run_web(d, "web", "--restart", "always", "--stop-timeout", "1", "-p", f"{port}:80")
    run_client(d, "client", "--restart", "always", "--stop-timeout", "1")
    wait_for(lambda: _get_quiet(f"http://127.0.0.1:{port}/"), what="httpd via 127.0.0.1")

    def check() -> str:
        web_ip = ip_of(d, "web")
        assert nslookup_ips(d, "client", "web") == [web_ip]
        assert nslookup_ips(d, "client", STUB_NAME) == [STUB_ANSWER]
        assert HELLO in wait_http(d, "client", "http://web/")
        wait_for(lambda: _get_quiet(f"http://127.0.0.1:{port}/"), what="published port")
        return web_ip

    d.restart()  # SIGTERM stops them; `always` brings them back on new leases
    wait_for(lambda: cli(d, "ps", "-q").stdout.split().__len__() == 2, what="both containers back")
    check()
    d.kill9()  # a crash: the containers live on and are re-adopted with their leases
    d.start()
    web_ip = check()
    assert [c for c in default_net(d)["containers"] if c.get("name") == "web"][0]["ip"] == web_ip

    # stop: the name and the published port go with the lease; start brings both back
    cli(d, "stop", "-t", "1", "web")
    assert [c for c in default_net(d)["containers"] if c.get("name") == "web"] == []
    r = cli(d, "exec", "client", "nslookup", "web", ok=False)
    assert web_ip not in r.stdout.split("Name:", 1)[-1]
    assert not _get_quiet(f"http://127.0.0.1:{port}/", timeout=1)
    cli(d, "start", "web")
    check()


def _mac(ifname: str) -> str:
    with open(f"/sys/class/net/{ifname}/address") as f:
        return f.read().strip()


def test_gateway_stays_reachable_when_a_neighbour_leaves(d, stub):
    """A Linux bridge without a MAC of its own takes its lowest port's MAC and changes it when that
    port goes; the neighbours' ARP entries for the gateway then point nowhere (DNS and NAT dead for
    up to a minute). Remove exactly the container whose veth has the lowest MAC and check."""
    from tcr.network import netplan

    tag = netplan.instance_tag(d.root)
    ids = {n: run_client(d, n) for n in ("a", "b")}
    for n in ids:  # both talk to the gateway, so both have an ARP entry for it
        assert nslookup_ips(d, n, n) == [ip_of(d, n)]
    bridge = default_net(d)["bridge"]
    before = _mac(bridge)
    veth_mac = {n: _mac(netplan.veth_name(cid, tag)) for n, cid in ids.items()}
    gone = min(veth_mac, key=lambda n: veth_mac[n])
    stay = "b" if gone == "a" else "a"
    cli(d, "rm", "-f", gone)
    wait_for(lambda: not os.path.exists(f"/sys/class/net/{netplan.veth_name(ids[gone], tag)}"),
             what="the removed container's veth to go")
    assert _mac(bridge) == before
    assert nslookup_ips(d, stay, stay) == [ip_of(d, stay)]
    assert nslookup_ips(d, stay, STUB_NAME) == [STUB_ANSWER]
