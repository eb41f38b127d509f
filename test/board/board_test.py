#!/usr/bin/env python3
"""`make board-test`: tcr on an emulated board (or a real one), driven from this PC over SSH.

    board_test.py [--arch arm64|armhf|x86_64] [--board ssh://root@board] [--cache DIR] [--docs]

Emulated (the default): builds (and caches, keyed by a hash of its inputs) a Debian 12 root file
system for ARCH with mmdebstrap, installs tcr into it with `make install BYTECODE_ONLY=1
DESTDIR=...` (tcr.zip) and the systemd unit (as a board image builder does), builds an image for
ARCH on this PC with tcr-create-image from an offline OCI layout, boots qemu-system-* networked only through
`-netdev user,restrict=on` with 127.0.0.1 port forwards, and runs the scenario from the PC with
`tcr -H ssh://`: under systemd, through power cuts (SIGKILL of qemu), and under BusyBox init
with S95tcrd. With --board the same scenario and numbers run against a real board (no build,
no power cuts: nobody pulls your plug for you).

Every stage prints how long it took. Exit status 0 only if every check passed.
"""

import argparse
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [REPO, os.path.join(REPO, "target"), os.path.join(REPO, "host_tools")]

ARCHES = {
    # name: Debian arch, OCI arch, qemu, machine, serial console
    "arm64": ("arm64", "arm64", "qemu-system-aarch64", ["-M", "virt", "-cpu", "cortex-a57"], "ttyAMA0"),
    "armhf": ("armhf", "arm", "qemu-system-arm", ["-M", "virt,highmem=off", "-cpu", "cortex-a15"], "ttyAMA0"),
    "x86_64": ("amd64", "amd64", "qemu-system-x86_64", ["-M", "q35"], "ttyS0"),
}
BOARD_PORT = 8080  # the published port inside the board; forwarded to 127.0.0.1:<free> here
BBINIT = "/sbin/tcr-board-init/init"  # a symlink named "init" to BusyBox (see configure_rootfs)


class Failed(Exception):
    pass


# ---- output -------------------------------------------------------------------------------------

T0 = time.monotonic()
STAGES: List[tuple] = []
CHECKS: List[tuple] = []


