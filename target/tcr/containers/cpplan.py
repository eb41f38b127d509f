"""`tcr cp` path semantics, as docker's (pure: no file system, tested without root).

docker decides a copy in three steps, reproduced here:

1. split_arg(): which argument names the container (`NAME:PATH`; a local path starting with `/`
   or `.` may contain a colon).
2. dest_info(): what the destination is (exists? a directory?), following symlinks in it, and
   whether its parent exists (docker's CopyInfoDestinationPath). The file system is passed in as
   two functions, so the same rule serves the client (the host) and the worker (chrooted into
   the container).
3. plan(): from the source's kind and archive name and the destination, the directory to extract
   into and how to rename the archive's top entry (docker's PrepareArchiveCopy):

   source   destination                 result
   file     existing directory          DEST/base(SRC)
   file     existing file (or link)     DEST overwritten
   file     missing, parent exists      DEST created
   file     missing, ends with `/`      error: no such directory
   dir      existing directory          DEST/base(SRC), or with SRC/. the contents into DEST
   dir      existing file               error: cannot copy a directory to a file
   dir      missing, parent exists      DEST created with SRC's contents
   any      missing parent              error

An archive's members are named from its top entry: `base/...` for SRC, `./...` for SRC/. (the
contents). Names are handled as lists of components (`names()`), never as host paths.
"""

from __future__ import annotations

import posixpath

from tcr.common.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Callable, List, Optional, Tuple

MAX_LINKS = 10  # symlinks followed in a destination, as docker


class CpError(InvalidArgument):
    """A copy that cannot be done as asked (exit 1, as docker)."""


def split_arg(arg: str) -> Tuple[Optional[str], str]:
    """docker's splitCpArg: ('NAME', 'PATH') for `NAME:PATH`, (None, arg) for a local path.
    An absolute path, or one starting with '.', is local even with a colon in it."""
    if arg.startswith("/"):
        return None, arg
    name, colon, path = arg.partition(":")
    if not colon or name.startswith("."):
        return None, arg
    return name, path


def asserts_dir(path: str) -> bool:
    """A path that must be a directory: it ends with '/' or '/.' (or is '.')."""
    return path.endswith("/") or path == "." or path.endswith("/.")


def copies_contents(path: str) -> bool:
    """`SRC/.`: copy what is in SRC, not SRC itself."""
    return path == "." or path.endswith("/.")


def split_dir_entry(path: str) -> Tuple[str, str]:
    """docker's SplitPathDirEntry: ('/a', 'b') for '/a/b' and '/a/b/', ('/a/b', '.') for '/a/b/.'."""
    cleaned = posixpath.normpath(path) if path else "."
    if copies_contents(path):
        cleaned = cleaned.rstrip("/") + "/." if cleaned != "/" else "/."
    d, b = posixpath.split(cleaned)
    if not d:
        d = "."
    if not b:  # '/'
        b = "."
    return d, b


def top_name(path: str) -> str:
    """The archive's top entry for SRC: its base name, or '.' for SRC/. and for '/'."""
    _d, b = split_dir_entry(path)
    return b


class DestInfo:
    __slots__ = ("path", "exists", "is_dir")

    def __init__(self, path: str, exists: bool = False, is_dir: bool = False):
        self.path = path
        self.exists = exists
        self.is_dir = is_dir

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DestInfo) and (self.path, self.exists, self.is_dir) == (
            other.path, other.exists, other.is_dir)

    def __repr__(self) -> str:
        return f"DestInfo({self.path!r}, exists={self.exists}, is_dir={self.is_dir})"


# What lstat() answers, as the planner needs it: None (missing), "dir", "link" or "file"
# (anything else); it raises CpError for ENOTDIR (a file named with a trailing '/');
# readlink() gives a link's target.
if TYPE_CHECKING:
    Kind = Callable[[str], Optional[str]]
    Readlink = Callable[[str], str]


def dest_info(path: str, kind: Kind, readlink: Readlink) -> DestInfo:
    """docker's CopyInfoDestinationPath: follow the destination while it is a symlink (a broken
    last link is fine: the copy creates its target); a missing destination needs an existing
    parent directory. `path` keeps its trailing '/' (plan() needs it)."""
    original = path
    k = kind(path)
    n = 0
    while k == "link":
        n += 1
        if n > MAX_LINKS:
            raise CpError(f"too many symlinks in {original}")
        target = readlink(path)
        if not target.startswith("/"):
            target = posixpath.join(split_dir_entry(path)[0], target)
        path = target
        k = kind(path)
    if k is None:
        parent = split_dir_entry(path)[0]
        pk = kind(parent)
        if pk == "link":  # a parent that is a symlink: the kernel follows it
            pk = kind(parent.rstrip("/") + "/.")
        if pk is None:
            raise CpError(f"no such directory: {parent}")
        if pk != "dir":
            raise CpError(f"not a directory: {parent}")
        return DestInfo(path)
    return DestInfo(path, True, k == "dir")


class Plan:
    """Extract the archive into `dir`, renaming the top component `strip` to `prefix`
    (lists of name components: [] is the directory itself)."""

    __slots__ = ("dir", "strip", "prefix")

    def __init__(self, dir: str, strip: List[str], prefix: List[str]):
        self.dir = dir
        self.strip = strip
        self.prefix = prefix

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plan) and (self.dir, self.strip, self.prefix) == (
            other.dir, other.strip, other.prefix)

    def __repr__(self) -> str:
        return f"Plan({self.dir!r}, strip={self.strip!r}, prefix={self.prefix!r})"

    def rename(self, comps: List[str]) -> List[str]:
        """An archive member's components -> where it goes under `dir`."""
        n = len(self.strip)
        if comps[:n] != self.strip:
            raise CpError("invalid copy source content: member " + "/".join(comps)[:200]
                          + " is outside the archive's top entry")
        return self.prefix + comps[n:]


def plan(src_is_dir: bool, src_top: List[str], dst: DestInfo, dst_raw: str) -> Plan:
    """docker's PrepareArchiveCopy. src_top: the archive's top entry ([] for SRC/., [base]);
    dst: dest_info() of the destination, dst_raw: the destination as the user wrote it."""
    dst_dir, dst_base = split_dir_entry(dst.path)
    if dst.exists and dst.is_dir:
        return Plan(dst.path, src_top, src_top)  # into the directory, as the archive names it
    if dst.exists and src_is_dir:
        raise CpError(f"cannot copy a directory to a file: {dst_raw}")
    if not dst.exists and not src_is_dir and asserts_dir(dst_raw):
        raise CpError(f"no such directory: {dst_raw}",
                      hint="a destination ending with '/' must be an existing directory")
    if dst.exists and asserts_dir(dst_raw):  # an existing file named DEST/
        raise CpError(f"not a directory: {dst_raw}")
    if dst_base in (".", "..", "/"):
        raise CpError(f"invalid destination: {dst_raw}")
    return Plan(dst_dir, src_top, [dst_base])


def names(name: str) -> List[str]:
    """An archive member's name -> its components. '.' and empty parts are dropped; an absolute
    name or one with '..' is refused (a hostile archive must stay inside the directory)."""
    if name.startswith("/"):
        raise CpError(f"invalid archive: absolute member name {name[:200]!r}")
    out = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in out:
        raise CpError(f"invalid archive: member name with '..': {name[:200]!r}")
    return out
