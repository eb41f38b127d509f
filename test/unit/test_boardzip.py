"""host_tools/tcr_host/boardzip.py: what the board's byte code leaves out must change nothing tcr
does; line numbers stay exact (docs/profile.md, docs/board-integration.md)."""

import ast
import dis
import marshal
import os
import subprocess
import sys
import zipfile
import zlib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "host_tools", "tcr_host"))
import boardzip  # noqa: E402

pytestmark = pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the 3.11 location table")

SRC = b'''from __future__ import annotations
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List
counter: int = 0


class Rec:
    name: str
    size: List[int]

    def grow(self, by: int) -> List[int]:
        total: int = by

        def inner(x: int) -> int:
            return x + total
        return [inner(1),
                inner(2)]


def boom(a: str) -> None:
    x = 1
    y = [x,
         2]
    raise ValueError(a + str(y))
'''


def codes(c):
    yield c
    for k in c.co_consts:
        if hasattr(k, "co_code"):
            yield from codes(k)


def per_instruction(c):
    out = {}
    for s, e, line in c.co_lines():
        for i in range(s, e, 2):
            out[i] = line
    return out


def test_line_numbers_stay_exact_for_every_module_of_tcr():
    for dirpath, _dirs, files in os.walk(os.path.join(ROOT, "target", "tcr")):
        for f in files:
            if f.endswith(".py"):
                with open(os.path.join(dirpath, f), "rb") as fh:
                    c = compile(fh.read(), f, "exec", optimize=2)
                for a, b in zip(codes(c), codes(boardzip.slim(c))):
                    assert per_instruction(a) == per_instruction(b), (f, a.co_name)
                    assert len(b.co_linetable) <= len(a.co_linetable)


def test_annotations_out_class_fields_in_future_flag_kept():
    code = boardzip.compile_module(SRC, "m.py")
    ns = {}
    exec(code, ns)
    assert ns["Rec"].__annotations__ == {"name": "str", "size": "List[int]"}  # strings: the flag held
    assert ns["Rec"].grow.__annotations__ == {} and ns["boom"].__annotations__ == {}
    assert "__annotations__" not in ns or not ns["__annotations__"]
    assert ns["Rec"]().grow(1) == [2, 3] and ns["counter"] == 0
    imports = [i.argval for c in codes(code) for i in dis.get_instructions(c) if i.opname == "IMPORT_NAME"]
    assert imports == []  # neither __future__ nor the TYPE_CHECKING block's typing


def test_tracebacks_keep_the_statement_line_or_the_function_line():
    import traceback

    for function_level, want in ((False, 25), (True, 21)):
        ns = {}
        exec(boardzip.compile_module(SRC, "m.py", function_level), ns)
        try:
            ns["boom"]("x")
        except ValueError as exc:
            frames = traceback.extract_tb(exc.__traceback__)
            assert frames[-1].lineno == want and frames[-1].name == "boom"
            assert "".join(traceback.format_exception(exc))  # the traceback module copes


