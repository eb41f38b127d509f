"""Flattening logic on synthetic layers: whiteouts, opaque dirs, hard links, unsafe entries."""

import io
import tarfile

import pytest

from tcr_host.flatten import Tree, UnsafeEntry, normalize, out_info, plan, scan_layer
from tcr_host.layers import MalformedLayer
from test.fixtures.oci_layout import tar_entry as E


def layer_tar(entries) -> tarfile.TarFile:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return tarfile.open(fileobj=buf, mode="r|", encoding="utf-8")


def build(*layers) -> Tree:
    tree = Tree()
    for i, entries in enumerate(layers):
        scan_layer(tree, i, layer_tar(entries), f"sha256:{i:064x}")
    return tree


def files(tree: Tree):
    return {p for p in tree.nodes if p}


BASE = [E("etc/"), E("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"), E("data/"),
        E("data/gone.txt", b"x"), E("data/opq/"), E("data/opq/old.txt", b"old"),
        E("data/a", b"hard", uid=1000, gid=1000, mode=0o640),
        E("data/b", type=tarfile.LNKTYPE, linkname="data/a"),
        E("data/link", type=tarfile.SYMTYPE, linkname="a")]


def test_whiteout_and_opaque_remove_lower_entries_only():
    tree = build(BASE, [E("data/.wh.gone.txt", b""), E("data/opq/"), E("data/opq/.wh..wh..opq", b""),
                        E("data/opq/new.txt", b"new")])
    assert "data/gone.txt" not in tree.nodes
    assert "data/opq/old.txt" not in tree.nodes
    assert "data/opq/new.txt" in tree.nodes
    assert not any(".wh." in p for p in tree.nodes)


def test_whiteout_of_directory_removes_subtree():
    tree = build(BASE, [E("data/.wh.opq", b"")])
    assert not any(p.startswith("data/opq") for p in tree.nodes)
    assert "data/opq" not in tree.children


def test_hard_link_kept_and_planned_as_link():
    tree = build(BASE)
    assert tree.nodes["data/a"].inode is tree.nodes["data/b"].inode
    p = plan(tree)
    a = p.data[0][6]  # member 6 of the layer holds the bytes
    assert (a.name, a.uid, a.gid, a.mode) == ("bundle/rootfs/data/a", 1000, 1000, 0o640)
    assert {ti.name: ti.linkname for ti in p.links} == {"bundle/rootfs/data/b": "bundle/rootfs/data/a"}
    assert all(ti.type == tarfile.LNKTYPE and ti.size == 0 for ti in p.links)


def test_hard_link_survives_removal_of_its_target():
    tree = build(BASE, [E("data/.wh.a", b"")])
    p = plan(tree)
    b = p.data[0][6]  # data/a's bytes now come out under the surviving name
    assert (b.name, b.size, b.uid, b.mode) == ("bundle/rootfs/data/b", 4, 1000, 0o640)
    assert "data/a" not in tree.nodes and not p.links


def test_hard_link_keeps_old_content_when_target_replaced():
    tree = build(BASE, [E("data/a", b"replaced!")])
    p = plan(tree)
    assert p.data[1][0].name == "bundle/rootfs/data/a" and p.data[1][0].size == 9
    assert p.data[0][6].name == "bundle/rootfs/data/b" and p.data[0][6].size == 4
    assert not p.links


def test_hard_link_across_layers():
    tree = build(BASE, [E("data/c", type=tarfile.LNKTYPE, linkname="data/a")])
    assert tree.nodes["data/c"].inode is tree.nodes["data/a"].inode
    assert {ti.name for ti in plan(tree).links} == {"bundle/rootfs/data/b", "bundle/rootfs/data/c"}


def test_hard_link_to_missing_target_is_malformed():
    with pytest.raises(MalformedLayer, match="hard link"):
        build([E("x", type=tarfile.LNKTYPE, linkname="nope")])


@pytest.mark.parametrize("name", ["../etc/passwd", "a/../../x", "./../x", "a/b/../../../c"])
def test_traversal_refused(name):
    with pytest.raises(UnsafeEntry, match="traversal"):
        build([E(name, b"x")])


def test_absolute_path_refused():
    with pytest.raises(UnsafeEntry, match="absolute"):
        build([E("/etc/shadow", b"x")])


def test_traversal_in_hard_link_target_refused():
    with pytest.raises(UnsafeEntry):
        build(BASE, [E("data/x", type=tarfile.LNKTYPE, linkname="../../etc/shadow")])


@pytest.mark.parametrize("target", ["../../..", "/../../etc", "../outside", "/.."])
def test_entry_under_escaping_symlink_refused(target):
    with pytest.raises(UnsafeEntry, match="escapes"):
        build([E("esc", type=tarfile.SYMTYPE, linkname=target)], [E("esc/passwd", b"x")])


