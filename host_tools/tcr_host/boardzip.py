"""The board's byte code: target/tcr compiled into one reproducible zip (`make install BYTECODE_ONLY=1`,
which Buildroot's and Yocto's recipes run with the board's Python version on the build PC).

What a board does not need is left out of the byte code, and nothing it needs: each cut is lossless
for running tcr and measured in docs/profile.md (tcrd's resident memory) and docs/board-integration.md
(the zip's size):
- docstrings and asserts (optimize=2; tcr uses neither at run time);
- column tables: line tables are re-encoded with one entry per run of code on the same line
  (CPython 3.11's "no column" form), so tracebacks keep exact line numbers (the compiler writes an
  entry per instruction and columns besides: ~2.7x the size);
- function annotations (tcr has `from __future__ import annotations` everywhere: they are strings
  nobody reads at run time) and module-level variable annotations; class-level annotations stay
  (tcr.common.record reads them for the fields);
- `if TYPE_CHECKING:` blocks (typing imports for mypy), compiled as `if False:`;
- `from __future__ import ...` statements: the features go to compile() as flags (the statement
  itself imports the __future__ module at run time).

    python3 host_tools/tcr_host/boardzip.py SRC_DIR ZIP --prefix /usr/lib/python3.11/site-packages/tcr.zip
Stdlib only, run as a script (no tcr_host import): Buildroot's host-python3 has no dependencies.
"""

from __future__ import annotations
import __future__

import argparse
import ast
import importlib.util
import marshal
import os
import sys
import zipfile
from typing import List, Optional, Sequence

# 3.11's location table (Objects/locations.md): one byte 1CCCCLLL (code, length-1 in code units)
_NO_COLUMNS = 13  # followed by the start line as a signed varint delta
_NO_LOCATION = 15
if sys.version_info[:2] != (3, 11):  # the table format is per version; others keep the compiler's
    _NO_COLUMNS = -1


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


def compile_module(source: bytes, filename: str, function_lines: bool = False):
    strip = _Strip()
    tree = ast.fix_missing_locations(strip.visit(ast.parse(source, filename)))
    return slim(compile(tree, filename, "exec", flags=strip.flags, optimize=2, dont_inherit=True),
                function_lines)


def pyc(code) -> bytes:
    """A timestamp .pyc without a timestamp: zipimport checks none when the zip has no source."""
    return importlib.util.MAGIC_NUMBER + b"\0" * 12 + marshal.dumps(code)


def build(src: str, out: str, prefix: str, exclude: Sequence[str] = (), function_lines: bool = False) -> int:
    """Zip src (the tcr package directory) into out; returns its size. Entries sorted, dated
    1980-01-01: the same sources give the same bytes (reproducible builds)."""
    base = os.path.dirname(os.path.abspath(src))
    names = []
    for dirpath, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), base)
            if f.endswith((".pyc", "py.typed")) or any(rel == e or rel.startswith(e + "/") for e in exclude):
                continue
            names.append(rel)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for rel in sorted(names):
            with open(os.path.join(base, rel), "rb") as fh:
                data = fh.read()
            if rel.endswith(".py"):
                data = pyc(compile_module(data, prefix.rstrip("/") + "/" + rel, function_lines))
                rel += "c"
            info = zipfile.ZipInfo(rel, (1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data, compresslevel=9)
    return os.path.getsize(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("src", help="the package directory (target/tcr)")
    ap.add_argument("zip", help="the zip to write")
    ap.add_argument("--prefix", required=True, help="the zip's path on the board (for tracebacks)")
    ap.add_argument("--exclude", action="append", default=[], help="a module or package path to leave out")
    ap.add_argument("--function-lines", action="store_true",
                    help="tracebacks name the function's first line, not the statement's (-33 kB)")
    args = ap.parse_args(argv)
    size = build(args.src, args.zip, args.prefix, args.exclude, args.function_lines)
    print(f"tcr.zip: {size} bytes of byte code")
    return 0


if __name__ == "__main__":
    sys.exit(main())