def test_zip_is_reproducible_and_runs(tmp_path):
    a, b = str(tmp_path / "a.zip"), str(tmp_path / "b.zip")
    for out in (a, b):
        boardzip.build(os.path.join(ROOT, "target", "tcr"), out, "/usr/lib/python3/site-packages/tcr.zip")
    with open(a, "rb") as fa, open(b, "rb") as fb:
        assert fa.read() == fb.read()
    names = zipfile.ZipFile(a).namelist()
    assert names[0] == boardzip.PACKED and "tcr/daemon/loop.pyc" not in names
    r = subprocess.run([sys.executable, "-I", "-S", "-c",
                        f"import sys; sys.path.insert(0, {a!r}); import tcr.daemon.app, tcr.cli.main, "
                        "tcr.compose.cli; print('__future__' in sys.modules); "
                        "print(sys.meta_path[0].get_code('tcr.daemon.loop').co_filename)"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "/usr/lib/python3/site-packages/tcr.zip/tcr/daemon/loop.py"]


RENAME_SRC = b'''
def f(a, b=2, *rest, c, d=4, **kw):
    total = a + b + c + d + sum(rest) + sum(kw.values())
    doubled = [x * 2 for x in range(total)]
    seen = {v: k for k, v in kw.items()}

    def inner(y):
        return y + total  # total is a cell: keeps its name
    shadow = lambda q: q + len(seen)  # noqa: E731
    return total, sum(doubled), inner(1), shadow(1), seen


def gen(n):
    acc = 0
    for i in range(n):
        acc += i
        yield acc


class Base:
    def who(self):
        return "base"


class Kid(Base):
    def who(self):
        label = super().who()  # the __class__ cell and self keep their names
        return label + "+kid"


def unbound():
    if False:
        late = 1
    return late
'''


def test_renamed_locals_run_the_same():
    plain, short = {}, {}
    exec(boardzip.compile_module(RENAME_SRC, "r.py"), plain)
    exec(boardzip.compile_module(RENAME_SRC, "r.py", short_locals=True), short)
    for ns in (plain, short):
        assert ns["f"](1, c=3, e=5) == plain["f"](1, c=3, e=5) == (15, 210, 16, 2, {5: "e"})
        assert ns["f"](a=1, b=1, c=1, d=1) == (4, 12, 5, 1, {})  # keyword calls: arguments keep names
        assert list(ns["gen"](4)) == [0, 1, 3, 6]
        assert ns["Kid"]().who() == "base+kid"
        with pytest.raises(UnboundLocalError):
            ns["unbound"]()
    f_short = short["f"].__code__
    assert f_short.co_varnames[:6] == ("a", "b", "c", "d", "rest", "kw")
    assert "total" in f_short.co_cellvars and "doubled" not in f_short.co_varnames
    assert sum(len(n) for n in f_short.co_varnames) < sum(len(n) for n in plain["f"].__code__.co_varnames)


def test_tcr_never_reads_locals_by_name():
    """What renaming would change: locals(), vars() without an argument, frame locals, exec/eval."""
    found = []
    for dirpath, _dirs, files in os.walk(os.path.join(ROOT, "target", "tcr")):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(dirpath, f)
            with open(path, "rb") as fh:
                tree = ast.parse(fh.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
                        node.func.id in ("locals", "exec", "eval")
                        or (node.func.id == "vars" and not node.args)):
                    found.append((path, node.lineno, node.func.id))
                if isinstance(node, ast.Attribute) and node.attr in ("f_locals", "_getframe"):
                    found.append((path, node.lineno, node.attr))
    assert found == []


def test_dictionary_is_deterministic_and_pays_off():
    blobs = []
    for dirpath, _dirs, files in sorted(os.walk(os.path.join(ROOT, "target", "tcr", "containers"))):
        for f in sorted(files):
            if f.endswith(".py"):
                with open(os.path.join(dirpath, f), "rb") as fh:
                    blobs.append(marshal.dumps(boardzip.compile_module(fh.read(), f)))
    d = boardzip.dictionary(blobs)
    assert d == boardzip.dictionary(blobs) and 0 < len(d) <= boardzip.DICT_SIZE
    with_dict = sum(len(boardzip._deflate(b, d)) for b in blobs) + len(boardzip._deflate(d))
    assert with_dict < 0.95 * sum(len(boardzip._deflate(b)) for b in blobs)
    for b in blobs:
        inflate = zlib.decompressobj(-15, zdict=d)
        assert inflate.decompress(boardzip._deflate(b, d)) + inflate.flush() == b


def small_package(tmp_path):
    """A tcr package of a few modules: the client's start-up ones, a packed subpackage with a data
    file and a module that raises."""
    src = tmp_path / "tcr"
    for d in ("cli", "common", "rpc", "sub", "data"):
        (src / d).mkdir(parents=True)
    (src / "__init__.py").write_text('"""pkg"""\n__version__ = "9"\n')
    for name in ("cli/__init__.py", "common/__init__.py", "rpc/__init__.py", "sub/__init__.py"):
        (src / name).write_text("")
    (src / "cli" / "main.py").write_text("def main():\n    return 0\n")
    (src / "sub" / "__init__.py").write_text("PKG = True\n")
    (src / "sub" / "deep.py").write_text(
        "from __future__ import annotations\nimport os\n\nfrom tcr.sub import helper\n\n\n"
        "def where():\n    return os.path.dirname(os.path.abspath(__file__))\n\n\n"
        "def data():\n    return __loader__.get_data(os.path.join(where(), '..', 'data', 'x.json')"
        ".replace('/sub/../', '/'))\n\n\n"
        "def boom(value: int) -> None:\n    bad = value\n    raise ValueError(helper.twice(bad))\n")
    (src / "sub" / "helper.py").write_text("def twice(v):\n    return v * 2\n")
    (src / "data" / "x.json").write_text('{"k": 1}')
    return str(src)


LOADER_PROBE = """
import sys, traceback
sys.path.insert(0, ZIP)
import tcr
finder = sys.meta_path[0]
from tcr.sub import deep
assert type(finder).__name__ == "_PackedCode" and finder.zdict is None and finder.depth == 0
assert deep.__file__ == ZIP + "/tcr/sub/deep.pyc" and deep.__spec__.origin == deep.__file__
assert tcr.sub.__path__ == [ZIP + "/tcr/sub"] and tcr.sub.PKG and finder.is_package("tcr.sub")
assert deep.__loader__.get_source("tcr.sub.deep") is None
assert deep.data() == b'{"k": 1}', deep.data()
import tcr.cli.main
assert type(tcr.cli.__loader__).__name__ == "zipimporter"  # the client's modules: ordinary members
assert type(tcr.cli.main.__loader__).__name__ == "zipimporter"
assert sys.modules["tcr.sub.helper"].__loader__ is finder
try:
    deep.boom(21)
except ValueError as exc:
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    assert (frame.filename, frame.name) == ("/board/tcr.zip/tcr/sub/deep.py", "boom"), frame
    assert str(exc) == "42"
import importlib
assert importlib.reload(deep) is deep
sys.modules.pop("tcr.sub.nothing", None)
try:
    import tcr.sub.nothing
except ModuleNotFoundError:
    pass
print("ok", sorted(finder.index))
"""


def test_packed_loader_reads_modules_data_and_tracebacks(tmp_path):
    out = str(tmp_path / "t.zip")
    boardzip.build(small_package(tmp_path), out, "/board/tcr.zip")
    names = zipfile.ZipFile(out).namelist()
    assert names == [boardzip.PACKED, "tcr/__init__.pyc", "tcr/cli/__init__.pyc", "tcr/cli/main.pyc",
                     "tcr/common/__init__.pyc", "tcr/data/x.json", "tcr/rpc/__init__.pyc"]
    r = subprocess.run([sys.executable, "-I", "-S", "-c", f"ZIP = {out!r}\n" + LOADER_PROBE],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == "ok ['tcr.sub', 'tcr.sub.deep', 'tcr.sub.helper']"
    # unzipped, the packed modules are unreachable: `import tcr` says so in one line
    zipfile.ZipFile(out).extractall(tmp_path / "unzipped")
    r = subprocess.run([sys.executable, "-I", "-S", "-c",
                        f"import sys; sys.path.insert(0, {str(tmp_path / 'unzipped')!r}); import tcr"],
                       capture_output=True, text=True, timeout=60)
    assert r.stderr.splitlines()[-1] == ("ImportError: tcr's byte code is packed in tcr.zip: "
                                         "put the zip itself on sys.path"), r.stderr


def test_plain_build_has_one_pyc_per_module(tmp_path):
    out = str(tmp_path / "t.zip")
    boardzip.build(small_package(tmp_path), out, "/board/tcr.zip", packed=False)
    names = zipfile.ZipFile(out).namelist()
    assert boardzip.PACKED not in names and "tcr/sub/deep.pyc" in names
    code = f"import sys; sys.path.insert(0, {out!r}); from tcr.sub import deep; print(deep.data())"
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "b'{\"k\": 1}'", r.stderr
