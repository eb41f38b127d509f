"""docker's `cp` path rules as a pure function (tcr.containers.cpplan), on a fake file system."""

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcr.containers.cpplan import (
    CpError,
    DestInfo,
    Plan,
    dest_info,
    names,
    plan,
    split_arg,
    split_dir_entry,
    top_name,
)


def _join(link, target):
    if target.startswith("/"):
        return target
    return posixpath.normpath(posixpath.join(posixpath.dirname(link), target))


class FakeFs:
    """paths -> 'dir' | 'file' | ('link', target); lstat semantics incl. a trailing '/'."""

    def __init__(self, entries):
        self.e = {"/": "dir", **entries}

    def _resolve_parent(self, path):
        parts = [p for p in path.split("/") if p]
        cur = "/"
        for p in parts[:-1]:
            cur = posixpath.join(cur, p)
            for _ in range(10):
                v = self.e.get(cur)
                if isinstance(v, tuple):
                    t = v[1]
                    cur = _join(cur, t)
                    continue
                break
            if self.e.get(cur) is None:
                return None
            if self.e[cur] != "dir":
                raise CpError(f"not a directory: {path}")
        return posixpath.join(cur, parts[-1]) if parts else "/"

    def kind(self, path):
        trailing = path.endswith("/") or path.endswith("/.")
        p = self._resolve_parent(path.rstrip("/").removesuffix("/.") or "/")
        if p is None:
            return None
        v = self.e.get(p)
        if v is None:
            return None
        if trailing:
            while isinstance(v, tuple):
                t = v[1]
                p = _join(p, t)
                v = self.e.get(p)
            if v is None:
                return None
            if v != "dir":
                raise CpError(f"not a directory: {path}")
        return "link" if isinstance(v, tuple) else v

    def readlink(self, path):
        p = self._resolve_parent(path)
        return self.e[p][1]


FS = FakeFs({
    "/d": "dir", "/d/f": "file", "/d/sub": "dir", "/f": "file",
    "/lnk": ("link", "/d"), "/rel": ("link", "d/f"), "/broken": ("link", "/d/new"),
    "/loop": ("link", "/loop"), "/nodir": ("link", "/missing/x"),
})


def info(path):
    return dest_info(path, FS.kind, FS.readlink)


def test_split_arg_is_dockers():
    assert split_arg("web:/etc/passwd") == ("web", "/etc/passwd")
    assert split_arg("web:rel") == ("web", "rel")
    assert split_arg("/abs:with/colon") == (None, "/abs:with/colon")
    assert split_arg("./x:y") == (None, "./x:y")
    assert split_arg("-") == (None, "-")
    assert split_arg("plain") == (None, "plain")
    assert split_arg("web:") == ("web", "")


def test_split_dir_entry_and_top_name():
    assert split_dir_entry("/a/b") == ("/a", "b")
    assert split_dir_entry("/a/b/") == ("/a", "b")
    assert split_dir_entry("/a/b/.") == ("/a/b", ".")
    assert split_dir_entry("b") == (".", "b")
    assert top_name("/a/b/") == "b" and top_name("/a/b/.") == "." and top_name("/") == "."


def test_dest_info_follows_links_and_needs_a_parent():
    assert info("/d") == DestInfo("/d", True, True)
    assert info("/d/f") == DestInfo("/d/f", True, False)
    assert info("/lnk") == DestInfo("/d", True, True)
    assert info("/rel") == DestInfo("/d/f", True, False)
    assert info("/broken") == DestInfo("/d/new")  # a broken last link: the copy creates its target
    assert info("/d/new") == DestInfo("/d/new")
    assert info("/d/new/") == DestInfo("/d/new/")
    with pytest.raises(CpError, match="too many symlinks"):
        info("/loop")
    with pytest.raises(CpError, match="no such directory: /missing"):
        info("/missing/x")
    with pytest.raises(CpError, match="no such directory: /missing"):
        info("/nodir")
    with pytest.raises(CpError, match="not a directory"):
        info("/d/f/x")
    with pytest.raises(CpError, match="not a directory"):
        info("/d/f/")


def test_plan_table():
    # file -> existing dir: into it, the archive's own name
    assert plan(False, ["f"], info("/d"), "/d") == Plan("/d", ["f"], ["f"])
    # file -> existing file: renamed over it
    assert plan(False, ["f"], info("/d/f"), "/d/f") == Plan("/d", ["f"], ["f"])
    assert plan(False, ["x"], info("/d/f"), "/d/f") == Plan("/d", ["x"], ["f"])
    # file -> missing: created with the destination's name
    assert plan(False, ["x"], info("/d/new"), "/d/new") == Plan("/d", ["x"], ["new"])
    # file -> missing with a trailing slash: error
    with pytest.raises(CpError, match="no such directory"):
        plan(False, ["x"], info("/d/new/"), "/d/new/")
    # dir -> existing dir: inside it; dir/. -> its contents
    assert plan(True, ["src"], info("/d"), "/d") == Plan("/d", ["src"], ["src"])
    assert plan(True, [], info("/d"), "/d") == Plan("/d", [], [])
    # dir -> missing: created with the destination's name (with or without a trailing slash)
    assert plan(True, ["src"], info("/d/new"), "/d/new") == Plan("/d", ["src"], ["new"])
    assert plan(True, ["src"], info("/d/new/"), "/d/new/") == Plan("/d", ["src"], ["new"])
    assert plan(True, [], info("/d/new"), "/d/new") == Plan("/d", [], ["new"])
    # dir -> existing file: error
    with pytest.raises(CpError, match="cannot copy a directory to a file"):
        plan(True, ["src"], info("/d/f"), "/d/f")
    # through a link to a directory
    assert plan(False, ["x"], info("/lnk"), "/lnk") == Plan("/d", ["x"], ["x"])


def test_plan_rename():
    p = Plan("/d", ["src"], ["new"])
    assert p.rename(["src"]) == ["new"] and p.rename(["src", "a", "b"]) == ["new", "a", "b"]
    with pytest.raises(CpError, match="outside the archive's top entry"):
        p.rename(["other", "a"])
    assert Plan("/d", [], ["new"]).rename(["a"]) == ["new", "a"]
    assert Plan("/d", [], []).rename([]) == []


def test_names_refuse_escapes():
    assert names("a/b/") == ["a", "b"] and names("./a//b") == ["a", "b"] and names(".") == []
    for bad in ("/etc/passwd", "../x", "a/../../x", "a/.."):
        with pytest.raises(CpError):
            names(bad)


@given(st.lists(st.sampled_from(["a", "b", ".", "..", "", "c.d", "..."]), max_size=8), st.booleans())
def test_names_never_escape(parts, absolute):
    name = ("/" if absolute else "") + "/".join(parts)
    try:
        comps = names(name)
    except CpError:
        return
    assert ".." not in comps and "" not in comps and "." not in comps and not name.startswith("/")


def test_human_size_is_dockers():
    from tcr.cli.cp import human_size

    assert human_size(0) == "0B" and human_size(999) == "999B" and human_size(2560) == "2.56kB"
    assert human_size(209725440) == "209.7MB" and human_size(10240) == "10.24kB"
