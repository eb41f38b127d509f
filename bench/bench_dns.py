"""DNS queries/s: tcr's forwarder vs dnsmasq, measured with dnsperf on loopback in the same run.

1. local names: dnsperf -> tcr DnsService (127.0.0.2) vs dnsperf -> dnsmasq --address=... (127.0.0.4)
2. forwarded names: dnsperf -> tcr -> stub upstream vs dnsperf -> dnsmasq (cache off) -> stub upstream;
   the stub upstream is a dnsmasq answering fixed A records on 127.0.0.3.
Each dnsperf run is bounded (-l SECONDS). Results are printed and written to the `## DNS` section of
docs/benchmarks.md (other sections are left alone). Only loopback addresses are used.

    /tmp/tv/bin/python bench/bench_dns.py [--seconds 5] [--no-write]
"""

import argparse
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "target"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from tcr.common.run import run  # noqa: E402

TCR_IP = "127.0.0.2"
STUB_IP = "127.0.0.3"
DNSMASQ_IP = "127.0.0.4"
LOCAL_NAMES = {"web": "10.88.0.5", "tcr-web": "10.88.0.5", "0123456789ab": "10.88.0.5", "db": "10.88.0.6"}

TCR_SERVER = r"""
import sys, signal
sys.path.insert(0, sys.argv[1])
from tcr.daemon.loop import EventLoop
from tcr.network.dns.server import DnsService
loop = EventLoop()
svc = DnsService(loop, sys.argv[2], upstream_port=int(sys.argv[4]))
svc.listen(sys.argv[3], int(sys.argv[4]))
svc.set_names(sys.argv[3], {n: ip for n, ip in (kv.split("=") for kv in sys.argv[5].split(","))})
loop.add_signal_handler(signal.SIGTERM, loop.stop)
print("ready", flush=True)
loop.run()
print(svc.metrics(), file=sys.stderr, flush=True)
svc.close()
"""


def ensure_tools():
    missing = [pkg for tool, pkg in (("dnsperf", "dnsperf"), ("dnsmasq", "dnsmasq-base"))
               if not shutil.which(tool)]
    if missing:
        print(f"installing {' '.join(missing)} ...", flush=True)
        run(["apt-get", "update", "-qq"], timeout=600)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "install", "-y", "-qq", *missing], env=env, timeout=600)


def free_port():
    for _ in range(100):
        port = random.randint(20000, 60000)
        try:
            for ip in (TCR_IP, STUB_IP, DNSMASQ_IP):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind((ip, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def wait_answer(ip, port, timeout=10.0):
    query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03web\x00\x00\x01\x00\x01"
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                s.sendto(query, (ip, port))
                s.recvfrom(512)
                return
            except (socket.timeout, ConnectionRefusedError):
                continue
    raise RuntimeError(f"no DNS answer from {ip}:{port}")


def dnsmasq(ip, port, *extra):
    argv = ["dnsmasq", "--no-daemon", f"--port={port}", f"--listen-address={ip}", "--bind-interfaces",
            "--no-hosts", "--pid-file=", "--user=root", "--group=root", "--log-facility=/dev/null", *extra]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def dnsperf(ip, port, datafile, seconds):
    argv = ["dnsperf", "-s", ip, "-p", str(port), "-d", datafile, "-l", str(seconds), "-c", "4", "-q", "200"]
    r = run(argv, timeout=seconds + 60)
    m = re.search(r"Queries per second:\s+([0-9.]+)", r.stdout)
    lost = re.search(r"Queries lost:\s+(\d+)", r.stdout)
    if not m:
        raise RuntimeError("dnsperf output not understood:\n" + r.stdout)
    return float(m.group(1)), int(lost.group(1)) if lost else -1


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    ensure_tools()
    port = free_port()
    procs = []
    with tempfile.TemporaryDirectory(prefix="tcr-bench-dns-") as tmp:
        local_file = os.path.join(tmp, "local.txt")
        with open(local_file, "w") as f:
            f.write("web A\ntcr-web A\n0123456789ab A\ndb A\nweb AAAA\n")
        fwd_file = os.path.join(tmp, "fwd.txt")
        with open(fwd_file, "w") as f:
            f.write("".join(f"host{i}.fwd.test A\n" for i in range(20)))
        resolv = os.path.join(tmp, "resolv.conf")
        with open(resolv, "w") as f:
            f.write(f"nameserver {STUB_IP}\n")
        addresses = [f"--address=/{n}/{ip}" for n, ip in LOCAL_NAMES.items()]
        try:
            # Stub upstream: answers *.fwd.test with a fixed A record, never caches-misses.
            procs.append(dnsmasq(STUB_IP, port, "--no-resolv", "--address=/fwd.test/192.0.2.10"))
            # dnsmasq as the peer: local names + forwarding to the stub, cache off (a pure forwarder).
            procs.append(dnsmasq(DNSMASQ_IP, port, "--no-resolv", "--cache-size=0", "--local-ttl=5",
                                 f"--server={STUB_IP}#{port}", *addresses))
            tcr = subprocess.Popen(
                [sys.executable, "-c", TCR_SERVER, os.path.join(ROOT, "target"), resolv, TCR_IP, str(port),
                 ",".join(f"{n}={ip}" for n, ip in LOCAL_NAMES.items())],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append(tcr)
            for ip in (STUB_IP, DNSMASQ_IP, TCR_IP):
                wait_answer(ip, port)
            results = {}
            for label, datafile in (("local", local_file), ("forwarded", fwd_file)):
                for who, ip in (("tcr", TCR_IP), ("dnsmasq", DNSMASQ_IP)):
                    qps, lost = dnsperf(ip, port, datafile, args.seconds)
                    results[(label, who)] = (qps, lost)
                    print(f"{label:9s} {who:8s} {qps:10.0f} q/s  lost {lost}", flush=True)
        finally:
            for p in reversed(procs):
                stop(p)
        tcr_metrics = tcr.stderr.read().strip().splitlines()[-1:] if tcr.stderr else []
    rows = []
    for label in ("local", "forwarded"):
        t, d = results[(label, "tcr")][0], results[(label, "dnsmasq")][0]
        ratio = t / d if d else 0.0
        rows.append((label, t, d, ratio, results[(label, "tcr")][1], results[(label, "dnsmasq")][1]))
        print(f"{label}: tcr/dnsmasq = {ratio:.2f}x")
    if tcr_metrics:
        print("tcr metrics:", tcr_metrics[0])
    if not args.no_write:
        write_section(rows, args.seconds)


def write_section(rows, seconds):
    lines = [
        "## DNS",
        "",
        f"`bench/bench_dns.py`: dnsperf (-c 4 -q 200, {seconds} s per run) on loopback, same run; "
        f"{common.machine_desc()}.",
        "dnsmasq has `--cache-size=0` for the forwarded case (a pure forwarder, like tcr); the upstream",
        "stub is a dnsmasq answering fixed A records. Target: tcr >= 1.0x dnsmasq for local names.",
        "",
        "| names | tcr q/s | dnsmasq q/s | tcr / dnsmasq | lost (tcr / dnsmasq) |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, t, d, ratio, lt, ld in rows:
        lines.append(f"| {label} | {t:,.0f} | {d:,.0f} | {ratio:.2f}x | {lt} / {ld} |")
    common.write_section("DNS", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
