"""Re-record the DNS samples in this folder (needs root: real clients only talk to port 53).

Real clients send queries to a recorder on 127.0.0.66:53 (loopback only): busybox nslookup (A and
AAAA), dnsperf plain and with EDNS/DO. dnsmasq answers the same queries for a local name, and
that reply is kept as a reference. Hand-made malformed packets are added. The expected replies of
our forwarder are written next to them; index.json describes every file.

    /tmp/tv/bin/python test/samples/dns/record.py
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "target"))

from tcr.common.run import run  # noqa: E402
from tcr.network.dns import packet  # noqa: E402
from tcr.network.dns.forwarder import Forwarder, Pending, Zone  # noqa: E402

REC_IP = "127.0.0.66"
DNSMASQ_IP = "127.0.0.67"
NAMES = {"web": "10.88.0.5", "tcr-web": "10.88.0.5"}


def record_queries(argv_list):
    """Run each client against a recorder that answers (so clients finish fast); return the queries."""
    got = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((REC_IP, 53))
    sock.settimeout(0.1)
    stop = threading.Event()
    zone = Zone(NAMES)
    fwd = Forwarder(lambda: [])  # no upstreams: everything not local gets SERVFAIL at once

    def serve():
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(4096)
            except socket.timeout:
                continue
            got.append(data)
            act = fwd.handle_query(data, addr, zone)
            if isinstance(act, bytes):
                sock.sendto(act, addr)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        for argv in argv_list:
            run(argv, check=False, timeout=20)
        time.sleep(0.2)
    finally:
        stop.set()
        t.join()
        sock.close()
    return got


def dnsmasq_reply(query):
    proc = subprocess.Popen(["dnsmasq", "--no-daemon", "--port=53", f"--listen-address={DNSMASQ_IP}",
                             "--bind-interfaces", "--no-resolv", "--no-hosts", "--address=/web/10.88.0.5",
                             "--local-ttl=5", "--pid-file=", "--user=root", "--group=root"])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            for _ in range(40):
                try:
                    s.sendto(query, (DNSMASQ_IP, 53))
                    return s.recvfrom(4096)[0]
                except (socket.timeout, ConnectionRefusedError):
                    continue
        raise RuntimeError("dnsmasq did not answer")
    finally:
        proc.terminate()
        proc.wait()


def main():
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("web A\nexample.com A\nweb AAAA\n")
        data_file = f.name
    try:
        bb = record_queries([["busybox", "nslookup", "web", REC_IP],
                             ["busybox", "nslookup", "example.com", REC_IP]])
        plain = record_queries([["dnsperf", "-s", REC_IP, "-d", data_file, "-n", "1"]])
        edns = record_queries([["dnsperf", "-s", REC_IP, "-d", data_file, "-n", "1", "-D"]])
    finally:
        os.unlink(data_file)

    def first(qs, name, qtype):
        for q in qs:
            p = packet.parse_query(q)
            if p and p.name == name + "." and p.qtype == qtype:
                return q
        raise RuntimeError(f"no {name} {qtype} query recorded")

    samples = {
        "q_busybox_a_local": (first(bb, "web", 1), "busybox nslookup"),
        "q_busybox_aaaa_local": (first(bb, "web", 28), "busybox nslookup"),
        "q_busybox_a_forward": (first(bb, "example.com", 1), "busybox nslookup"),
        "q_dnsperf_a_local": (first(plain, "web", 1), "dnsperf"),
        "q_dnsperf_aaaa_local": (first(plain, "web", 28), "dnsperf"),
        "q_dnsperf_a_forward": (first(plain, "example.com", 1), "dnsperf"),
        "q_dnsperf_edns_a_local": (first(edns, "web", 1), "dnsperf -D (EDNS, DO)"),
        "q_dnsperf_edns_a_forward": (first(edns, "example.com", 1), "dnsperf -D (EDNS, DO)"),
    }
    base = samples["q_busybox_a_local"][0]
    samples.update({
        "bad_short_header": (base[:11], "hand-made"),
        "bad_truncated_question": (base[:len(base) - 3], "hand-made"),
        "bad_qdcount_2": (base[:4] + b"\x00\x02" + base[6:], "hand-made"),
        "bad_response_to_us": (base[:2] + bytes([base[2] | 0x80]) + base[3:], "hand-made"),
        "bad_pointer_in_question": (base[:12] + b"\xc0\x0c" + base[-4:], "hand-made"),
        "bad_label_too_long": (base[:12] + b"\x40" + b"a" * 64 + b"\x00" + base[-4:], "hand-made"),
        "notimp_opcode_status": (base[:2] + bytes([(base[2] & 0x87) | (2 << 3)]) + base[3:], "hand-made"),
    })
    zone = Zone(NAMES)
    fwd = Forwarder(lambda: [("192.0.2.53", 53)])
    index = []
    for name, (data, source) in samples.items():
        with open(os.path.join(HERE, name + ".bin"), "wb") as f:
            f.write(data)
        entry = {"file": name + ".bin", "source": source}
        q = packet.parse_query(data)
        entry["query"] = q.to_dict() if q else None
        act = fwd.handle_query(data, ("127.0.0.1", 5353), zone)
        if act is None:
            entry["action"] = "drop"
        elif isinstance(act, Pending):
            entry["action"] = "forward"
        else:
            entry["action"] = "reply"
            reply_name = "r_" + name.split("_", 1)[1] + ".bin"
            with open(os.path.join(HERE, reply_name), "wb") as f:
                f.write(act)
            entry["reply"] = reply_name
        index.append(entry)
    ref = dnsmasq_reply(samples["q_busybox_a_local"][0])
    with open(os.path.join(HERE, "dnsmasq_busybox_a_local.bin"), "wb") as f:
        f.write(ref)
    index.append({"file": "dnsmasq_busybox_a_local.bin", "source": "dnsmasq reply to q_busybox_a_local",
                  "reference_for": "q_busybox_a_local.bin"})
    with open(os.path.join(HERE, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    print(f"wrote {len(index)} samples to {HERE}")


if __name__ == "__main__":
    main()
