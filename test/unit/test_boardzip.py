"""host_tools/tcr_host/boardzip.py: what the board's byte code leaves out must change nothing tcr
does; line numbers stay exact (docs/profile.md, docs/board-integration.md)."""

import dis
import marshal
import os
import subprocess
import sys
import zipfile

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
    z = zipfile.ZipFile(a)
    head = z.read("tcr/daemon/loop.pyc")
    assert marshal.loads(head[16:]).co_filename == "/usr/lib/python3/site-packages/tcr.zip/tcr/daemon/loop.py"
    r = subprocess.run([sys.executable, "-I", "-S", "-c",
                        f"import sys; sys.path.insert(0, {a!r}); import tcr.daemon.app, tcr.cli.main, "
                        "tcr.compose.cli; print('__future__' in sys.modules)"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr
