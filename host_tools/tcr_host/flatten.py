"""Flatten OCI layers into one root filesystem tree, without touching the disk.

Pass 1 (scan) reads every layer's tar headers and applies them to an in-memory tree: whiteouts
(`.wh.NAME`) and opaque directories (`.wh..wh..opq`) remove lower-layer entries, later entries
replace earlier ones, hard links share an inode record (so a link whose original path is deleted
later still carries the original data). Unsafe entries are refused: `..` components, absolute
names, and entries reached through a parent symlink that climbs out of the image root.

plan() turns the final tree into output tar headers under bundle/rootfs/: directories and data-less
entries first (sorted, parents before children), then regular files in layer order (pass 2 streams
their data straight from the layer), then hard links. Owners, modes, mtimes, xattrs and device
numbers are carried over from the layer headers, so nothing needs root.
"""

import posixpath
import tarfile
from typing import Dict, List, Optional, Set, Tuple

from tcr_host.layers import MalformedLayer, short

WH_PREFIX = ".wh."
WH_OPAQUE = ".wh..wh..opq"
ROOTFS = "bundle/rootfs"
MAX_SYMLINK_HOPS = 40
CAPTURE = frozenset({"etc/passwd", "etc/group"})  # small files config.json generation needs
CAPTURE_MAX = 1 << 20
XATTR_PREFIXES = ("SCHILY.xattr.", "LIBARCHIVE.xattr.")
_DROP_XATTRS = ("trusted.overlay.", "user.overlay.")  # overlayfs bookkeeping, meaningless in a flat tree
MTIME_MAX = (1 << 32) - 1  # squashfs stores 32-bit unsigned times

_DATALESS = (tarfile.SYMTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE)


class UnsafeEntry(MalformedLayer):
    pass


