"""tcr.network.ipaddr against the standard ipaddress module (differential, hypothesis)."""

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcr.network import ipaddr

BAD_OCTETS = ["", "00", "01", "256", "999", "1a", " 1", "+1", "\u0663"]
octet = st.one_of(st.integers(0, 255).map(str), st.sampled_from(BAD_OCTETS))
v4_text = st.lists(octet, min_size=3, max_size=5).map(".".join)
cidr = st.tuples(v4_text, st.one_of(st.none(), st.integers(0, 33).map(str), st.sampled_from(["", "x", "08"])))


def std(fn, *a, **kw):
    try:
        return fn(*a, **kw)
    except ValueError:
        return None


@settings(max_examples=3000, deadline=None)
@given(cidr, st.booleans())
def test_networks_parse_and_compute_like_ipaddress(c, strict):
    text = c[0] if c[1] is None else f"{c[0]}/{c[1]}"
    want = std(ipaddress.IPv4Network, text, strict=strict)
    got = std(ipaddr.IPv4Network, text, strict=strict)
    assert (want is None) == (got is None), text
    if want is not None:
        assert str(got) == str(want) and got.prefixlen == want.prefixlen
        assert int(got.network_address) == int(want.network_address)
        assert int(got.broadcast_address) == int(want.broadcast_address)
        for prop in ("is_loopback", "is_multicast", "is_link_local", "is_reserved", "is_unspecified"):
            assert getattr(got, prop) == getattr(want, prop), (text, prop)


nets = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)).map(
    lambda t: str(ipaddress.IPv4Network((t[0], t[1]), strict=False)))


@settings(max_examples=2000, deadline=None)
@given(nets, nets)
def test_overlaps_like_ipaddress(a, b):
    assert ipaddr.IPv4Network(a).overlaps(ipaddr.IPv4Network(b)) == \
        ipaddress.IPv4Network(a).overlaps(ipaddress.IPv4Network(b))


@settings(max_examples=2000, deadline=None)
@given(st.one_of(v4_text, st.sampled_from(["::", "::1", "fe80::1", "ff02::1", "2001:db8::1", "::ffff:1.2.3.4",
                                           "1::2::3", "gggg::", "1.2.3.4/32", ""])))
def test_addresses_like_ipaddress(text):
    want = std(ipaddress.ip_address, text)
    got = std(ipaddr.ip_address, text)
    assert (want is None) == (got is None), text
    if want is not None:
        assert got.version == want.version
        assert got.is_unspecified == want.is_unspecified and got.is_multicast == want.is_multicast
        assert got.packed == want.packed
        if want.version == 4:
            assert str(got) == str(want)


def test_address_arithmetic_and_containment():
    net = ipaddr.IPv4Network("10.88.0.0/24")
    assert str(net.network_address + 1) == "10.88.0.1"
    assert str(ipaddr.IPv4Address(int(ipaddr.IPv4Address("10.0.0.255")) + 1)) == "10.0.1.0"
    assert ipaddr.IPv4Address("10.88.0.7") in net and ipaddr.IPv4Address("10.88.1.0") not in net
    assert ipaddr.IPv4Network("10.88.0.0/24") == ipaddr.IPv4Network("10.88.0.0/24")
    assert len({ipaddr.IPv4Network("10.88.0.0/24"), ipaddr.IPv4Network("10.88.0.0/24")}) == 1
    with pytest.raises(ValueError):
        ipaddr.IPv4Address(2**32)
