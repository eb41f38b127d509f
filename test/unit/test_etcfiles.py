"""Generated /etc/hostname, /etc/hosts, /etc/resolv.conf."""

from tcr.containers import etcfiles as E


def test_hosts():
    t = E.hosts_text("web", "web", "10.88.0.5", [("10.88.0.6", ["db", "tcr-db"]), ("10.88.0.5", ["x"])])
    assert t.startswith("127.0.0.1\tlocalhost\n")
    assert "10.88.0.5\tweb\n" in t
    assert "10.88.0.6\tdb tcr-db\n" in t
    assert "\tx\n" not in t  # our own ip is not repeated for peers
    assert "127.0.1.1\tabc myname\n" in E.hosts_text("abc", "myname")


def test_resolv():
    assert E.resolv_text("nat", gateway="10.88.0.1") == "nameserver 10.88.0.1\n"
    host = "# comment\nnameserver 192.0.2.53\nsearch lan"
    assert E.resolv_text("host", host_text=host) == host + "\n"
    assert "\nnameserver" not in "\n" + E.resolv_text("none")
    assert E.host_resolvers(host) == ["192.0.2.53"]


def test_write_all_keeps_inode(tmp_path):
    d = str(tmp_path / "etc")
    E.write_all(d, "h1", "hosts1\n", "r1\n")
    ino = (tmp_path / "etc" / "hosts").stat().st_ino
    E.write_all(d, "h2", "hosts2\n", "r2\n")
    assert (tmp_path / "etc" / "hosts").stat().st_ino == ino  # bind mounts see the update
    assert (tmp_path / "etc" / "hostname").read_text() == "h2\n"
