"""The `tcr` and `tcrd` commands `pip install` makes (bin/tcr, bin/tcrd): run with -I -S, so no
site, no .pth file and no PYTHONPATH costs them start-up time (issue 16; docs/profile.md, "The
client"), and the normal site machinery still finds an editable or unusual install.

Offline: the wheel is built from a copy of the tree with --no-build-isolation (setuptools and
wheel of the interpreter that builds), and installed by pip into a fresh venv and a --prefix."""

import glob
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROBE = 'import sys; sys.stderr.write("site ran\\n")\n'  # a .pth line: runs only where site runs


def builder() -> str:
    for py in ("/usr/bin/python3", sys.executable):
        if os.path.exists(py) and subprocess.run([py, "-c", "import setuptools, wheel, pip, venv"],
                                                 capture_output=True, timeout=60).returncode == 0:
            return py
    pytest.skip("no Python with pip, setuptools and wheel to build the wheel offline")


def pip(py: str, *args: str) -> None:
    quiet = ["-q", "--no-deps", "--no-index", "--disable-pip-version-check"]
    r = subprocess.run([py, "-m", "pip", *args, *quiet], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PIP_ROOT_USER_ACTION="ignore"))
    assert r.returncode == 0, r.stdout + r.stderr


def venv(py: str, where: str) -> str:
    subprocess.run([py, "-m", "venv", "--without-pip", where], check=True, timeout=120)
    return glob.glob(os.path.join(where, "lib", "python3*", "site-packages"))[0]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    py = builder()
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    for name in ("bin", "target", "host_tools"):
        shutil.copytree(os.path.join(ROOT, name), src / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("wheel")
    pip(py, "wheel", "--no-build-isolation", "-w", str(out), str(src))
    (whl,) = glob.glob(str(out / "tcr-*.whl"))
    return py, whl


@pytest.fixture(scope="module")
def pip_venv(wheel, tmp_path_factory):
    py, whl = wheel
    v = str(tmp_path_factory.mktemp("venv"))
    site = venv(py, v)
    pip(py, "--python", os.path.join(v, "bin", "python"), "install", whl)
    with open(os.path.join(site, "zz_tcr_probe.pth"), "w") as f:
        f.write(PROBE)
    return v


def shadow(tmp_path) -> str:
    """A PYTHONPATH whose `tcr` fails loudly: -I must ignore it."""
    (tmp_path / "shadow" / "tcr").mkdir(parents=True, exist_ok=True)
    (tmp_path / "shadow" / "tcr" / "__init__.py").write_text("raise SystemExit('PYTHONPATH was used')\n")
    return str(tmp_path / "shadow")


def run(argv, tmp_path, **env):
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": shadow(tmp_path), **env}
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=e, cwd=str(tmp_path))


def version_ok(r) -> bool:  # no tcrd at that socket: the client's half of `tcr --version`, exit 125
    return r.stdout.startswith("Client: tcr ") and r.returncode == 125


def test_pip_keeps_our_first_line_and_the_exec_bit(pip_venv):
    for name in ("tcr", "tcrd"):
        path = os.path.join(pip_venv, "bin", name)
        with open(path) as f:
            assert f.readline() == "#!/bin/sh\n", "pip rewrote the first line (it drops -I -S)"
        assert os.access(path, os.X_OK)


def test_pip_made_commands_skip_site_and_pythonpath(pip_venv, tmp_path):
    none = str(tmp_path / "none.sock")
    r = run([os.path.join(pip_venv, "bin", "tcr"), "--socket", none, "--version"], tmp_path)
    assert version_ok(r), r.stdout + r.stderr
    assert "site ran" not in r.stderr and "PYTHONPATH" not in r.stderr
    r = run([os.path.join(pip_venv, "bin", "tcrd"), "--help"], tmp_path)
    assert r.returncode == 0 and "usage: tcrd" in r.stdout, r.stderr
    assert "site ran" not in r.stderr


def test_through_a_symlink_and_a_relative_path(pip_venv, tmp_path):
    """pipx links ~/.local/bin/tcr to the venv's script; `./tcr` in bin/ runs it relative."""
    (tmp_path / "links").mkdir()
    os.symlink(os.path.join(pip_venv, "bin", "tcr"), tmp_path / "links" / "tcr")
    r = run([str(tmp_path / "links" / "tcr"), "--socket", str(tmp_path / "none.sock"), "--version"], tmp_path)
    assert version_ok(r) and "site ran" not in r.stderr, r.stdout + r.stderr
    r = subprocess.run(["./tcr", "--socket", str(tmp_path / "none.sock"), "--version"], capture_output=True,
                       text=True, timeout=60, cwd=os.path.join(pip_venv, "bin"))
    assert version_ok(r) and "site ran" not in r.stderr, r.stdout + r.stderr


def test_system_style_prefix_install(wheel, tmp_path):
    """`pip install --prefix P` (Debian: P/local/bin and P/local/lib/python3.X/dist-packages, the
    shape of a system pip install into /usr/local): python3 from PATH, the package beside."""
    py, whl = wheel
    pip(py, "install", "--prefix", str(tmp_path / "p"), whl)
    (script,) = glob.glob(str(tmp_path / "p" / "**" / "bin" / "tcr"), recursive=True)
    r = run([script, "--socket", str(tmp_path / "none.sock"), "--version"], tmp_path,
            PATH=f"{os.path.dirname(py)}:/usr/bin:/bin")
    assert version_ok(r), r.stdout + r.stderr


def test_editable_like_install_falls_back_to_site(wheel, tmp_path):
    """tcr not in the venv's site-packages but reached through a .pth file (what `pip install -e`
    writes): the script runs site itself and finds it."""
    py, _ = wheel
    v = str(tmp_path / "venv")
    site = venv(py, v)
    shutil.copy(os.path.join(ROOT, "bin", "tcr"), os.path.join(v, "bin", "tcr"))  # pip copies it as is
    with open(os.path.join(site, "__editable__.tcr.pth"), "w") as f:
        f.write(os.path.join(ROOT, "target") + "\n")
    with open(os.path.join(site, "zz_tcr_probe.pth"), "w") as f:
        f.write(PROBE)
    r = run([os.path.join(v, "bin", "tcr"), "--socket", str(tmp_path / "none.sock"), "--version"], tmp_path)
    assert version_ok(r), r.stdout + r.stderr
    assert "site ran" in r.stderr  # the fallback, not a lucky path
    r = run([os.path.join(v, "bin", "tcr"), "--version"], tmp_path, TCR_PYTHON="/nonexistent/python3")
    assert r.returncode == 127  # TCR_PYTHON chooses the interpreter
