"""The nft ruleset text for 0, 1 and 2 networks (pure)."""

from tcr.network.nftplan import ruleset
from tcr.network.records import Lease, NetworkRecord, PortMapping

WEB = Lease("c1" * 8, "10.88.0.2", "02:42:0a:58:00:02", "web",
            (PortMapping(8080, 80), PortMapping(5353, 53, "udp", "127.0.0.1")))
N1 = NetworkRecord("tcr_default", "10.88.0.0/24", "10.88.0.1", "tcr0", leases=(WEB,))
N2 = NetworkRecord("lab", "10.88.1.0/24", "10.88.1.1", "tcr-0123abcd")


def test_no_networks_only_removes_the_table():
    assert ruleset("tcr", []) == "table ip tcr {}\ndelete table ip tcr\n"


def test_one_network_with_ports():
    text = ruleset("tcr", [N1])
    lines = [ln.strip() for ln in text.splitlines()]
    # one transaction: ensure, delete, recreate
    assert lines[:3] == ["table ip tcr {}", "delete table ip tcr", "table ip tcr {"]
    assert text.count("table ip tcr {") == 2
    assert "type nat hook prerouting priority -100; policy accept;" in lines
    assert "type nat hook output priority -100; policy accept;" in lines
    assert lines.count("fib daddr type local jump published") == 2
    assert 'tcp dport 8080 dnat to 10.88.0.2:80 comment "c1c1c1c1c1c1"' in lines
    assert 'ip daddr 127.0.0.1 udp dport 5353 dnat to 10.88.0.2:53 comment "c1c1c1c1c1c1"' in lines
    assert 'oifname "tcr0" ip saddr 127.0.0.0/8 masquerade' in lines
    assert 'oifname "tcr0" ip saddr 10.88.0.0/24 ct status dnat masquerade' in lines
    assert 'ip saddr 10.88.0.0/24 oifname != "tcr0" masquerade' in lines
    fwd = lines[lines.index("chain forward {"):]
    assert fwd[2:7] == [
        'oifname "tcr0" ct state established,related accept',
        'oifname "tcr0" ct status dnat accept',
        'iifname "tcr0" accept',
        'oifname "tcr0" drop',
        "}",
    ]
    assert "drop" not in "".join(ln for ln in lines if "iifname" in ln)  # no isolation with one net


def test_two_networks_are_isolated_and_ordered():
    text = ruleset("tcr_ab12", [N1, N2])
    lines = [ln.strip() for ln in text.splitlines()]
    assert lines[0] == "table ip tcr_ab12 {}"
    both = '{ "tcr-0123abcd", "tcr0" }'
    assert f"oifname {both} ct state established,related accept" in lines
    a = lines.index('iifname "tcr-0123abcd" oifname "tcr0" drop')
    b = lines.index('iifname "tcr0" oifname "tcr-0123abcd" drop')
    dnat = lines.index(f"oifname {both} ct status dnat accept")
    accept = lines.index(f"iifname {both} accept")
    assert dnat < a < b < accept  # published ports win over isolation; isolation before accept
    assert 'ip saddr 10.88.1.0/24 oifname != "tcr-0123abcd" masquerade' in lines
    # deterministic: same input, same text (so unchanged state is not re-applied)
    assert ruleset("tcr_ab12", [N2, N1]) == text
