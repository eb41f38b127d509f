"""`make install` / `make uninstall` into a DESTDIR: offline, with or without root."""

import glob
import marshal
import os
import shutil
import subprocess
import sys

import pytest

from test.fixtures.project import read

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def python_for_install() -> str:
    """The Makefile's default interpreter when it can build (pip + setuptools), else this one."""
    for py in ("/usr/bin/python3", sys.executable):
        if os.path.exists(py) and subprocess.run([py, "-c", "import setuptools, pip"], capture_output=True,
                                                 timeout=60).returncode == 0:
            return py
    pytest.skip("no Python with pip and setuptools to install with")


def make(*args):
    if not shutil.which("make"):
        pytest.skip("make not installed")
    return subprocess.run(["make", "-s", "-C", ROOT, *args], capture_output=True, text=True, timeout=300)


def site_dir(py: str, prefix: str) -> str:
    r = make(f"PYTHON={py}", f"PREFIX={prefix}", "-f", "Makefile", "--eval", "print-site:;@echo $(PYSITEDIR)",
             "print-site")
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def version() -> str:
    import re

    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        m = re.search(r'^version\s*=\s*"([^"]+)"', f.read(), re.M)
    assert m
    return m.group(1)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    py = python_for_install()
    dest = str(tmp_path_factory.mktemp("destdir"))
    products = ("build", "target/tcr.egg-info", "tcr.egg-info")
    dirty_before = {p for p in products if os.path.exists(os.path.join(ROOT, p))}
    r = make("install", f"DESTDIR={dest}", f"PYTHON={py}")
    assert r.returncode == 0, r.stdout + r.stderr
    dirty_after = {p for p in products if os.path.exists(os.path.join(ROOT, p))}
    assert dirty_after == dirty_before, "make install left build products in the source tree"
    return py, dest, site_dir(py, "/usr/local")


def test_scripts_unit_and_init_script_at_their_paths(installed):
    py, dest, site = installed
    for name in ("tcr", "tcrd", "tcr-create-image", "tcr-purge"):
        path = f"{dest}/usr/local/bin/{name}"
        assert os.access(path, os.X_OK), path
    for name in ("tcr", "tcrd"):  # -I -S: no site (start-up time, tcrd's memory), the site dir given
        with open(f"{dest}/usr/local/bin/{name}") as f:
            assert f.read().splitlines()[:3] == [f"#!{py} -IS", "import sys", f'sys.path.append("{site}")']
    unit = f"{dest}/lib/systemd/system/tcrd.service"
    assert oct(os.stat(unit).st_mode & 0o777) == "0o644"
    assert "ExecStart=/usr/local/bin/tcrd\n" in read(unit)
    init = f"{dest}/etc/init.d/S95tcrd"
    assert os.access(init, os.X_OK)
    assert ': "${TCRD_BIN:=/usr/local/bin/$DAEMON}"' in read(init)


def test_package_is_complete_and_importable(installed):
    py, dest, site = installed
    assert site.startswith("/usr/local/")
    tree = dest + site
    assert os.path.isfile(f"{tree}/tcr/__init__.py") and os.path.isfile(f"{tree}/tcr_host/__init__.py")
    assert os.path.isdir(f"{tree}/tcr-{version()}.dist-info")
    assert os.path.isfile(f"{tree}/tcr/py.typed")
    for data in glob.glob(os.path.join(ROOT, "target", "tcr", "data", "*.json")):
        assert os.path.isfile(f"{tree}/tcr/data/{os.path.basename(data)}")
    assert not glob.glob(f"{tree}/init") and not os.path.exists(f"{tree}/tcr/init")
    env = dict(os.environ, PYTHONPATH=tree)
    r = subprocess.run([py, "-c", "import tcr, tcr.cli.main, tcr.formats.image_info; print(tcr.__file__)"],
                       capture_output=True, text=True, env=env, timeout=60, cwd="/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith(tree + "/tcr/")
    r = subprocess.run([py, f"{dest}/usr/local/bin/tcr", "--help"], capture_output=True, text=True, env=env,
                       timeout=60, cwd="/")
    assert r.returncode == 0, r.stderr
    assert "usage" in (r.stdout + r.stderr).lower()


def test_bytecode_names_the_installed_paths(installed):
    _, dest, site = installed
    pycs = glob.glob(f"{dest}{site}/tcr/common/__pycache__/errors.*.pyc")
    assert pycs, "no byte code compiled at install (slow first start on a board)"
    with open(pycs[0], "rb") as f:
        code = marshal.loads(f.read()[16:])
    assert code.co_filename == f"{site}/tcr/common/errors.py"


def test_prefix_usr_and_sysv_only(tmp_path):
    py = python_for_install()
    dest = str(tmp_path)
    r = make("install", f"DESTDIR={dest}", f"PYTHON={py}", "PREFIX=/usr", "INIT=sysv")
    assert r.returncode == 0, r.stdout + r.stderr
    assert os.access(f"{dest}/usr/bin/tcrd", os.X_OK)
    assert os.access(f"{dest}/etc/init.d/S95tcrd", os.X_OK)
    assert not os.path.exists(f"{dest}/lib/systemd/system/tcrd.service")
    site = site_dir(py, "/usr")
    assert site.startswith("/usr/") and os.path.isfile(f"{dest}{site}/tcr/__init__.py")


def test_uninstall_removes_files_and_keeps_data(tmp_path):
    py = python_for_install()
    dest = str(tmp_path)
    assert make("install", f"DESTDIR={dest}", f"PYTHON={py}").returncode == 0
    os.makedirs(f"{dest}/var/lib/tcr/images")
    with open(f"{dest}/var/lib/tcr/images/keep", "w") as f:
        f.write("data")
    r = make("uninstall", f"DESTDIR={dest}", f"PYTHON={py}")
    assert r.returncode == 0, r.stderr
    left = [os.path.join(d, f) for d, _, files in os.walk(dest) for f in files]
    assert left == [f"{dest}/var/lib/tcr/images/keep"], left
