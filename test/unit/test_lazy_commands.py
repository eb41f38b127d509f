"""Rarely used command modules load on their first command (tcr.commands.dispatch.LAZY_COMMANDS)."""

import os
import subprocess
import sys

from tcr.commands import base, dispatch

TARGET = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "target")


def test_lazy_table_matches_the_modules_registrations():
    dispatch.load_commands(lazy=False)
    eager = set(dispatch.COMMAND_MODULES)
    for name, fn in base.COMMANDS.items():
        if fn.__module__ in eager:
            continue
        assert name in dispatch.LAZY_COMMANDS, f"{name} ({fn.__module__}) is missing from LAZY_COMMANDS"
        assert dispatch.LAZY_COMMANDS[name] == (fn.__module__, base.SUMMARIES[name]), name
    for name, (module, _summary) in dispatch.LAZY_COMMANDS.items():
        assert base.COMMANDS[name].__module__ == module, f"{module} does not register {name}"


def test_stub_loads_the_module_then_runs_the_real_handler():
    code = f"""
import sys
sys.path.insert(0, {TARGET!r})
from tcr.commands import base, dispatch
dispatch.load_commands()
lazy = sorted({{m for m, _s in dispatch.LAZY_COMMANDS.values()}})
print(sorted(set(lazy) & set(sys.modules)))
assert "top" in base.COMMANDS and base.SUMMARIES["top"]
fn = dispatch.make_dispatch(None)
out = fn("top", ["--help"])
print("tcr.commands.monitor" in sys.modules, "usage: tcr top" in out.stdout)
print(base.COMMANDS["top"].__module__)
"""
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == ["[]", "True True", "tcr.commands.monitor"]


def test_group_verbs_load_their_modules_on_first_use():
    """`container ls` (lifecycle, then ps's showing) and `image ls` (imageops) go through the
    lazily loaded handlers; `image load` and `run` are what an idle tcrd keeps."""
    code = f"""
import sys
sys.path.insert(0, {TARGET!r})
from tcr.commands import dispatch
fn = dispatch.make_dispatch(None)
mods = ("tcr.commands.showing", "tcr.commands.lifecycle", "tcr.commands.imageops")
print([m in sys.modules for m in mods])
print("usage: tcr ps" in fn("container", ["ls", "--help"]).stdout)
print([m in sys.modules for m in mods])
print("usage: tcr image ls" in fn("image", ["ls", "--help"]).stdout)
print([m in sys.modules for m in mods])
"""
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:5] == ["[False, False, False]", "True", "[True, True, False]", "True",
                                        "[True, True, True]"]
