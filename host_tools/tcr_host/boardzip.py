"""The board's byte code: target/tcr compiled into one reproducible zip (`make install BYTECODE_ONLY=1`,
which Buildroot's and Yocto's recipes run with the board's Python version on the build PC).

What a board does not need is left out of the byte code, and nothing it needs to run: each cut is
measured in docs/profile.md (tcrd's resident memory) and docs/board-integration.md (the zip's size):
- docstrings and asserts (optimize=2; tcr uses neither at run time);
- column tables, and line tables down to each function's first line (CPython 3.11's "no column"
  form; a traceback names file, function and the line it starts on). --exact-lines re-encodes
  the statement lines instead, one entry per run of code on the same line (the compiler writes an
  entry per instruction and columns besides: ~2.7x the size);
- the names of plain local variables (a, b, c...; arguments, cell and free variables keep theirs:
  rename_locals; --keep-local-names keeps them all);
- function annotations (tcr has `from __future__ import annotations` everywhere: they are strings
  nobody reads at run time) and module-level variable annotations; class-level annotations stay
  (tcr.common.record reads them for the fields);
- `if TYPE_CHECKING:` blocks (typing imports for mypy), compiled as `if False:`;
- `from __future__ import ...` statements: the features go to compile() as flags (the statement
  itself imports the __future__ module at run time).
And what the modules share is compressed once: every module but the client's start-up ones is
deflated against one dictionary of their common byte strings into the member PACKED, which the
loader in zipload.py (compiled into the zip's tcr/__init__) reads (--plain: a .pyc per module).

    python3 host_tools/tcr_host/boardzip.py SRC_DIR ZIP --prefix /usr/lib/python3.11/site-packages/tcr.zip
Stdlib only, run as a script (no tcr_host import): Buildroot's host-python3 has no dependencies.
"""

from __future__ import annotations
import __future__

import argparse
import ast
import heapq
import importlib.util
import marshal
import os
import sys
import zipfile
import zlib
from typing import Dict, List, Optional, Sequence, Set, Tuple

# 3.11's location table (Objects/locations.md): one byte 1CCCCLLL (code, length-1 in code units)
_NO_COLUMNS = 13  # followed by the start line as a signed varint delta
_NO_LOCATION = 15
if sys.version_info[:2] != (3, 11):  # the table format is per version; others keep the compiler's
    _NO_COLUMNS = -1
_CO_VARARGS, _CO_VARKEYWORDS = 0x04, 0x08  # code flags (inspect.CO_*), the same in every version


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 64:
        out.append(0x40 | (value & 63))
        value >>= 6
    out.append(value)
    return bytes(out)


def _svarint(value: int) -> bytes:
    return _varint((-value << 1) | 1 if value < 0 else value << 1)


def line_table(code, function_level: bool = False) -> bytes:
    """co_linetable with the same co_lines() and one entry per run of the same line; with
    function_level, every instruction on the function's first line (still a valid table: the
    traceback module raises on an empty one)."""
    runs: List[List] = []
    if function_level:
        runs.append([0, len(code.co_code), code.co_firstlineno])
    for start, end, line in () if function_level else code.co_lines():
        if runs and runs[-1][2] == line and runs[-1][1] == start:
            runs[-1][1] = end
        else:
            runs.append([start, end, line])
    out = bytearray()
    prev = code.co_firstlineno
    for start, end, line in runs:
        units = (end - start) // 2
        while units > 0:
            n = min(units, 8)
            units -= n
            if line is None:
                out.append(0x80 | (_NO_LOCATION << 3) | (n - 1))
            else:
                out.append(0x80 | (_NO_COLUMNS << 3) | (n - 1))
                out += _svarint(line - prev)
                prev = line
    return bytes(out)


def slim(code, function_level: bool = False):
    """code and the code objects in its constants with re-encoded line tables."""
    consts = tuple(slim(c, function_level) if hasattr(c, "co_code") else c for c in code.co_consts)
    if _NO_COLUMNS < 0:
        return code.replace(co_consts=consts)
    return code.replace(co_consts=consts, co_linetable=line_table(code, function_level))


class _Strip(ast.NodeTransformer):
    """Function and module-level annotations out, TYPE_CHECKING blocks dead."""

    def __init__(self) -> None:
        self.depth = 0  # inside a class body (directly): annotations stay
        self.flags = 0  # the __future__ features, given to compile() instead of the statement

    def visit_ImportFrom(self, node):
        if node.module != "__future__":
            return node
        for alias in node.names:
            self.flags |= getattr(__future__, alias.name).compiler_flag
        return None  # at run time the statement imports the __future__ module (~0.1 ms, ~20 kB)

    def _function(self, node):
        for a in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs,
                  node.args.vararg, node.args.kwarg]:
            if a is not None:
                a.annotation = None
        node.returns = None
        saved, self.depth = self.depth, 0
        self.generic_visit(node)
        self.depth = saved
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_ClassDef(self, node):
        saved, self.depth = self.depth, 1
        self.generic_visit(node)
        self.depth = saved
        return node

    def visit_AnnAssign(self, node):
        if self.depth:  # a class field
            return node
        if node.value is None:
            return ast.copy_location(ast.Pass(), node)
        return ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)

    def visit_If(self, node):
        self.generic_visit(node)
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.test = ast.Constant(False)
        return node


