"""ruff and mypy are part of the test suite."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tool(name):
    cand = os.path.join(os.path.dirname(sys.executable), name)
    return cand if os.path.exists(cand) else shutil.which(name)


def test_ruff():
    ruff = _tool("ruff")
    if not ruff:
        pytest.skip("ruff not installed (make deps installs it)")
    r = subprocess.run([ruff, "check", "target", "host_tools", "test", "bench"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy():
    mypy = _tool("mypy")
    if not mypy:
        pytest.skip("mypy not installed (make deps installs it)")
    r = subprocess.run([mypy], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
