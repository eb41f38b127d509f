"""-p parsing and conflicts (pure)."""

import pytest

from tcr.common.errors import InUse, InvalidArgument
from tcr.network.ports import check_conflicts, parse_all, parse_publish
from tcr.network.records import PortMapping as P


def test_forms():
    assert parse_publish("8080:80") == [P(8080, 80)]
    assert parse_publish("127.0.0.1:8080:80/udp") == [P(8080, 80, "udp", "127.0.0.1")]
    assert parse_publish("0.0.0.0:53:53/UDP") == [P(53, 53, "udp")]
    assert parse_publish("80") == [P(0, 80)]
    assert parse_publish("0:80") == [P(0, 80)]  # 0 = pick a free port, as docker does
    assert parse_publish("10.0.0.1::80") == [P(0, 80, "tcp", "10.0.0.1")]
    assert parse_publish("8000-8002:80-82") == [P(8000, 80), P(8001, 81), P(8002, 82)]


@pytest.mark.parametrize("bad", [
    "", "x", "8080:", ":80", "8080:0", "70000:80", "80:70000", "8080:80/sctp", "1.2.3:80:80",
    "300.1.1.1:80:80", "[::1]:80:80", "a:b:c:d", "8000-8001:80", "80-81", "9-1:9-1", "1-2000:1-2000",
])
def test_errors(bad):
    with pytest.raises(InvalidArgument):
        parse_publish(bad)


def test_conflicts():
    existing = [("c1", P(8080, 80)), ("c1", P(53, 53, "udp", "127.0.0.1"))]
    with pytest.raises(InUse, match="c1"):
        check_conflicts(existing, [P(8080, 81)])
    with pytest.raises(InUse):
        check_conflicts(existing, [P(8080, 81, "tcp", "127.0.0.2")])  # all-address binding covers it
    with pytest.raises(InUse):
        check_conflicts(existing, [P(53, 53, "udp")])
    check_conflicts(existing, [P(8080, 80, "udp"), P(53, 53, "udp", "127.0.0.2"), P(53, 53)])
    check_conflicts(existing, [P(8080, 80)], owner="c1")  # a container never clashes with itself
    with pytest.raises(InvalidArgument):
        parse_all(["8080:80", "8080:81"])
    assert parse_all(["80", "80"]) == [P(0, 80), P(0, 80)]  # both get their own free port later