def say(msg: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", flush=True)


@contextlib.contextmanager
def stage(name: str):
    say(f"== {name}")
    t = time.monotonic()
    ok = False
    try:
        yield
        ok = True
    finally:
        dt = time.monotonic() - t
        STAGES.append((name, dt, ok))
        say(f"== {name}: {'done' if ok else 'FAILED'} in {dt:.1f} s")


def check(what: str, cond: bool, detail: str = "") -> bool:
    CHECKS.append((what, cond, detail))
    say(f"{'ok  ' if cond else 'FAIL'} {what}" + ("" if cond or not detail else f": {detail.strip()[:600]}"))
    return cond


def until(probe, timeout: float, every: float = 2.0):
    """Call probe() until it returns (True, detail) or timeout seconds passed; the last result.

    The emulated board runs under TCG on a shared 2-core PC: how long a state takes to appear
    varies several-fold from run to run, so checks wait for a condition (bounded generously),
    never for a fixed time."""
    deadline = time.monotonic() + timeout
    while True:
        ok, detail = probe()
        if ok or time.monotonic() > deadline:
            return ok, detail
        time.sleep(every)


def sh(argv: List[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(argv, **kw)


def must(argv: List[str], **kw) -> subprocess.CompletedProcess:
    r = sh(argv, **kw)
    if r.returncode != 0:
        out = (r.stderr or "") + (r.stdout or "")
        raise Failed(f"{shlex.join(argv)} failed ({r.returncode}): {out[-2000:]}")
    return r


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- the root file system (cached) --------------------------------------------------------------

def rootfs_key(arch: str) -> str:
    h = hashlib.sha256(arch.encode())
    with open(os.path.join(HERE, "build-rootfs.sh"), "rb") as f:
        h.update(f.read())
    return h.hexdigest()[:16]


def cached_rootfs(arch: str, cache: str) -> str:
    deb = ARCHES[arch][0]
    out = os.path.join(cache, f"rootfs-{deb}-{rootfs_key(arch)}")
    if os.path.isfile(os.path.join(out, "initrd.img")):
        say(f"root file system cached: {out}")
        return out
    say(f"building the root file system (mmdebstrap, {deb}) into {out}; log: {out}.log")
    with open(out + ".log", "w") as log:
        r = subprocess.run([os.path.join(HERE, "build-rootfs.sh"), deb, out], stdout=log, stderr=log,
                           stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        with open(out + ".log") as f:
            tail = f.read()[-3000:]
        raise Failed(f"build-rootfs.sh failed ({r.returncode}):\n{tail}")
    for old in os.listdir(cache):  # older keys of this arch: 1+ GB each
        if old.startswith(f"rootfs-{deb}-") and os.path.join(cache, old) not in (out, out + ".log"):
            shutil.rmtree(os.path.join(cache, old), ignore_errors=True)
    return out


INITTAB = """\
# BusyBox init for the tcr board test (systemd is the other init on this root file system)
::sysinit:/etc/tcr-board/rcS
::ctrlaltdel:/bin/busybox reboot
::shutdown:/etc/tcr-board/rcK
"""

RCS = """\
#!/bin/busybox sh
# What a small BusyBox-init board does at boot: file systems, cgroup v2, network, sshd, S* scripts.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# (the initramfs has moved /proc, /sys and /dev over already)
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -o remount,rw /
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
hostname board
# no udev: load the NIC's driver by hand (tcr's own modules load on demand, loop via tcrd)
modprobe -q virtio_net
modprobe -q virtio_rng
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
mkdir -p /run/sshd
/usr/sbin/sshd
for s in /etc/init.d/S[0-9]*; do [ -x "$s" ] && "$s" start; done
"""

RCK = """\
#!/bin/busybox sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
for s in $(ls -r /etc/init.d/S[0-9]*); do [ -x "$s" ] && "$s" stop; done
sync
mount -o remount,ro /
"""


def write(path: str, text: str, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # never write through a file shared with the cache (or a symlink)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def symlink(target: str, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.symlink(target, path)


def configure_rootfs(root: str, pubkey: str) -> None:
    """The board's own settings (per run, cheap; the cached tree stays generic)."""
    write(f"{root}/etc/hostname", "board\n")
    write(f"{root}/etc/hosts", "127.0.0.1 localhost\n127.0.1.1 board\n")
    # The kernel mounts / read-write (root=/dev/vda rw); an fstab line for it would make systemd
    # wait ~30 s under emulation for udev to announce dev-vda.device.
    write(f"{root}/etc/fstab", "# / is mounted by the kernel (root=/dev/vda rw)\n")
    # No upstream resolver: the board's DNS must never reach past this machine.
    write(f"{root}/etc/resolv.conf", "# tcr board test: no upstream resolvers\n")
    write(f"{root}/etc/systemd/network/10-eth0.network",
          "[Match]\nName=eth0\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\n")
    wants = f"{root}/etc/systemd/system/multi-user.target.wants"
    symlink("/lib/systemd/system/systemd-networkd.service", f"{wants}/systemd-networkd.service")
    symlink("/lib/systemd/system/tcrd.service", f"{wants}/tcrd.service")
    for t in ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer",
              "dpkg-db-backup.timer", "e2scrub_reap.service"):
        symlink("/dev/null", f"{root}/etc/systemd/system/{t}")  # no background work under the numbers
    os.makedirs(f"{root}/root/.ssh", mode=0o700, exist_ok=True)
    write(f"{root}/root/.ssh/authorized_keys", pubkey, 0o600)
    # BusyBox init: `init=` must name a file called "init" for BusyBox to run its init applet.
    symlink("/bin/busybox", root + BBINIT)
    write(f"{root}/etc/inittab", INITTAB)
    write(f"{root}/etc/tcr-board/rcS", RCS, 0o755)
    write(f"{root}/etc/tcr-board/rcK", RCK, 0o755)


def install_tcr(root: str) -> None:
    """`make install BYTECODE_ONLY=1` into the board tree: the path Buildroot's and Yocto's recipes
    take (tcr.zip of byte code, read by the zip's own loader; the board's Python is 3.11 as here)."""
    must(["make", "-C", REPO, "install", "BYTECODE_ONLY=1", f"DESTDIR={root}", "PREFIX=/usr/local",
          "PYTHON=/usr/bin/python3", "TARGET_PYTHON=/usr/bin/python3", "INIT=both"])
    for p in ("usr/local/bin/tcr", "usr/local/bin/tcrd", "lib/systemd/system/tcrd.service",
              "etc/init.d/S95tcrd"):
        if not os.path.exists(os.path.join(root, p)):
            raise Failed(f"make install did not install /{p}")


def make_disk(cached: str, work: str, pubkey: str) -> str:
    root = os.path.join(work, "rootfs")
    shutil.rmtree(root, ignore_errors=True)
    # Hard links: instant, and safe because every per-run write makes a new file (write(),
    # symlink() and make install unlink or create; nothing is written in place).
    must(["cp", "-al", os.path.join(cached, "rootfs"), root])
    install_tcr(root)
    configure_rootfs(root, pubkey)
    disk = os.path.join(work, "disk.img")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(disk)
    # -O verity: tcr turns fs-verity on for every stored image where the kernel has it
    # (CONFIG_FS_VERITY; Debian's arm64, armhf and amd64 kernels do), so the kernel checks every
    # page the loop device reads (docs/security.md)
    must(["mkfs.ext4", "-q", "-F", "-L", "board", "-O", "verity", "-d", root, disk, "4G"])
    shutil.rmtree(root, ignore_errors=True)
    return disk


# ---- the image (built here, for the board's architecture) ---------------------------------------

def busybox_for(arch: str, cache: str, work: str) -> str:
    """ARCH's busybox-static from the Debian mirror: from the cached root file system if there is
    one, else `apt-get download busybox-static:ARCH` (needs `dpkg --add-architecture ARCH`)."""
    deb = ARCHES[arch][0]
    rootfs = os.path.join(cache, f"rootfs-{deb}-{rootfs_key(arch)}", "rootfs")
    if os.path.isfile(os.path.join(rootfs, "bin/busybox")):
        return os.path.join(rootfs, "bin/busybox")
    d = os.path.join(work, "busybox-deb")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    if deb not in sh(["dpkg", "--print-foreign-architectures"]).stdout.split() and deb != "amd64":
        must(["dpkg", "--add-architecture", deb])
        must(["apt-get", "update", "-qq"])
    must(["apt-get", "download", f"busybox-static:{deb}"], cwd=d)
    debs = [f for f in os.listdir(d) if f.endswith(".deb")]
    must(["dpkg-deb", "-x", os.path.join(d, debs[0]), os.path.join(d, "x")])
    return os.path.join(d, "x/bin/busybox")


def build_images(arch: str, cache: str, work: str) -> List[str]:
    from test.fixtures.oci_layout import build_foreign_layout

    oci = ARCHES[arch][1]
    layout = os.path.join(work, "oci")
    shutil.rmtree(layout, ignore_errors=True)
    build_foreign_layout(layout, busybox_for(arch, cache, work), oci)
    out = []
    for tag in ("latest", "second"):
        sqfs = os.path.join(work, f"board-{tag}.sqfs")
        must([sys.executable, "-m", "tcr_host.cli", "--arch", oci, "-q", "-f", "--name", f"board:{tag}",
              "-o", sqfs, f"oci:{layout}:{tag}"],
             env=dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "host_tools"),
                                                             os.path.join(REPO, "target")])))
        out.append(sqfs)
    return out


# ---- the board ----------------------------------------------------------------------------------