def normalize(name: str, where: str) -> str:
    """Archive member name -> path relative to the image root ('' is the root). Refuses traversal."""
    if name in ("/", "./", ".", ""):
        return ""
    if name.startswith("/"):
        raise UnsafeEntry(f"{where}: refusing absolute path {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeEntry(f"{where}: refusing path traversal in {name!r}")
    return "/".join(parts)


class Inode:
    """One file's content: the layer member holding it (shared by hard links)."""

    __slots__ = ("layer", "ordinal", "info")

    def __init__(self, layer: int, ordinal: int, info: tarfile.TarInfo):
        self.layer = layer
        self.ordinal = ordinal
        self.info = info


class Node:
    __slots__ = ("info", "inode")

    def __init__(self, info: tarfile.TarInfo, inode: Optional[Inode] = None):
        self.info = info
        self.inode = inode

    @property
    def is_dir(self) -> bool:
        return self.info.type == tarfile.DIRTYPE


def _implicit_dir() -> tarfile.TarInfo:
    ti = tarfile.TarInfo("")
    ti.type = tarfile.DIRTYPE
    ti.mode = 0o755
    ti.mtime = 0
    return ti


class Tree:
    """The merged filesystem: path -> Node, plus each directory's children for subtree removal."""

    def __init__(self) -> None:
        self.nodes: Dict[str, Node] = {"": Node(_implicit_dir())}
        self.children: Dict[str, Set[str]] = {"": set()}
        self.captured: Dict[Tuple[int, int], bytes] = {}

    # -- path resolution -------------------------------------------------------------------
    def resolve(self, parts: List[str], where: str) -> List[str]:
        """Follow symlinks in every component of parts, inside the image root (like a chroot).

        A symlink whose target climbs above the root with '..' is refused: the entry would escape.
        """
        out: List[str] = []
        todo = list(reversed(parts))
        hops = 0
        while todo:
            comp = todo.pop()
            if comp in ("", "."):
                continue
            if comp == "..":
                if not out:
                    raise UnsafeEntry(f"{where}: goes through a symlink that escapes the image root")
                out.pop()
                continue
            cand = "/".join(out + [comp]) if out else comp
            node = self.nodes.get(cand)
            if node is not None and node.info.type == tarfile.SYMTYPE:
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise UnsafeEntry(f"{where}: too many levels of symbolic links")
                target = node.info.linkname
                if target.startswith("/"):
                    out = []
                todo.extend(reversed(target.split("/")))
                continue
            out.append(comp)
        return out

    def resolve_parent(self, path: str, where: str) -> str:
        """path with its parent directories resolved (the last component is not followed)."""
        if "/" not in path:
            return path
        head, last = path.rsplit("/", 1)
        parent = self.resolve(head.split("/"), where)
        return "/".join(parent + [last]) if parent else last

    # -- mutation --------------------------------------------------------------------------
    def remove(self, path: str) -> None:
        node = self.nodes.pop(path, None)
        if node is None:
            return
        self.children[posixpath.dirname(path)].discard(path)
        if node.is_dir:
            stack = [path]
            while stack:
                d = stack.pop()
                for c in self.children.pop(d, ()):
                    cn = self.nodes.pop(c, None)
                    if cn is not None and cn.is_dir:
                        stack.append(c)

    def _ensure_dir(self, path: str, where: str) -> None:
        if path in self.nodes:
            if not self.nodes[path].is_dir:
                raise MalformedLayer(f"{where}: parent {path!r} is not a directory")
            return
        self._ensure_dir(posixpath.dirname(path), where)
        self.nodes[path] = Node(_implicit_dir())
        self.children[path] = set()
        self.children[posixpath.dirname(path)].add(path)

    def clear_dir(self, path: str) -> None:
        for c in list(self.children.get(path, ())):
            self.remove(c)

    def add(self, layer: int, ordinal: int, path: str, m: tarfile.TarInfo, where: str) -> None:
        if path == "":
            if not m.isdir():
                raise MalformedLayer(f"{where}: the root entry is not a directory")
            self.nodes[""].info = m
            return
        rpath = self.resolve_parent(path, where)
        if rpath == "":
            raise UnsafeEntry(f"{where}: resolves to the image root")
        parent = posixpath.dirname(rpath)
        self._ensure_dir(parent, where)
        existing = self.nodes.get(rpath)
        if m.type == tarfile.LNKTYPE:
            tpath = self.resolve_parent(normalize(m.linkname, where), where)
            target = self.nodes.get(tpath)
            if target is None or target.inode is None:
                raise MalformedLayer(f"{where}: hard link to missing or non-file target {m.linkname!r}")
            if tpath == rpath:
                return
            node = Node(target.inode.info, target.inode)
        elif m.type == tarfile.DIRTYPE:
            if existing is not None and existing.is_dir:
                existing.info = m  # a directory over a directory keeps its contents
                return
            node = Node(m)
        elif m.isreg() or m.type in _DATALESS:
            node = Node(m, Inode(layer, ordinal, m))
        else:
            raise MalformedLayer(f"{where}: unsupported tar entry type {m.type!r}")
        if existing is not None:
            self.remove(rpath)
        self.nodes[rpath] = node
        self.children[parent].add(rpath)
        if node.is_dir:
            self.children[rpath] = set()

    def read_captured(self, path: str) -> Optional[bytes]:
        """Content of a small captured file (etc/passwd, etc/group) in the final tree, if known."""
        try:
            rpath = "/".join(self.resolve(path.split("/"), path))
        except MalformedLayer:
            return None
        node = self.nodes.get(rpath)
        if node is None or node.inode is None or not node.info.isreg():
            return None
        return self.captured.get((node.inode.layer, node.inode.ordinal))


def scan_layer(tree: Tree, layer: int, tf: tarfile.TarFile, digest: str) -> int:
    """Pass 1 for one layer: apply its whiteouts, then its entries. Returns the member count."""
    opaques: List[Tuple[str, str]] = []
    whiteouts: List[Tuple[str, str]] = []
    entries: List[Tuple[int, str, tarfile.TarInfo]] = []
    count = 0
    for ordinal, m in enumerate(tf):
        count += 1
        where = f"layer {short(digest)} entry {m.name!r}"
        path = normalize(m.name, where)
        parent, _, base = path.rpartition("/")
        if base == WH_OPAQUE:
            opaques.append((parent, where))
            continue
        if base.startswith(WH_PREFIX):
            name = base[len(WH_PREFIX):]
            if name in ("", ".", ".."):
                raise UnsafeEntry(f"{where}: invalid whiteout")
            whiteouts.append((f"{parent}/{name}" if parent else name, where))
            continue
        entries.append((ordinal, path, m))
        if path in CAPTURE and m.isreg() and m.size <= CAPTURE_MAX:
            f = tf.extractfile(m)
            if f is not None:
                tree.captured[(layer, ordinal)] = f.read()
    # Whiteouts hide only lower layers' entries, so they go first.
    for parent, where in opaques:
        d = "/".join(tree.resolve(parent.split("/"), where)) if parent else ""
        node = tree.nodes.get(d)
        if node is not None and node.is_dir:
            tree.clear_dir(d)
    for path, where in whiteouts:
        tree.remove(tree.resolve_parent(path, where))
    for ordinal, path, m in entries:
        tree.add(layer, ordinal, path, m, f"layer {short(digest)} entry {m.name!r}")
    return count


def out_info(path: str, src: tarfile.TarInfo, type_: Optional[bytes] = None) -> tarfile.TarInfo:
    """A clean output header for path under bundle/rootfs, with src's attributes and xattrs."""
    ti = tarfile.TarInfo(f"{ROOTFS}/{path}" if path else ROOTFS)
    t = type_ or src.type
    if t in (tarfile.AREGTYPE, tarfile.CONTTYPE, tarfile.GNUTYPE_SPARSE):
        t = tarfile.REGTYPE
    ti.type = t
    ti.mode = src.mode & 0o7777
    ti.uid = src.uid
    ti.gid = src.gid
    ti.uname = ti.gname = ""
    ti.mtime = min(max(int(src.mtime), 0), MTIME_MAX)
    if t == tarfile.SYMTYPE:
        ti.linkname = src.linkname
    elif t in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        ti.devmajor, ti.devminor = src.devmajor, src.devminor
    elif t == tarfile.REGTYPE:
        ti.size = src.size
    ti.pax_headers = {k: v for k, v in src.pax_headers.items()
                      if k.startswith(XATTR_PREFIXES)
                      and not k.split(".xattr.", 1)[1].startswith(_DROP_XATTRS)}
    return ti


class Plan:
    """Output headers: `pre` (dirs, symlinks, devices, empty files), `data` by layer and member
    ordinal (regular files whose bytes pass 2 streams), `links` (hard links, last)."""

    def __init__(self) -> None:
        self.pre: List[tarfile.TarInfo] = []
        self.data: Dict[int, Dict[int, tarfile.TarInfo]] = {}
        self.links: List[tarfile.TarInfo] = []
        self.data_bytes = 0

    @property
    def entries(self) -> int:
        return len(self.pre) + sum(len(d) for d in self.data.values()) + len(self.links)


def _sort_key(path: str) -> Tuple[str, ...]:
    return tuple(path.split("/"))


def plan(tree: Tree) -> Plan:
    p = Plan()
    groups: Dict[int, List[str]] = {}
    inodes: Dict[int, Inode] = {}
    dirs: List[str] = []
    for path, node in tree.nodes.items():
        if node.is_dir:
            dirs.append(path)
        elif node.inode is not None:
            groups.setdefault(id(node.inode), []).append(path)
            inodes[id(node.inode)] = node.inode
    pre: List[Tuple[Tuple[str, ...], tarfile.TarInfo]] = []
    for d in dirs:
        pre.append((_sort_key(d) if d else (), out_info(d, tree.nodes[d].info)))
    links: List[Tuple[Tuple[str, ...], tarfile.TarInfo]] = []
    for key, paths in groups.items():
        inode = inodes[key]
        paths.sort(key=_sort_key)
        primary = paths[0]
        head = out_info(primary, inode.info)
        if head.type == tarfile.REGTYPE and head.size > 0:
            p.data.setdefault(inode.layer, {})[inode.ordinal] = head
            p.data_bytes += head.size
        else:
            pre.append((_sort_key(primary), head))
        for other in paths[1:]:
            ln = out_info(other, inode.info, tarfile.LNKTYPE)
            ln.linkname = head.name
            ln.size = 0
            links.append((_sort_key(other), ln))
    pre.sort(key=lambda x: x[0])
    links.sort(key=lambda x: x[0])
    p.pre = [ti for _, ti in pre]
    p.links = [ti for _, ti in links]
    return p
