"""The device package (target/tcr) imports only the standard library, itself and its declared
third-party modules; never build-PC code (tcr_host, xxhash, zstandard). The CLI fast path does not
load the heavy modules at all."""

import ast
import os
import subprocess
import sys
from typing import Dict, List, Set, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.path.join(ROOT, "target")
PKG = os.path.join(TARGET, "tcr")

# Declared third-party modules of the device package (pyproject dependencies; ujson optional).
# pyroute2 is not one of them: netlink is tcr.network.links (pyroute2 is a test-only oracle).
ALLOWED_THIRD_PARTY = {"dnslib", "PySquashfsImage", "ujson", "yaml"}
# Optional on the device: ujson (fast JSON), yaml (PyYAML, for YAML compose files; JSON always works).
OPTIONAL_THIRD_PARTY = {"ujson", "yaml"}
# Build-PC only. zstandard may be used by PySquashfsImage itself (lazily, for zstd images),
# never imported by tcr.
FORBIDDEN = {"tcr_host", "xxhash", "zstandard"}
HEAVY = {"pyroute2", "dnslib", "PySquashfsImage"}


def target_files() -> List[str]:
    out = []
    for d, dirs, files in os.walk(PKG):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        out += [os.path.join(d, f) for f in files if f.endswith(".py")]
    return sorted(out)


def _type_checking_only(tree: ast.AST) -> Set[int]:
    """ids of the nodes inside `if TYPE_CHECKING:` blocks: never run, seen by mypy only."""
    out: Set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            out |= {id(sub) for stmt in node.body for sub in ast.walk(stmt)}
    return out


def imports_of(path: str) -> List[Tuple[str, int]]:
    """(absolute dotted module, line) for every import statement that can run, at any depth."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    skip = _type_checking_only(tree)
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, node.lineno))
    return out


def all_imports() -> Dict[str, Set[str]]:
    """top-level module -> {"file:line", ...}"""
    found: Dict[str, Set[str]] = {}
    for path in target_files():
        rel = os.path.relpath(path, ROOT)
        for mod, line in imports_of(path):
            found.setdefault(mod.split(".")[0], set()).add(f"{rel}:{line}")
    return found


def test_target_tree_is_parsed():
    files = target_files()
    assert os.path.join(PKG, "__init__.py") in files
    assert len(files) > 5
    assert "os" in all_imports()


def test_no_build_pc_imports():
    found = all_imports()
    bad = {m: sorted(found[m]) for m in FORBIDDEN if m in found}
    assert not bad, f"target/tcr imports build-PC-only modules: {bad}"


def test_only_declared_third_party():
    found = all_imports()
    # _sha2 is the builtin sha256 module of Python >= 3.12 (tcr.common.digest tries it first)
    stdlib = set(sys.stdlib_module_names) | {"_sha2"}
    undeclared = {m: sorted(w) for m, w in found.items()
                  if m != "tcr" and m not in stdlib and m not in ALLOWED_THIRD_PARTY}
    assert not undeclared, (f"target/tcr imports undeclared third-party modules: {undeclared}; "
                            f"allowed: {sorted(ALLOWED_THIRD_PARTY)}")


def test_declared_third_party_are_pyproject_dependencies():
    import re

    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    deps_block = re.search(r"^dependencies\s*=\s*\[(.*?)\]", text, re.S | re.M)
    assert deps_block, "pyproject.toml has no [project] dependencies"
    declared = {re.split(r"[<>=!~;\[ ]", d.strip().strip('"'))[0].lower()
                for d in deps_block.group(1).split(",") if d.strip()}
    # ujson and yaml are optional ("fast", "compose" extras); everything else must be a hard dependency
    for mod in ALLOWED_THIRD_PARTY - OPTIONAL_THIRD_PARTY:
        assert mod.lower() in declared, f"{mod} is imported by target/tcr but not in pyproject dependencies"
    # and nothing else: a run-time dependency that target/tcr never imports (pyroute2 was one)
    # would be installed on every board for nothing
    imported = {m.split(".")[0].lower() for f in target_files() for m, _ in imports_of(f)}
    unused = sorted(d for d in declared if d not in imported)
    assert not unused, f"pyproject run-time dependencies not imported by target/tcr: {unused}"


def test_forbidden_checker_catches_a_violation(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("def f():\n    import xxhash.foo\n    from tcr_host import cli\n")
    mods = {m.split(".")[0] for m, _ in imports_of(str(p))}
    assert {"xxhash", "tcr_host"} <= mods


def _loaded_after(stmt: str) -> Set[str]:
    code = f"import sys\n{stmt}\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    env = dict(os.environ, PYTHONPATH=TARGET)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


@pytest.mark.parametrize("module", ["tcr.cli.main", "tcr.rpc.client", "tcr.common.jsonc"])
def test_cli_fast_path_loads_no_heavy_or_build_pc_module(module):
    if not os.path.exists(os.path.join(TARGET, *module.split(".")) + ".py"):
        pytest.skip(f"{module} not written yet")
    loaded = _loaded_after(f"import {module}")
    assert "tcr" in loaded
    bad = sorted(loaded & (HEAVY | FORBIDDEN))
    assert not bad, f"importing {module} loads {bad}"


def test_daemon_import_loads_no_build_pc_module():
    if not os.path.exists(os.path.join(PKG, "daemon", "main.py")):
        pytest.skip("tcr.daemon.main not written yet")
    loaded = _loaded_after("import tcr.daemon.main")
    assert not (loaded & FORBIDDEN), f"tcrd loads build-PC modules {sorted(loaded & FORBIDDEN)}"


def _loaded_tcr_modules(stmt: str) -> Set[str]:
    code = f"import sys\n{stmt}\nprint(' '.join(sorted(m for m in sys.modules if m.startswith('tcr'))))"
    env = dict(os.environ, PYTHONPATH=TARGET)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


def test_daemon_and_client_do_not_load_compose_or_health_code():
    """Health-check code is imported only when a container has a check; compose only by its command."""
    rare = {"tcr.containers.health", "tcr.containers.healthcfg", "tcr.compose", "tcr.compose.spec"}
    daemon = _loaded_tcr_modules("import tcr.daemon.main, tcr.daemon.app, tcr.containers.manager, "
                                 "tcr.commands.dispatch, tcr.commands.containers, tcr.containers.runopts")
    assert "tcr.containers.manager" in daemon
    assert not daemon & rare, sorted(daemon & rare)
    client = _loaded_tcr_modules("import tcr.cli.main")
    assert not client & rare, sorted(client & rare)
    assert "yaml" not in _loaded_after("import tcr.cli.main, tcr.compose.cli")