class Board:
    """One board reached over ssh; an emulated one can also be booted, rebooted and power-cut."""

    def __init__(self, url: str, work: str, ssh_opts: str, emulated: Optional[dict] = None):
        self.url = url
        self.work = work
        self.ssh_opts = ssh_opts
        self.emu = emulated
        self.qemu: Optional[subprocess.Popen] = None
        self.qemu_log_at = 0  # where this boot's part of qemu.log starts
        self.boots = 0
        self.init = "systemd"
        self.http_port = emulated["http_port"] if emulated else BOARD_PORT
        self.http_host = "127.0.0.1" if emulated else url.split("@")[-1].split(":")[0].strip("[]/")
        http = os.environ.get("TCR_BOARD_HTTP", "")  # HOST:PORT where the board's :8080 is reached
        if http and not emulated:
            self.http_host, _, port = http.rpartition(":")
            self.http_port = int(port)

    # -- talking to it --
    def env(self) -> Dict[str, str]:
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "target"), TCR_SSH_OPTS=self.ssh_opts,
                   XDG_RUNTIME_DIR=self.work)  # the shared connections' sockets: under work/tcr-ssh
        env.pop("TCR_SOCKET", None)
        env.pop("TCR_HOST", None)
        return env

    def tcr(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        try:
            return sh([sys.executable, "-m", "tcr.cli.main", "-H", self.url, *args], env=self.env(),
                      timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, 124, "", f"timed out after {timeout}s")

    def tcr_popen(self, *args: str) -> subprocess.Popen:
        """A client left running in the background, in its own process group (see stop_client)."""
        return subprocess.Popen([sys.executable, "-m", "tcr.cli.main", "-H", self.url, *args],
                                env=self.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)

    @staticmethod
    def stop_client(p: subprocess.Popen) -> str:
        """Kill a tcr_popen client with everything it started: killing the client alone left its
        scp running, and that scp reconnected to the next boot through the same forwarded port
        and finished the upload there, after tcrd's start-up clean-up (seen on the board)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)  # our own child's group, by its id
        _out, err = p.communicate()
        return err or ""

    def ssh(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess:
        from tcr.cli import ssh

        t = ssh.parse_host(self.url)
        opts = ssh.connection_options(t, ssh.extra_options(self.ssh_opts), ssh.control_dir(self.work))
        try:
            return sh(ssh.ssh_argv(t, command, batch=True, options=opts), timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess([], 124, "", f"timed out after {timeout}s")

    def close_connections(self) -> None:
        d = os.path.join(self.work, "tcr-ssh")
        for name in os.listdir(d) if os.path.isdir(d) else ():
            sh(["ssh", "-o", f"ControlPath={os.path.join(d, name)}", "-O", "exit", "x"], timeout=30)

    # -- power --
    def boot(self, init: str = "systemd") -> float:
        """Boot (emulated) or wait for (real) the board; returns seconds until tcrd answered."""
        t = time.monotonic()
        if self.emu:
            self._start_qemu(init)
        self.init = init
        self.wait_ready(t)
        return time.monotonic() - t

    def _start_qemu(self, init: str) -> None:
        e = self.emu
        assert e is not None
        self.boots += 1
        _deb, _oci, qemu, machine, console = ARCHES[e["arch"]]
        append = f"root=/dev/vda rw console={console} net.ifnames=0 quiet"
        if init == "busybox":
            append += f" init={BBINIT}"
        fwd = (f"hostfwd=tcp:127.0.0.1:{e['ssh_port']}-:22,"
               f"hostfwd=tcp:127.0.0.1:{e['http_port']}-:{BOARD_PORT}")
        argv = [qemu, *machine, "-m", "1024", "-smp", "2", "-nodefaults", "-no-user-config",
                "-display", "none", "-no-reboot",
                "-kernel", e["kernel"], "-initrd", e["initrd"], "-append", append,
                "-drive", f"file={e['disk']},format=raw,if=virtio",
                # restrict=on: the guest reaches nothing but these 127.0.0.1 forwards
                "-netdev", f"user,id=n0,restrict=on,{fwd}", "-device", "virtio-net-pci,netdev=n0",
                "-device", "virtio-rng-pci",
                "-serial", f"file:{os.path.join(self.work, f'console-{self.boots}.log')}"]
        # KVM only when asked: this PC's /dev/kvm (nested, "host doesn't support requested feature:
        # CPUID.01H:ECX.pni") hung the x86_64 guest before its first console line, and CI machines
        # are no better known; TCG is slower but the same everywhere
        if e["arch"] == "x86_64" and os.environ.get("TCR_BOARD_KVM") == "1":
            argv[1:1] = ["-enable-kvm", "-cpu", "host"]
        if shutil.which(qemu) is None:
            raise Failed(f"{qemu} not found: `make board-test` installs it (BOARD_APT_PKGS)")
        with open(os.path.join(self.work, "qemu.log"), "a") as log:
            self.qemu_log_at = log.tell()
            self.qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=log)
        say(f"booting ({init}, boot #{self.boots}): {self.url}")

    def wait_ready(self, t0: float, timeout: float = 600) -> None:
        deadline = t0 + timeout
        port_retries = 3
        while True:
            if self.qemu is not None and self.qemu.poll() is not None:
                if port_retries and self._forward_port_taken():
                    # free_port() cannot reserve: another program on this PC took one in between
                    port_retries -= 1
                    self._new_ports()
                    self._start_qemu(self.init)
                    continue
                raise Failed(f"qemu exited ({self.qemu.returncode}) during boot; "
                             f"see {self.work}/console-*.log and qemu.log")
            r = self.ssh("true", timeout=60)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise Failed(f"no ssh after {timeout}s: {r.stderr.strip()[-300:]}")
            time.sleep(3)
        say(f"ssh up after {time.monotonic() - t0:.1f} s")
        while True:
            r = self.tcr("version", timeout=120)
            if r.returncode == 0 and "tcrd" in r.stdout:
                break
            if time.monotonic() > deadline:
                raise Failed(f"tcrd not ready after {timeout}s: {r.stderr.strip()[-300:]}")
            time.sleep(2)
        say(f"tcrd ready after {time.monotonic() - t0:.1f} s")

    def _forward_port_taken(self) -> bool:
        try:
            with open(os.path.join(self.work, "qemu.log")) as f:
                f.seek(self.qemu_log_at)
                return "host forwarding" in f.read()
        except OSError:
            return False

    def _new_ports(self) -> None:
        assert self.emu is not None
        self.close_connections()
        self.emu["ssh_port"], self.emu["http_port"] = free_port(), free_port()
        self.url = f"ssh://root@127.0.0.1:{self.emu['ssh_port']}"
        self.http_port = self.emu["http_port"]
        say(f"a forwarded port was taken meanwhile: now {self.url}, http on {self.http_port}")

    def reboot(self, init: Optional[str] = None) -> float:
        """A clean reboot (qemu -no-reboot: the guest's reboot ends qemu, we boot it again)."""
        init = init or self.init
        t = time.monotonic()
        # Debian's reboot is systemctl's: under BusyBox init it fails and BusyBox's does it
        self.ssh("(sleep 1; reboot || busybox reboot) >/dev/null 2>&1 &", timeout=60)
        self.close_connections()
        if self.emu:
            assert self.qemu is not None
            try:
                self.qemu.wait(600)
            except subprocess.TimeoutExpired:
                raise Failed("the board did not shut down within 600 s")
            self._start_qemu(init)
        else:
            time.sleep(15)  # a real board: let it go down before waiting for it to come back
        self.init = init
        self.wait_ready(t)
        return time.monotonic() - t

    def power_cut(self) -> None:
        assert self.qemu is not None
        os.kill(self.qemu.pid, signal.SIGKILL)
        self.qemu.wait()
        self.close_connections()
        say("power cut (SIGKILL qemu)")

    def shutdown(self) -> None:
        if self.qemu is not None and self.qemu.poll() is None:
            self.ssh("(sleep 1; poweroff || busybox poweroff) >/dev/null 2>&1 &", timeout=60)
            try:
                self.qemu.wait(300)
            except subprocess.TimeoutExpired:
                os.kill(self.qemu.pid, signal.SIGKILL)
                self.qemu.wait()
        self.close_connections()

    def boot_to_ready(self) -> Dict[str, float]:
        """Seconds from the kernel's start to tcrd's socket, and to sshd's pid file for scale,
        measured on the board itself (its own clock)."""
        script = ("import os\n"
                  "b = [int(l.split()[1]) for l in open('/proc/stat') if l.startswith('btime')][0]\n"
                  "for p in ('/run/tcr/tcrd.sock', '/run/sshd.pid'):\n"
                  "    print(os.stat(p).st_mtime - b if os.path.exists(p) else 'nan')\n")
        r = self.ssh(f"python3 -c {shlex.quote(script)}")
        try:
            tcrd, sshd = (float(x) for x in r.stdout.split()[:2])
        except ValueError:
            tcrd = sshd = float("nan")
        return {"boot-to-ready (s, kernel start to tcrd socket)": tcrd,
                "boot-to-sshd (s, kernel start to sshd pid file)": sshd}


# ---- the scenario -------------------------------------------------------------------------------

def ids(out: str) -> List[str]:
    return [x for x in out.split() if x]


def ps_json(board: Board) -> List[dict]:
    r = board.tcr("ps", "-a", "--format", "json")
    if r.returncode != 0:
        raise Failed(f"tcr ps -a: {r.stderr}")
    return json.loads(r.stdout or "[]")


def by_name(cs: List[dict]) -> Dict[str, dict]:
    out = {}
    for c in cs:
        n = c.get("name") or c.get("Names") or ""
        out[n.lstrip("/")] = c
    return out


def state_of(c: dict) -> str:
    return str(c.get("state") or c.get("State") or c.get("status") or "").lower()


def running(board: Board, name: str, timeout: float = 180) -> tuple:
    """(running?, detail) once container name runs, or after timeout seconds."""
    def probe() -> tuple:
        c = by_name(ps_json(board)).get(name)
        return "running" in state_of(c or {}), json.dumps(c)
    return until(probe, timeout)


def http_get(board: Board, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{board.http_host}:{board.http_port}/", timeout=15) as r:
                return r.read().decode(errors="replace")
        except OSError as exc:
            last = str(exc)
            time.sleep(2)
    return f"(no answer: {last})"


def scenario(board: Board, images: List[str], reboot: bool = True) -> Dict[str, float]:
    """The user's tour, checked step by step. Returns some timings."""
    times: Dict[str, float] = {}
    r = board.tcr("check")
    check(f"[{board.init}] tcr check", r.returncode == 0, r.stdout + r.stderr)
    t = time.monotonic()
    r = board.tcr("image", "load", "-q", images[0])
    times["image load"] = time.monotonic() - t
    check(f"[{board.init}] image load through ssh", r.returncode == 0, r.stderr)
    img = r.stdout.strip().split()[-1] if r.returncode == 0 else "board:latest"
    r = board.tcr("image", "verify", img)
    check(f"[{board.init}] image verify", r.returncode == 0, r.stderr)

    r = board.tcr("run", "--rm", img, "sh", "-c", "echo on-board; exit 7")
    check(f"[{board.init}] run --rm passes the exit code through (7)",
          r.returncode == 7 and "on-board" in r.stdout, f"rc={r.returncode} {r.stdout} {r.stderr}")

    r = board.tcr("run", "-d", "--name", "web", "--restart", "always", "-p", f"{BOARD_PORT}:80", img,
                  "httpd", "-f", "-p", "80", "-h", "/var/www")
    check(f"[{board.init}] run -d httpd -p {BOARD_PORT}:80", r.returncode == 0, r.stderr)
    body = http_get(board)
    check(f"[{board.init}] httpd reached from the PC through the forwarded port",
          "hello from tcr" in body, body)

    r = board.tcr("network", "create", "boardnet")
    check(f"[{board.init}] network create", r.returncode == 0, r.stderr)
    for n in ("alpha", "beta"):
        r = board.tcr("run", "-d", "--name", n, "--network", "boardnet", img, "sleep", "100000")
        check(f"[{board.init}] run -d {n} on boardnet", r.returncode == 0, r.stderr)
    for a, b in (("alpha", "beta"), ("beta", "alpha")):
        def ping(a: str = a, b: str = b) -> tuple:
            r = board.tcr("exec", a, "ping", "-c", "1", "-W", "5", b)
            return r.returncode == 0, r.stdout + r.stderr
        check(f"[{board.init}] {a} resolves and reaches {b} by name", *until(ping, 60))

    r = board.tcr("run", "-d", "--name", "keeper", "--restart", "always", img, "sleep", "100000")
    check(f"[{board.init}] run -d --restart always", r.returncode == 0, r.stderr)
    r = board.tcr("run", "--name", "said", img, "echo", "hello-board")
    check(f"[{board.init}] run (foreground, kept)", r.returncode == 0 and "hello-board" in r.stdout, r.stderr)
    r = board.tcr("run", "-d", "--name", "talker", img, "echo", "hello-logs")
    check(f"[{board.init}] run -d (exits by itself)", r.returncode == 0, r.stderr)

    if reboot:
        times["reboot"] = board.reboot()
        for n in ("keeper", "web"):
            check(f"[{board.init}] --restart always: {n} runs again after a reboot", *running(board, n))
        body = http_get(board)
        check(f"[{board.init}] httpd answers again after the reboot", "hello from tcr" in body, body)

    cs = by_name(ps_json(board))
    check(f"[{board.init}] the exited foreground container is kept", "said" in cs, json.dumps(list(cs)))
    r = board.tcr("logs", "talker")
    check(f"[{board.init}] logs", r.returncode == 0 and "hello-logs" in r.stdout, r.stdout + r.stderr)
    r = board.tcr("stop", "keeper")
    check(f"[{board.init}] stop", r.returncode == 0, r.stderr)
    cs = by_name(ps_json(board))
    check(f"[{board.init}] stopped container is not running", "running" not in state_of(cs.get("keeper", {})),
          json.dumps(cs.get("keeper")))
    for n in ("keeper", "said", "talker", "web", "alpha", "beta"):
        r = board.tcr("rm", "-f", n)
        check(f"[{board.init}] rm {n}", r.returncode == 0, r.stderr)
    r = board.tcr("network", "rm", "boardnet")
    check(f"[{board.init}] network rm", r.returncode == 0, r.stderr)
    r = board.tcr("image", "rm", img)
    check(f"[{board.init}] image rm", r.returncode == 0, r.stderr)
    left = ps_json(board)
    r = board.tcr("image", "ls", "-q")
    check(f"[{board.init}] nothing left: no container, no image", not left and not r.stdout.strip(),
          json.dumps(left) + r.stdout)
    check(f"[{board.init}] nothing leaked on the board", *leaks(board))
    return times


LEAK_SCRIPT = r"""
set -u
out=""
root=/var/lib/tcr
# files a crash could leave half-written
for f in $(find "$root" -name '*.tmp' -o -name '*.part' -o -name '*.tmp.*' 2>/dev/null); do
  out="$out tmp:$f"
done
# the upload area must be empty once a load has ended (successfully or not)
for f in $(ls -A "$root/incoming" 2>/dev/null); do out="$out incoming:$f"; done
# loop devices whose file is gone, mounts of removed things
losetup -a 2>/dev/null | grep -q '(deleted)' && out="$out loop:deleted"
echo "$out"
"""


def leaks(board: Board, timeout: float = 60) -> tuple:
    """(no leak?, detail): half-written files, upload leftovers, mounts/loops/netns/veths/nft
    rules that belong to no container, image or network tcr lists. Waits up to timeout seconds
    for a clean state (a container that is starting has its overlay before ps says running); a
    leak stays, so it still shows."""
    return until(lambda: _leaks_now(board), timeout, every=5)


def _leaks_now(board: Board) -> tuple:
    r = board.ssh(LEAK_SCRIPT)
    found = r.stdout.split()
    st = board.ssh("ip -o link show type veth | wc -l; ls /run/tcr/netns 2>/dev/null | wc -l; "
                   "grep -c ' overlay ' /proc/self/mounts || true")
    try:
        veths, netns, overlays = (int(x) for x in st.stdout.split()[:3])
    except ValueError:
        veths = netns = overlays = -1
    running = [c for c in ps_json(board) if "running" in state_of(c)]
    if overlays > len(running):
        found.append(f"overlays:{overlays}>running:{len(running)}")
    if veths > len(running):
        found.append(f"veths:{veths}>running:{len(running)}")
    return (not found, " ".join(found) + f" (veths={veths} netns={netns} overlays={overlays})")


# ---- power cuts ---------------------------------------------------------------------------------

def after_power_cut(board: Board, moment: str, always: List[str], maybe: Dict[str, str]) -> None:
    """The checks after every power cut. maybe: name -> kind ("container", "network", "image") of
    the thing being made when the power went: it must be there whole or not at all."""
    t = time.monotonic()
    board.boot("systemd" if board.init == "systemd" else board.init)
    tag = f"[power cut {moment}]"
    check(f"{tag} tcrd starts again", True)
    say(f"{tag} boot-to-ready {time.monotonic() - t:.1f} s")
    r = board.tcr("image", "ls", "--format", "json")
    imgs = json.loads(r.stdout or "[]") if r.returncode == 0 else []
    check(f"{tag} image ls", r.returncode == 0, r.stderr)
    for im in imgs:
        iid = str(im.get("Id") or "")
        v = board.tcr("image", "verify", iid)
        check(f"{tag} image {iid[:12]} verifies", v.returncode == 0, v.stdout + v.stderr)
    for n in always:
        check(f"{tag} always-container {n} runs again", *running(board, n))
    cs = by_name(ps_json(board))
    for name, kind in maybe.items():
        if kind == "container" and name in cs:
            # whole: it can be inspected, started and removed like any other
            ok = board.tcr("inspect", name).returncode == 0
            s = board.tcr("start", name) if "running" not in state_of(cs[name]) else None
            ok = ok and (s is None or s.returncode == 0)
            rm = board.tcr("rm", "-f", name)
            check(f"{tag} container {name} (being made at the cut) is whole", ok and rm.returncode == 0,
                  (s.stderr if s else "") + rm.stderr)
        elif kind == "container":
            check(f"{tag} container {name} (being made at the cut) is absent", True)
        elif kind == "network":
            nets = board.tcr("network", "ls").stdout
            if name in nets:
                r1 = board.tcr("run", "--rm", "--network", name, "board:latest", "true")
                r2 = board.tcr("network", "rm", name)
                check(f"{tag} network {name} (being made at the cut) is whole",
                      r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr)
            else:
                check(f"{tag} network {name} (being made at the cut) is absent", True)
        elif kind == "image":
            present = any(name in json.dumps(im) for im in imgs)
            check(f"{tag} image {name} (being loaded at the cut) is {'whole' if present else 'absent'}", True)
    ok, detail = leaks(board)
    check(f"{tag} nothing leaked", ok, detail)


def power_cuts(board: Board, images: List[str]) -> None:
    r = board.tcr("image", "load", "-q", images[0])
    if not check("[power] image load", r.returncode == 0, r.stderr):
        return
    img = "board:latest"
    board.tcr("run", "-d", "--name", "pc-always", "--restart", "always", img, "sleep", "100000")
    board.tcr("run", "-d", "--name", "pc-web", "--restart", "always", "-p", f"{BOARD_PORT}:80", img,
              "httpd", "-f", "-p", "80", "-h", "/var/www")
    board.tcr("run", "-d", "--name", "pc-plain", img, "sleep", "100000")
    always = ["pc-always", "pc-web"]

    # 1: containers running, nothing in flight
    board.power_cut()
    after_power_cut(board, "with containers running", always, {})
    body = http_get(board)
    check("[power cut] published port answers again", "hello from tcr" in body, body)

    # 2..: in the middle of an operation, at a few moments
    plans = [
        ("during image load (early)", ["image", "load", "-q", images[1]], "board:second", "image", 1.0),
        ("during image load (late)", ["image", "load", "-q", images[1]], "board:second", "image", 4.0),
        ("during run -d", ["run", "-d", "--name", "pc-mid", img, "sleep", "100000"], "pc-mid", "container",
         1.5),
        ("during network create", ["network", "create", "pc-net"], "pc-net", "network", 1.2),
    ]
    for moment, args, name, kind, delay in plans:
        p = board.tcr_popen(*args)
        time.sleep(delay)  # the moment of the cut; whatever it hits, the checks below must hold
        board.power_cut()
        board.stop_client(p)
        after_power_cut(board, moment, always, {name: kind})
        if kind == "image":
            board.tcr("image", "rm", "board:second")
    for n in ("pc-always", "pc-web", "pc-plain", "pc-mid"):  # one by one: some may not exist
        board.tcr("rm", "-f", n)
    board.tcr("network", "rm", "pc-net")
    board.tcr("image", "rm", img)
    left = ps_json(board)
    check("[power] cleaned up after the power cuts", not left, json.dumps(left))


# ---- fs-verity (issue 11) -----------------------------------------------------------------------

# What the board's kernel says the file's fs-verity digest is: its own ioctl, not tcr's code.
VERITY_MEASURE = r"""
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
buf = bytearray(struct.pack("=HH", 0, 64) + bytes(64))
try:
    fcntl.ioctl(fd, 0xC0046686, buf)  # FS_IOC_MEASURE_VERITY
except OSError as e:
    print("off:" + (e.strerror or str(e)))
else:
    alg, size = struct.unpack_from("=HH", buf)
    print(f"{alg}:{bytes(buf[4:4 + size]).hex()}")
"""


def fsverity_digest(path: str, block: int = 4096) -> str:
    """The fs-verity file digest (SHA-256, no salt, version 1) of path as the kernel measures it
    after tcr enabled it: the Merkle tree over the file's blocks, then the descriptor's hash."""
    def sha(b: bytes) -> bytes:
        return hashlib.sha256(b).digest()

    def pad(b: bytes) -> bytes:
        return b + bytes(-len(b) % block)

    with open(path, "rb") as f:
        data = f.read()
    root = bytes(32)
    if data:
        level = [sha(pad(data[i:i + block])) for i in range(0, len(data), block)]
        while len(level) > 1:  # one block of data: its hash is the root
            blob = b"".join(level)
            level = [sha(pad(blob[i:i + block])) for i in range(0, len(blob), block)]
        root = level[0]
    desc = struct.pack("<BBBBIQ64s32s144s", 1, 1, block.bit_length() - 1, 0, 0, len(data), root, b"", b"")
    return "1:" + sha(desc).hex()


def kernel_has_verity(cached: str) -> Optional[bool]:
    """CONFIG_FS_VERITY of the emulated board's kernel, from the cached tree's /boot/config-*."""
    boot = os.path.join(cached, "rootfs", "boot")
    for n in sorted(os.listdir(boot)) if os.path.isdir(boot) else ():
        if n.startswith("config-"):
            with open(os.path.join(boot, n)) as f:
                return "CONFIG_FS_VERITY=y\n" in f.read()
    return None


def inspect_image(board: Board, ref: str) -> dict:
    r = board.tcr("image", "inspect", ref)
    try:
        return json.loads(r.stdout)[0]
    except (ValueError, IndexError, KeyError):
        return {}


def verity(board: Board, images: List[str], expect: Optional[bool]) -> None:
    """A loaded image gets fs-verity where the board's kernel has it; then even root cannot open
    it for writing, and a block changed behind the file system's back (on the disk, the board
    off) makes the image broken instead of mounting changed bytes. expect: whether the kernel has
    CONFIG_FS_VERITY (None: unknown, a real board)."""
    ref = "board:second"
    r = board.tcr("image", "load", "-q", images[1])
    if not check("[verity] image load", r.returncode == 0, r.stderr):
        return

    def sealed() -> tuple:  # uploads take the --move path: hash and fs-verity follow the load
        sf = inspect_image(board, ref).get("storedFile") or {}
        return bool(sf.get("sha256")), json.dumps(sf)
    done, detail = until(sealed, 300)
    check("[verity] the upload was hashed after its load", done, detail)
    d = inspect_image(board, ref)
    on = bool((d.get("storedFile") or {}).get("verity"))
    stored = str(d.get("stored") or "")
    if expect is not None:
        check(f"[verity] fs-verity is {'on' if expect else 'off'} for the stored image "
              "(tcr image inspect: storedFile.verity), as the board's kernel has it"
              f"{'' if expect else ' not'}", on == expect, json.dumps(d.get("storedFile")))
    else:
        say(f"[verity] the board's kernel config is unknown; fs-verity is {'on' if on else 'off'}")
    if on:
        m = board.ssh(f"python3 -c {shlex.quote(VERITY_MEASURE)} {shlex.quote(stored)}")
        want = fsverity_digest(images[1])
        check("[verity] the kernel's measure is the fs-verity digest of the file built on the PC",
              m.stdout.strip() == want, f"board {m.stdout.strip()}{m.stderr} / PC {want}")
        opener = "import sys; open(sys.argv[1], 'r+b')"
        w = board.ssh(f"python3 -c {shlex.quote(opener)} {shlex.quote(stored)}")
        check("[verity] not even root can open the stored file for writing (EPERM)",
              w.returncode != 0 and "Operation not permitted" in w.stderr, w.stderr)
    if not (on and board.emu):
        r = board.tcr("image", "rm", ref)
        check("[verity] image rm", r.returncode == 0, r.stderr)
        return
    # Change one byte of the file's first block on the disk while the board is off: nothing in
    # the file system (size, mtime, ctime, inode: tcr's boot-time fingerprint) shows it.
    iid = str(d.get("id") or "")
    board.shutdown()
    disk = board.emu["disk"]
    r = sh(["debugfs", "-R", f"bmap {stored} 0", disk])
    try:
        pblk = int(r.stdout.split()[0])
    except (ValueError, IndexError):
        check("[verity] found the stored file's first block on the disk", False, r.stdout + r.stderr)
        board.boot(board.init)
        return
    with open(disk, "r+b") as f:
        f.seek(pblk * 4096 + 100)
        b = f.read(1)
        f.seek(pblk * 4096 + 100)
        f.write(bytes([b[0] ^ 0xFF]))
    say(f"[verity] flipped a byte of {stored} (disk block {pblk}) with the board off")
    board.boot(board.init)
    r = board.tcr("image", "ls")
    check("[verity] the changed image is listed as broken", r.returncode == 0 and iid in r.stderr
          and "broken" in r.stderr, r.stdout + r.stderr)
    r = board.tcr("run", "--rm", ref, "true")
    check("[verity] run refuses the changed image", r.returncode not in (0, 124), r.stdout + r.stderr)
    r = board.ssh(f"cat {shlex.quote(stored)} >/dev/null")
    check("[verity] the kernel refuses to read the changed block (EIO)",
          r.returncode != 0 and "Input/output error" in r.stderr, r.stderr)
    r = board.tcr("image", "rm", ref)
    check("[verity] the broken image can be removed", r.returncode == 0, r.stderr)
    check("[verity] nothing leaked", *leaks(board))


# ---- numbers ------------------------------------------------------------------------------------

BENCH_SCRIPT = r"""
import json, os, shutil, subprocess, sys, time
img, reps = sys.argv[1], int(sys.argv[2])
def t(argv):
    s = time.perf_counter()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise SystemExit(f"{argv}: {r.stderr.decode()[-300:]}")
    return time.perf_counter() - s
def med(xs):
    xs = sorted(xs); return xs[len(xs) // 2]
# a bare crun bundle: the same busybox, no tcr
b = "/tmp/tcr-board-bundle"
shutil.rmtree(b, ignore_errors=True)
os.makedirs(b + "/rootfs/bin")
shutil.copy("/bin/busybox", b + "/rootfs/bin/busybox")
subprocess.run(["crun", "spec"], cwd=b, check=True)
cfg = json.load(open(b + "/config.json"))
cfg["process"]["terminal"] = False
cfg["process"]["args"] = ["/bin/busybox", "true"]
json.dump(cfg, open(b + "/config.json", "w"))
cases = {
    "tcr run --rm": ["tcr", "run", "--rm", "--network", "none", img, "true"],
    "tcr run --rm (bridge network)": ["tcr", "run", "--rm", img, "true"],
    "crun run": ["crun", "run", "-b", b, "tcr-board-bare"],
    "tcr ps": ["tcr", "ps"],
    "python3 -I -S -c pass": ["python3", "-I", "-S", "-c", "pass"],
}
res = {k: [] for k in cases}
for k, argv in cases.items():
    t(argv)  # warm-up
for _ in range(reps):  # interleaved: slow phases of the emulator hit every case alike
    for k, argv in cases.items():
        res[k].append(t(argv))
shutil.rmtree(b, ignore_errors=True)
print(json.dumps({k: med(v) for k, v in res.items()}))
"""

RSS_SCRIPT = r"""
import os
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if any(c.endswith(b"/tcrd") for c in cmd[1:3]):  # python3 [-IS] /usr/local/bin/tcrd
            for l in open(f"/proc/{p}/status"):
                if l.startswith("VmRSS:"):
                    print(int(l.split()[1]))
            break
"""


def numbers(board: Board, images: List[str], reps: int) -> Dict[str, float]:
    out: Dict[str, float] = {}
    r = board.tcr("image", "load", "-q", images[0])
    if not check("[bench] image load", r.returncode == 0, r.stderr):
        return out
    r = board.ssh(f"python3 -c {shlex.quote(BENCH_SCRIPT)} board:latest {reps}")
    if check("[bench] run/ps timings", r.returncode == 0, r.stderr):
        out.update(json.loads(r.stdout.strip().splitlines()[-1]))

    def rss() -> float:
        r = board.ssh(f"python3 -c {shlex.quote(RSS_SCRIPT)}")
        try:
            return int(r.stdout.split()[0]) / 1024
        except (ValueError, IndexError):
            return float("nan")

    time.sleep(5)
    out["tcrd RSS idle (MB)"] = rss()
    for i in range(10):
        board.tcr("run", "-d", "--name", f"bench-{i}", "board:latest", "sleep", "100000")
    out["tcrd RSS with 10 containers (MB)"] = rss()
    board.tcr("rm", "-f", *[f"bench-{i}" for i in range(10)])
    board.tcr("image", "rm", "board:latest")
    out.update(board.boot_to_ready())
    # what the PC pays per `tcr -H` command, with and without the shared connection
    for label, extra in (("tcr -H ps (shared connection)", ""),
                         ("tcr -H ps (no sharing)", " -o ControlMaster=no -o ControlPath=none")):
        saved = board.ssh_opts
        board.ssh_opts = saved + extra
        board.tcr("ps")
        ts = []
        for _ in range(3):
            t = time.monotonic()
            board.tcr("ps")
            ts.append(time.monotonic() - t)
        board.ssh_opts = saved
        out[label] = sorted(ts)[1]
    return out


def write_docs(arch: str, emulated: bool, nums: Dict[str, Dict[str, float]], stages: List[tuple]) -> None:
    from bench.common import write_section

    def f(x: float, unit: str = "s") -> str:
        return "n/a" if x != x else (f"{x:.2f} {unit}" if unit else f"{x:.1f}")

    lines = [f"## Board ({arch}, {'emulated: qemu TCG, ' if emulated else ''}make board-test)", ""]
    lines.append("Measured on the board by `make board-test` (test/board/board_test.py); each ratio is "
                 "taken within one run, interleaved, so the emulator's speed cancels out. "
                 + (f"The emulated board is {ARCHES[arch][2]} {' '.join(ARCHES[arch][3])} -m 1024 -smp 2 "
                    "without KVM (TCG) on a shared 2-core PC: absolute times are ~10-30x a real board's, "
                    "the ratios are what carries over." if emulated else ""))
    lines.append("")
    lines.append("| init | tcr run --rm | crun run | ratio | tcr run --rm (bridge) | tcr ps | python3 -I -S "
                 "| ratio | tcrd RSS idle | 10 containers | boot to tcrd / to sshd "
                 "| tcr -H ps shared / not |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    nan = float("nan")
    for init, n in nums.items():
        def g(k: str) -> float:
            return n.get(k, nan)  # noqa: B023 - used right here, in this iteration
        run, crun, ps, py = g("tcr run --rm"), g("crun run"), g("tcr ps"), g("python3 -I -S -c pass")
        lines.append(
            f"| {init} | {f(run)} | {f(crun)} | {run / crun:.1f}x | {f(g('tcr run --rm (bridge network)'))} "
            f"| {f(ps)} | {f(py)} | {ps / py:.1f}x | {f(g('tcrd RSS idle (MB)'), 'MB')} "
            f"| {f(g('tcrd RSS with 10 containers (MB)'), 'MB')} "
            f"| {f(g('boot-to-ready (s, kernel start to tcrd socket)'))} / "
            f"{f(g('boot-to-sshd (s, kernel start to sshd pid file)'))} "
            f"| {f(g('tcr -H ps (shared connection)'))} / {f(g('tcr -H ps (no sharing)'))} |")
    lines.append("")
    lines.append("Stages of that run: " + ", ".join(f"{n} {d:.0f} s" for n, d, _ok in stages) + ".")
    write_section(lines[0][3:], "\n".join(lines) + "\n")


def serve(board: Board) -> None:
    """--serve: the emulated board stays up for `make board-test BOARD=...`, reached the way a
    real board is; a reboot inside it (qemu has -no-reboot) boots it again. Ends on SIGINT or
    SIGTERM (the board is then shut down by main's finally)."""
    stop: List[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stop.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    board.boot("systemd")
    assert board.qemu is not None and board.emu is not None
    say("the board is up; from another shell, run the scenario against it as against a real board:\n"
        f"  make board-test ARCH={board.emu['arch']} BOARD={board.url} \\\n"
        f"    TCR_SSH_OPTS='{board.ssh_opts}' \\\n"
        f"    TCR_BOARD_HTTP=127.0.0.1:{board.http_port}\n"
        "Ctrl-C (or SIGTERM) shuts it down.")
    while not stop:
        try:
            board.qemu.wait(timeout=2)
        except subprocess.TimeoutExpired:
            continue
        if not stop:
            say("the board went down (a reboot): booting it again")
            board._start_qemu(board.init)


# ---- main ---------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default=os.environ.get("ARCH") or "arm64", choices=sorted(ARCHES))
    ap.add_argument("--board", default=os.environ.get("BOARD") or "", help="ssh://root@board: a real board")
    ap.add_argument("--cache", default=os.environ.get("TCR_BOARD_CACHE") or "/var/cache/tcr-board")
    ap.add_argument("--docs", action="store_true", help="write the numbers into docs/benchmarks.md")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per timed command on the board")
    ap.add_argument("--serve", action="store_true",
                    help="boot the emulated board and keep it up for a run with --board (Ctrl-C ends it)")
    ap.add_argument("--skip", default="",
                    help="comma list of stages to skip: powercut, powercut-systemd, verity, busybox, bench")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    if os.geteuid() != 0 and not a.board:
        print("board-test: the emulated board needs root (mmdebstrap, binfmt_misc, mkfs -d owners)")
        return 2
    os.makedirs(a.cache, exist_ok=True)
    work = os.path.join(a.cache, f"run-{a.arch}") if not a.board else tempfile.mkdtemp(prefix="tcr-board-")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work, mode=0o700)
    board: Optional[Board] = None
    nums: Dict[str, Dict[str, float]] = {}
    try:
        if a.board:
            board = Board(a.board, work, os.environ.get("TCR_SSH_OPTS", ""))
        else:
            with stage("root file system (mmdebstrap, cached)"):
                cached = cached_rootfs(a.arch, a.cache)
            key = os.path.join(work, "id_ed25519")
            must(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
            with open(key + ".pub") as f:
                pub = f.read()
            with stage("install tcr (make install BYTECODE_ONLY=1 DESTDIR) and make the disk"):
                disk = make_disk(cached, work, pub)
            ssh_port = free_port()
            board = Board(f"ssh://root@127.0.0.1:{ssh_port}", work,
                          f"-i {key} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
                          f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=60",
                          emulated={"arch": a.arch, "ssh_port": ssh_port, "http_port": free_port(),
                                    "kernel": os.path.join(cached, "vmlinuz"),
                                    "initrd": os.path.join(cached, "initrd.img"), "disk": disk})
        if a.serve and board.emu:
            serve(board)
            return 0
        with stage(f"images for {a.arch} (tcr-create-image from an offline OCI layout)"):
            images = build_images(a.arch, a.cache, work)
        with stage("boot (systemd)" if not a.board else "reach the board"):
            board.boot("systemd")
        with stage("scenario (systemd, cgroup v2)" if not a.board else "scenario"):
            scenario(board, images)
        if "bench" not in skip:
            with stage("numbers on the board"):
                nums[board.init] = numbers(board, images, a.reps)
                say("numbers: " + json.dumps({k: round(v, 3) for k, v in nums[board.init].items()}))
        if not a.board and not {"powercut", "powercut-systemd"} & skip:
            with stage("power cuts"):
                power_cuts(board, images)
        if "verity" not in skip:
            with stage("fs-verity"):
                verity(board, images, kernel_has_verity(cached) if not a.board else None)
        if not a.board and "busybox" not in skip:
            with stage("reboot into BusyBox init (S95tcrd)"):
                board.reboot("busybox")
            with stage("scenario (BusyBox init, cgroup v2)"):
                scenario(board, images)
            if "bench" not in skip:
                with stage("numbers on the board (BusyBox init)"):
                    nums["busybox"] = numbers(board, images, a.reps)
                    say("numbers: " + json.dumps({k: round(v, 3) for k, v in nums["busybox"].items()}))
            if "powercut" not in skip:
                with stage("power cut (BusyBox init)"):
                    board.tcr("image", "load", "-q", images[0])
                    board.tcr("run", "-d", "--name", "bb-always", "--restart", "always", "board:latest",
                              "sleep", "100000")
                    board.power_cut()
                    after_power_cut(board, "under BusyBox init", ["bb-always"], {})
                    board.tcr("rm", "-f", "bb-always")
                    board.tcr("image", "rm", "board:latest")
    except Failed as exc:
        check("board-test ran to the end", False, str(exc))
    finally:
        if board is not None:
            with stage("shut down"):
                board.shutdown()
        if a.board:
            shutil.rmtree(work, ignore_errors=True)  # keys and images of this run; the board keeps nothing
    if nums and a.docs:
        write_docs(a.arch, not a.board, nums, STAGES)
    failed = [c for c in CHECKS if not c[1]]
    say("stages: " + ", ".join(f"{n}: {d:.1f} s{'' if ok else ' (FAILED)'}" for n, d, ok in STAGES))
    passed = len(CHECKS) - len(failed)
    say(f"board-test: {passed}/{len(CHECKS)} checks passed in {time.monotonic() - T0:.0f} s")
    for what, _ok, detail in failed:
        say(f"FAILED: {what}: {detail.strip()[:300]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
