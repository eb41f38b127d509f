"""Security defaults, shown against the real daemon and real containers.

- RPC: the filesystem socket refuses other users (file mode, and SO_PEERCRED even if the mode is
  opened up by mistake); the abstract compat socket (no file mode at all) refuses them through
  SO_PEERCRED. The compat name is global per network namespace, so that daemon runs in a private
  one (unshare --net) and the test client joins it with setns().
- DNS: tcrd's port-53 sockets are bound to tcr gateway addresses only (never 0.0.0.0, never a
  host address), read from /proc/net/{udp,tcp}[6] and matched to tcrd's own socket inodes.
- A default container cannot mount, load kernel modules, change the host's network (not even with
  --network host), see host processes, or write /proc/sys.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import pytest

from test.fixtures.daemon import Tcrd
from test.fixtures.process import in_child as _in_child

pytestmark = pytest.mark.root

NOBODY = 65534


# ---- helpers -------------------------------------------------------------------------------


def _rpc_attempt(address: str):
    def attempt() -> str:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(10)
        try:
            s.connect(address)
        except OSError as exc:
            return f"refused: {exc.strerror}"
        req = b'{"id":9,"method":"image","params":{"args":["ls","-q"],"pwd":"/"}}'
        try:
            s.send(req)
        except OSError:
            pass
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            data = s.recv(65536)
        return data.decode() if data else "closed"

    return attempt


# ---- RPC sockets ---------------------------------------------------------------------------


def test_filesystem_socket_refuses_other_users(tcrd):
    st = os.stat(tcrd.socket)
    assert st.st_mode & 0o007 == 0, oct(st.st_mode)  # never world-accessible
    # Let others reach the socket file (the test dirs are private); then only the socket guards it.
    modes = {p: os.stat(p).st_mode & 0o7777 for p in (tcrd.base, tcrd.run_dir)}
    try:
        for p in modes:
            os.chmod(p, 0o711)
        out = _in_child(_rpc_attempt(tcrd.socket))
        assert out == "refused: Permission denied", out
        # Mode opened up by mistake: SO_PEERCRED still refuses, with a clear error reply.
        os.chmod(tcrd.socket, 0o666)
        out = _in_child(_rpc_attempt(tcrd.socket))
        reply = json.loads(out)
        assert reply["error"]["message"] == "permission denied", reply
        assert "result" not in reply
        # root is served (the check is on the user, not on the socket).
        reply = json.loads(_in_child(_rpc_attempt(tcrd.socket), uid=0))
        assert reply["id"] == 9 and reply["result"]["exitCode"] == 0, reply
    finally:
        if os.path.exists(tcrd.socket):
            os.chmod(tcrd.socket, 0o660)
        for p, m in modes.items():
            os.chmod(p, m)
    assert tcrd.running()


class _CompatTcrd(Tcrd):
    """tcrd with the abstract compat socket on, in a private network namespace."""

    def argv(self):
        argv = [a for a in super().argv() if a != "--no-compat-socket"]
        return ["unshare", "--net", "--"] + argv


@pytest.fixture
def compat_tcrd():
    base = tempfile.mkdtemp(prefix=f"tcrd-sec-{os.getpid()}-", dir="/tmp")
    d = _CompatTcrd(base)
    try:
        d.start()
        yield d
    finally:
        if d.running():
            d.stop()
        d.kill9()
        d.force_clean()
        shutil.rmtree(base, ignore_errors=True)


def test_abstract_compat_socket_refuses_other_users(compat_tcrd):
    from tcr.rpc.protocol import ABSTRACT_NAME

    d = compat_tcrd
    address = "\0" + ABSTRACT_NAME
    assert f"@{ABSTRACT_NAME}" in d.log(), "the daemon under test did not enable the compat socket"
    # root (same netns) is served ...
    reply = json.loads(_in_child(_rpc_attempt(address), uid=0, netns_of=d.pid))
    assert reply.get("id") == 9 and reply["result"]["exitCode"] == 0, reply
    # ... another user is refused by SO_PEERCRED with an error reply, and learns nothing.
    out = _in_child(_rpc_attempt(address), netns_of=d.pid)
    reply = json.loads(out)
    assert reply["error"]["message"] == "permission denied" and "result" not in reply, reply
    assert d.running()


# ---- DNS binding ---------------------------------------------------------------------------


def _socket_inodes(pid: int) -> set:
    out = set()
    d = f"/proc/{pid}/fd"
    for fd in os.listdir(d):
        try:
            t = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        if t.startswith("socket:["):
            out.add(int(t[8:-1]))
    return out


def _hex_addr(h: str) -> str:
    if len(h) == 8:
        return socket.inet_ntop(socket.AF_INET, bytes.fromhex(h)[::-1])
    raw = bytes.fromhex(h)
    return socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


def proc_net_sockets():
    """[(proto, local ip, local port, state hex, inode)] for this netns."""
    out = []
    for proto in ("udp", "udp6", "tcp", "tcp6"):
        with open(f"/proc/net/{proto}") as f:
            next(f)
            for line in f:
                parts = line.split()
                ip_hex, port_hex = parts[1].split(":")
                out.append((proto, _hex_addr(ip_hex), int(port_hex, 16), parts[3], int(parts[9])))
    return out


def test_dns_listens_only_on_gateway_addresses(tcrd):
    from test.root.test_crash_points import force_clean_network, kernel_leaks

    name = f"sec{os.getpid() % 100000}"
    try:
        r = tcrd.cli("network", "create", "--subnet", "10.199.77.0/24", name)
        assert r.returncode == 0, r.stderr
        r = tcrd.cli("network", "inspect", name)
        gateway = json.loads(r.stdout)[0]["gateway"] if r.stdout.lstrip().startswith("[") else \
            json.loads(r.stdout)["gateway"]
        assert gateway == "10.199.77.1"
        mine = _socket_inodes(tcrd.pid)
        socks = [s for s in proc_net_sockets() if s[4] in mine]
        on53 = [s for s in socks if s[2] == 53]
        assert {(p, ip) for p, ip, _port, _st, _i in on53} == {("udp", gateway), ("tcp", gateway)}, on53
        # TCP listeners (state 0A) of tcrd: only DNS on the gateway.
        listening = [s for s in socks if s[0].startswith("tcp") and s[3] == "0A"]
        assert [(s[1], s[2]) for s in listening] == [(gateway, 53)], listening
        # Nothing else of tcrd's is bound to port 53 on any other address, wildcard included.
        assert not [s for s in socks if s[2] == 53 and s[1] != gateway]
        # The network goes: its DNS listener goes with it.
        assert tcrd.cli("network", "rm", name).returncode == 0
        mine = _socket_inodes(tcrd.pid)
        assert not [s for s in proc_net_sockets() if s[4] in mine and s[2] == 53]
        assert kernel_leaks(tcrd) == []
    finally:
        tcrd.cli("network", "rm", name)
        force_clean_network(tcrd)


# ---- inside a default container --------------------------------------------------------------


@pytest.fixture
def busybox(tcrd, tmp_path):
    from test.fixtures.images import c_tool_sqfs

    r = tcrd.cli("image", "load", "-q", c_tool_sqfs(tmp_path))
    assert r.returncode == 0, r.stderr
    yield "busybox"
    for cid in tcrd.cli("ps", "-a", "-q").stdout.split():
        tcrd.cli("rm", "-f", cid)


def _inside(tcrd, script: str, *run_flags: str) -> subprocess.CompletedProcess:
    r = tcrd.cli("run", "--rm", *run_flags, "busybox", "sh", "-c", script, timeout=60)
    assert "RAN" in r.stdout, f"the container did not run: {r.returncode} {r.stdout!r} {r.stderr!r}"
    return r


def _verdicts(out: str) -> dict:
    return dict(ln.split(" ", 1)[::-1] for ln in out.splitlines() if ln.startswith(("DENIED ", "ALLOWED ")))


def _attempts(cmds: dict) -> str:
    """A shell script trying each command; prints 'DENIED name' or 'ALLOWED name' per attempt."""
    lines = ["echo RAN"]
    for name, cmd in cmds.items():
        lines.append(f"if {cmd} >/tmp/out.{name} 2>&1; then echo ALLOWED {name}; else echo DENIED {name}; "
                     f"sed 's/^/  {name}: /' /tmp/out.{name}; fi")
    return "\n".join(lines)


def test_default_container_cannot_mount(tcrd, busybox):
    cmds = {"tmpfs": "mount -t tmpfs x /mnt", "bind": "mount --bind /bin /mnt",
            "remount-rw-proc-sys": "mount -o remount,rw /proc/sys", "proc": "mount -t proc proc /mnt",
            "umount-proc": "umount /proc"}
    r = _inside(tcrd, _attempts(cmds))
    v = _verdicts(r.stdout)
    assert v == dict.fromkeys(cmds, "DENIED"), r.stdout


def test_default_container_cannot_load_kernel_modules(tcrd, busybox):
    # A junk module: with the right to load modules the kernel says "Invalid module format"
    # (ENOEXEC); without it, "Operation not permitted" (EPERM) before the file is even looked at.
    script = _attempts({"insmod": "insmod /tmp/x.ko"}).replace("echo RAN", "echo RAN; echo junk > /tmp/x.ko")
    r = _inside(tcrd, script)
    assert _verdicts(r.stdout) == {"insmod": "DENIED"}, r.stdout
    assert "not permitted" in r.stdout.lower(), r.stdout
    assert "invalid module format" not in r.stdout.lower()


def _host_net_snapshot():
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    addrs = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    # Link counters and states change on their own; compare names, addresses and routes.
    names = sorted(ln.split(":", 2)[1].strip() for ln in links.splitlines())
    return names, sorted(" ".join(ln.split()[1:4]) for ln in addrs.splitlines()), routes


def _route_dev(line):
    words = line.split()
    return words[words.index("dev") + 1] if "dev" in words[:-1] else None


@pytest.mark.parametrize("network", ["default", "host"])
def test_default_container_cannot_change_the_hosts_network(tcrd, busybox, network):
    from test.root.test_crash_points import force_clean_network

    tag = f"tcrsec{os.getpid() % 10000}"
    cmds = {"link-add": f"ip link add {tag} type dummy", "addr-add": "ip addr add 10.254.254.1/32 dev lo",
            "link-down": "ip link set lo down", "route-add": "ip route add 10.254.0.0/16 dev lo",
            "sysctl-forward": "sysctl -w net.ipv4.ip_forward=0"}
    before = _host_net_snapshot()
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        forward = f.read().strip()
    try:
        flags = ("--network", "host") if network == "host" else ()
        r = _inside(tcrd, _attempts(cmds), *flags)
        assert _verdicts(r.stdout) == dict.fromkeys(cmds, "DENIED"), r.stdout
        after = _host_net_snapshot()
        assert tag not in after[0]
        # The host's own links, addresses and routes are untouched (tcr's bridge/veth aside). Only
        # links present in both snapshots are compared: the kernel tears down the namespaces and
        # veths of earlier tests asynchronously, so one of those may vanish in between.
        assert {n for n in after[0] if not n.startswith("tc")} <= set(before[0]), after[0]
        common = {n for n in before[0] if n in after[0] and not n.startswith("tc")}

        def own(snap):
            addrs = [a for a in snap[1] if a.split()[0] in common]
            routes = [ln for ln in snap[2].splitlines()
                      if _route_dev(ln) in common or (_route_dev(ln) is None and " tc" not in ln)]
            return addrs, routes

        assert own(after) == own(before), (set(own(after)[1]) ^ set(own(before)[1]))
    finally:  # undo whatever an escaped attempt did (best effort; each is a no-op when denied)
        subprocess.run(["ip", "link", "del", tag], capture_output=True)
        subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True)
        subprocess.run(["ip", "addr", "del", "10.254.254.1/32", "dev", "lo"], capture_output=True)
        subprocess.run(["ip", "route", "del", "10.254.0.0/16", "dev", "lo"], capture_output=True)
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write(forward)
        for n in tcrd.cli("network", "ls", "-q").stdout.split():
            tcrd.cli("network", "rm", n)
        force_clean_network(tcrd)


def test_default_container_sees_only_its_own_processes(tcrd, busybox):
    script = "echo RAN; for p in /proc/[0-9]*; do echo PID ${p#/proc/} $(cat $p/comm 2>/dev/null); done"
    r = _inside(tcrd, script)
    rows = [ln.split() for ln in r.stdout.splitlines() if ln.startswith("PID ")]
    pids = {int(row[1]): " ".join(row[2:]) for row in rows}
    assert 1 in pids and pids[1] == "sh", pids
    assert len(pids) <= 3, pids  # sh, cat, maybe the loop's subshell
    assert not {c for c in pids.values()} & {"python3", "python", "tcrd", "pytest", "crun", "systemd", "init"}
    assert tcrd.pid not in pids or pids.get(tcrd.pid) == "sh"


def test_default_container_cannot_write_proc_sys(tcrd, busybox):
    targets = {"core_pattern": "/proc/sys/kernel/core_pattern", "panic": "/proc/sys/kernel/panic",
               "dmesg_restrict": "/proc/sys/kernel/dmesg_restrict",
               "thp": "/sys/kernel/mm/transparent_hugepage/enabled"}
    saved = {}
    for k, p in targets.items():
        with open(p) as f:
            saved[k] = f.read()
    cmds = {k: f"echo 1 > {p}" for k, p in targets.items()}
    cmds["sysctl"] = "sysctl -w kernel.panic=78"
    # Each target must exist in the container, or a "denied" would prove nothing.
    script = _attempts(cmds).replace("echo RAN", "echo RAN; " + "; ".join(
        f"[ -e {p} ] || echo MISSING {k}" for k, p in targets.items()))
    r = _inside(tcrd, script)
    assert "MISSING" not in r.stdout, r.stdout
    assert _verdicts(r.stdout) == dict.fromkeys(cmds, "DENIED"), r.stdout
    for k, p in targets.items():
        with open(p) as f:
            assert f.read() == saved[k], k


def _unused():  # keep imports used by helpers that run in forked children
    return sys, signal


@pytest.mark.root
def test_root_in_another_pid_namespace_is_refused(tcrd):
    """A container's root (e.g. --network host, which reaches the abstract socket) may not drive
    tcrd: peers outside tcrd's pid namespace are refused even as uid 0."""
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "..", "target"))
    r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "tcr.cli.main",
                        "--socket", tcrd.socket, "image", "ls"], env=env, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert "permission denied" in r.stderr
    assert tcrd.cli("image", "ls").returncode == 0  # the host's root still can