def test_entry_under_in_root_symlink_lands_at_target():
    tree = build([E("run/"), E("var/"), E("var/run", type=tarfile.SYMTYPE, linkname="/run"),
                  E("lib", type=tarfile.SYMTYPE, linkname="usr/lib")],
                 [E("var/run/x.pid", b"1"), E("lib/libc.so", b"elf")])
    assert "run/x.pid" in tree.nodes and "usr/lib/libc.so" in tree.nodes
    assert tree.nodes["var/run"].info.issym()


def test_symlink_loop_refused():
    with pytest.raises(UnsafeEntry, match="levels"):
        build([E("a", type=tarfile.SYMTYPE, linkname="b"), E("b", type=tarfile.SYMTYPE, linkname="a")],
              [E("a/x", b"")])


def test_escaping_symlink_itself_is_fine():
    tree = build([E("up", type=tarfile.SYMTYPE, linkname="../../..")])
    assert tree.nodes["up"].info.linkname == "../../.."


def test_file_under_regular_file_is_malformed():
    with pytest.raises(MalformedLayer, match="not a directory"):
        build([E("f", b"x"), E("f/g", b"y")])


def test_file_replaces_directory_and_directory_merges():
    tree = build(BASE, [E("data/opq", b"now a file"), E("etc/", mode=0o700)])
    assert not tree.nodes["data/opq"].is_dir
    assert "data/opq/old.txt" not in tree.nodes
    assert tree.nodes["etc"].info.mode == 0o700 and "etc/passwd" in tree.nodes


def test_implicit_parents_created():
    tree = build([E("a/b/c/file", b"x")])
    assert tree.nodes["a/b"].is_dir and tree.nodes["a/b"].info.mode == 0o755


def test_device_nodes_fifos_and_xattrs_carried():
    tree = build([E("dev/"), E("dev/null", type=tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
                  E("dev/sda", type=tarfile.BLKTYPE, mode=0o660, devmajor=8, devminor=0),
                  E("dev/fifo", type=tarfile.FIFOTYPE),
                  E("bin/"), E("bin/ping", b"elf", mode=0o4755,
                                xattrs={"security.capability": "\x01\x00\x00\x02", "user.k": "v"})])
    p = plan(tree)
    pre = {ti.name: ti for ti in p.pre}
    null = pre["bundle/rootfs/dev/null"]
    assert null.type == tarfile.CHRTYPE and (null.devmajor, null.devminor) == (1, 3) and null.mode == 0o666
    assert pre["bundle/rootfs/dev/sda"].type == tarfile.BLKTYPE
    assert pre["bundle/rootfs/dev/fifo"].type == tarfile.FIFOTYPE
    ping = p.data[0][5]
    assert ping.mode == 0o4755
    assert ping.pax_headers == {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02",
                                "SCHILY.xattr.user.k": "v"}
    # a header with binary xattrs still encodes (hdrcharset=BINARY when needed)
    assert len(ping.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")) % 512 == 0


def test_overlay_xattrs_dropped_and_mtime_clamped():
    ti, _ = E("x", b"1", xattrs={"trusted.overlay.opaque": "y", "user.a": "b"}, mtime=-5)
    out = out_info("x", ti)
    assert out.pax_headers == {"SCHILY.xattr.user.a": "b"} and out.mtime == 0
    ti.mtime = 2**40
    assert out_info("x", ti).mtime == 2**32 - 1


def test_plan_orders_parents_before_children():
    tree = build([E("z/"), E("z/y/"), E("a/"), E("a/b", type=tarfile.SYMTYPE, linkname="x"),
                  E("z/y/f", b"1")])
    names = [ti.name for ti in plan(tree).pre]
    assert names[0] == "bundle/rootfs"
    for i, n in enumerate(names):
        parent = n.rsplit("/", 1)[0]
        if parent.startswith("bundle/rootfs/"):
            assert parent in names[:i]


def test_root_entry_sets_rootfs_attributes():
    tree = build([E("./", mode=0o700, uid=5)])
    root = plan(tree).pre[0]
    assert root.name == "bundle/rootfs" and root.mode == 0o700 and root.uid == 5


def test_captured_passwd_follows_final_tree():
    tree = build(BASE, [E("etc/passwd", b"new\n")])
    assert tree.read_captured("etc/passwd") == b"new\n"
    tree = build(BASE, [E("etc/.wh.passwd", b"")])
    assert tree.read_captured("etc/passwd") is None


@pytest.mark.parametrize("name,want", [("./a/b/", "a/b"), ("a//b", "a/b"), ("./", ""), ("a/./b", "a/b")])
def test_normalize(name, want):
    assert normalize(name, "t") == want


def test_invalid_whiteout_refused():
    with pytest.raises(UnsafeEntry):
        build([E("a/.wh...", b"")])
