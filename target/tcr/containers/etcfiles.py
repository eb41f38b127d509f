"""Per-container /etc/hostname, /etc/hosts and /etc/resolv.conf: pure text builders + a writer.

resolv.conf: NAT network -> the gateway (tcr's DNS forwarder there); host network -> the host's
own resolv.conf; none -> no nameserver at all (lookups fail fast instead of timing out).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Iterable, List, Optional, Tuple

HOSTS_HEADER = ("127.0.0.1\tlocalhost\n"
                "::1\tlocalhost ip6-localhost ip6-loopback\n"
                "fe00::0\tip6-localnet\n"
                "ff00::0\tip6-mcastprefix\n"
                "ff02::1\tip6-allnodes\n"
                "ff02::2\tip6-allrouters\n")


def hostname_text(hostname: str) -> str:
    return hostname + "\n"


def hosts_text(hostname: str, name: str, ip: str = "",
               others: Iterable[Tuple[str, List[str]]] = ()) -> str:
    """localhost lines, the container's own names (on its IP, or 127.0.1.1 without one), peers."""
    own = [hostname] + ([name] if name and name != hostname else [])
    out = HOSTS_HEADER + f"{ip or '127.0.1.1'}\t{' '.join(own)}\n"
    for peer_ip, names in others:
        if peer_ip and names and peer_ip != ip:
            out += f"{peer_ip}\t{' '.join(names)}\n"
    return out


def extra_hosts(add_hosts: Iterable[str]) -> List[Tuple[str, List[str]]]:
    """--add-host NAME:IP entries as (ip, [name]) lines, in order."""
    out = []
    for item in add_hosts:
        name, _, ip = item.partition(":")
        out.append((ip, [name]))
    return out


def with_dns(text: str, dns: Iterable[str] = (), search: Iterable[str] = (),
             options: Iterable[str] = ()) -> str:
    """Apply --dns (replaces the nameservers), --dns-search and --dns-option (replace those lines)."""
    dns, search, options = list(dns), list(search), list(options)
    if not (dns or search or options):
        return text
    lines = [ln for ln in text.splitlines() if not (
        (dns and ln.startswith("nameserver")) or (search and ln.startswith(("search", "domain")))
        or (options and ln.startswith("options")) or ln.startswith("# no network"))]
    lines += [f"nameserver {s}" for s in dns]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def host_resolvers(text: str) -> List[str]:
    """nameserver lines of a resolv.conf."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            out.append(parts[1])
    return out


def resolv_text(mode: str, gateway: str = "", host_text: str = "",
                search: Optional[List[str]] = None) -> str:
    if mode == "nat":
        lines = [f"nameserver {gateway}"] if gateway else []
        if search:
            lines.append("search " + " ".join(search))
        return "\n".join(lines) + "\n" if lines else ""
    if mode == "host":
        return host_text if host_text.endswith("\n") or not host_text else host_text + "\n"
    return "# no network: no nameservers\n"


def read_host_resolv(path: str = "/etc/resolv.conf") -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def write_all(etc_dir: str, hostname: str, hosts: str, resolv: str) -> None:
    """Write the three files in place (no rename, no fsync).

    They are bind-mounted into the container by inode: rewriting in place keeps a running
    container seeing updates, and they are regenerated at every start, so durability is moot.
    """
    os.makedirs(etc_dir, exist_ok=True)
    for name, text in (("hostname", hostname_text(hostname)), ("hosts", hosts), ("resolv.conf", resolv)):
        with open(os.path.join(etc_dir, name), "w") as f:
            f.write(text)