def compile_module(source: bytes, filename: str, function_lines: bool = False, short_locals: bool = False,
                   append: Sequence[ast.stmt] = ()):
    """source compiled for the board; append: statements added at the end of the module."""
    strip = _Strip()
    tree = strip.visit(ast.parse(source, filename))
    tree.body.extend(append)
    tree = ast.fix_missing_locations(tree)
    code = slim(compile(tree, filename, "exec", flags=strip.flags, optimize=2, dont_inherit=True),
                function_lines)
    return rename_locals(code) if short_locals else code


def _short_name(i: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    name = letters[i % 52]
    while i >= 52:
        i = i // 52 - 1
        name = letters[i % 52] + name
    return name


def rename_locals(code):
    """code with its plain local variables named a, b, c... (and the code objects in its constants).
    Lossless for running: a function reads its locals by index, never by name; arguments keep
    their names (keyword calls), and so do cell and free variables (closures find them by name).
    Only introspection sees the short names (locals(), a debugger, UnboundLocalError's message):
    test_boardzip checks that target/tcr uses none of it."""
    consts = tuple(rename_locals(c) if hasattr(c, "co_code") else c for c in code.co_consts)
    varnames = list(code.co_varnames)
    nargs = (code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & _CO_VARARGS)
             + bool(code.co_flags & _CO_VARKEYWORDS))
    keep = set(varnames[:nargs]) | set(code.co_cellvars) | set(code.co_freevars)
    taken = set(keep)
    n = 0
    for i in range(nargs, len(varnames)):
        if varnames[i] in keep:
            continue
        while _short_name(n) in taken:
            n += 1
        varnames[i] = _short_name(n)
        taken.add(varnames[i])
        n += 1
    return code.replace(co_consts=consts, co_varnames=tuple(varnames))


def pyc(code) -> bytes:
    """A timestamp .pyc without a timestamp: zipimport checks none when the zip has no source."""
    return importlib.util.MAGIC_NUMBER + b"\0" * 12 + marshal.dumps(code)


# The client's start-up modules (`tcr ps`, `exec`, `run`; docs/profile.md "The client") stay ordinary
# .pyc members that zipimport reads, as does the package's __init__ that installs the loader:
# a client start inflates only these, as before (test_install_bytecode checks the list).
CLIENT = ("tcr", "tcr.cli", "tcr.cli.main", "tcr.cli.runargs", "tcr.common", "tcr.common.leanos",
          "tcr.rpc", "tcr.rpc.client")
PACKED = "tcr/_code.z"  # the stored member that holds every other module (zipload.py reads it)
DICT_SIZE = 32 * 1024  # deflate's window: a longer dictionary is never reached
LOADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zipload.py")


def dictionary(blobs: Sequence[bytes], size: int = DICT_SIZE, k: int = 6, seg: int = 128,
               step: int = 64) -> bytes:
    """The byte strings the modules share most, for deflate's preset dictionary (a greedy cover, as
    zstd's dictionary builder does): segments of the modules, taken by how many modules hold
    their k-byte substrings that no taken segment holds yet; the most useful last, where deflate
    reaches them with the shortest distances. Deterministic (ties go to the earlier segment)."""
    counts: Dict[bytes, int] = {}
    for b in blobs:
        for g in {b[i:i + k] for i in range(len(b) - k + 1)}:
            counts[g] = counts.get(g, 0) + 1
    segments = [b[i:i + seg] for b in blobs for i in range(0, max(len(b) - seg, 0) + 1, step)]
    covered: Set[bytes] = set()

    def score(s: bytes) -> int:
        return sum(counts[g] for g in {s[j:j + k] for j in range(len(s) - k + 1)} - covered if counts[g] > 1)

    heap = [(-score(s), i) for i, s in enumerate(segments)]
    heapq.heapify(heap)
    picked: List[bytes] = []
    total = 0
    while heap and total < size:
        _, i = heapq.heappop(heap)
        fresh = score(segments[i])
        if heap and fresh < -heap[0][0]:  # some of it was covered since it was scored: queue it again
            heapq.heappush(heap, (-fresh, i))
            continue
        if not fresh:
            break
        picked.append(segments[i])
        total += len(segments[i])
        covered.update(segments[i][j:j + k] for j in range(len(segments[i]) - k + 1))
    return b"".join(reversed(picked))[-size:]


def _deflate(data: bytes, zdict: bytes = b"") -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, *([zdict] if zdict else []))
    return z.compress(data) + z.flush()


def _loader_statements(layout: Tuple[int, int, int]) -> List[ast.stmt]:
    """zipload.py's code (its docstring out) and the call that installs it, for tcr/__init__."""
    with open(LOADER, "rb") as f:
        body = ast.parse(f.read(), LOADER).body[1:]
    call = f"_install(__loader__, {layout!r}, frozenset({sorted(CLIENT)!r}))\ndel _install\n"
    return body + ast.parse(call).body


def _module_name(rel: str) -> Tuple[str, bool]:
    """tcr/x/__init__.py -> (tcr.x, True); tcr/x/y.py -> (tcr.x.y, False)"""
    parts = rel[:-3].split("/")
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def build(src: str, out: str, prefix: str, exclude: Sequence[str] = (), exact_lines: bool = False,
          short_locals: bool = True, packed: bool = True) -> int:
    """Zip src (the tcr package directory) into out; returns its size. Entries sorted, dated
    1980-01-01: the same sources give the same bytes (reproducible builds). packed: every module
    but the client's start-up ones goes into PACKED (zipload.py), else one .pyc member each."""
    base = os.path.dirname(os.path.abspath(src))
    names = []
    for dirpath, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), base)
            if f.endswith((".pyc", "py.typed")) or any(rel == e or rel.startswith(e + "/") for e in exclude):
                continue
            names.append(rel)
    members: Dict[str, bytes] = {}
    blobs: Dict[str, bytes] = {}  # module -> marshalled code, to be packed
    init = None
    for rel in sorted(names):
        with open(os.path.join(base, rel), "rb") as fh:
            data = fh.read()
        if not rel.endswith(".py"):
            members[rel] = data
            continue
        name, _ = _module_name(rel)
        if name == "tcr" and packed:
            init = (rel, data)  # compiled last, with the index
            continue
        code = compile_module(data, prefix.rstrip("/") + "/" + rel, not exact_lines, short_locals)
        if packed and name not in CLIENT:
            blobs[rel] = marshal.dumps(code)
        else:
            members[rel + "c"] = pyc(code)
    packed_data = b""
    if init is not None:
        # PACKED: the dictionary, the index, the modules (zipload.py); it is the first member and
        # its local header has no extra field, so its bytes start at 30 + len(PACKED)
        zdict = dictionary(list(blobs.values()))
        modules = b""
        index: Dict[str, Tuple[int, int, bool]] = {}
        for rel, blob in blobs.items():
            deflated = _deflate(blob, zdict)
            name, pkg = _module_name(rel)
            index[name] = (len(modules), len(deflated), pkg)
            modules += deflated
        head, listing = _deflate(zdict), _deflate(marshal.dumps(index), zdict)
        packed_data = head + listing + modules
        rel, data = init
        code = compile_module(data, prefix.rstrip("/") + "/" + rel, not exact_lines, short_locals,
                              _loader_statements((30 + len(PACKED), len(head), len(listing))))
        members[rel + "c"] = pyc(code)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        order = ([PACKED] if init is not None else []) + sorted(members)
        for rel in order:
            info = zipfile.ZipInfo(rel, (1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            if rel == PACKED:
                info.compress_type = zipfile.ZIP_STORED  # deflated module by module already
                z.writestr(info, packed_data)
            else:
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, members[rel], compresslevel=9)
    if init is not None:  # the offsets in the index are where the bytes really are
        with open(out, "rb") as zf:
            zf.seek(30 + len(PACKED))
            if zf.read(len(packed_data)) != packed_data:
                raise SystemExit(f"{out}: {PACKED} is not where the index says")
    return os.path.getsize(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("src", help="the package directory (target/tcr)")
    ap.add_argument("zip", help="the zip to write")
    ap.add_argument("--prefix", required=True, help="the zip's path on the board (for tracebacks)")
    ap.add_argument("--exclude", action="append", default=[], help="a module or package path to leave out")
    ap.add_argument("--exact-lines", action="store_true",
                    help="tracebacks name the statement's line, not the function's first line (+35 kB)")
    ap.add_argument("--function-lines", action="store_true", help=argparse.SUPPRESS)  # the default now
    ap.add_argument("--keep-local-names", action="store_true",
                    help="local variables keep their names, for a debugger on the board (+8 kB)")
    ap.add_argument("--plain", action="store_true",
                    help="one .pyc member per module, read by zipimport alone (+80 kB)")
    args = ap.parse_args(argv)
    size = build(args.src, args.zip, args.prefix, args.exclude, args.exact_lines, not args.keep_local_names,
                 not args.plain)
    print(f"tcr.zip: {size} bytes of byte code")
    return 0


if __name__ == "__main__":
    sys.exit(main())
