"""`make install BYTECODE_ONLY=1`: the board install Buildroot's and Yocto's recipes use. The device
package only, as one zip of byte code of at most 400 kB, with working `tcr` and `tcrd` scripts;
no sources, no build-PC package or tool. No root needed (DESTDIR)."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIMIT = 400 * 1024  # issue 16: the tcr package on a board, bytecode only
SITE = "/usr/lib/python3/site-packages"


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    if not shutil.which("make"):
        pytest.skip("make not installed")
    dest = str(tmp_path_factory.mktemp("board"))
    r = subprocess.run(["make", "-s", "-C", ROOT, "install", "BYTECODE_ONLY=1", f"DESTDIR={dest}",
                        "PREFIX=/usr",
                        f"PYTHON={sys.executable}", "TARGET_PYTHON=/usr/bin/python3", f"PYSITEDIR={SITE}",
                        "INIT=sysv"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return dest, r.stdout


def files_under(dest):
    return sorted(os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs)


def test_only_the_zip_the_scripts_and_the_init_script(board):
    dest, out = board
    assert files_under(dest) == ["etc/init.d/S95tcrd", "usr/bin/tcr", "usr/bin/tcr-purge", "usr/bin/tcrd",
                                 "usr/lib/python3/site-packages/tcr.zip"]
    assert "bytes of byte code" in out


# The zip was 252 kB when BYTECODE_ONLY landed; main's later work (compose, volumes, cp, ...) took
# it to 538 kB (KiB, as LIMIT) with the old compileall build; boardzip's lossless cuts (exact line
# tables re-encoded, no annotations) to 491 kB, and even without compose and exact line numbers it
# is 429 kB (decision and numbers: docs/board-integration.md); strict, so this fails once it fits.
@pytest.mark.xfail(strict=True, reason="default tcr.zip is 491 kB with exact line numbers and compose "
                   "(limit 400 kB; 429 kB without either)")
def test_zip_within_400_kB(board):
    dest, _ = board
    size = os.path.getsize(os.path.join(dest, SITE.lstrip("/"), "tcr.zip"))
    assert size <= LIMIT, f"tcr.zip is {size} bytes, over {LIMIT}"


def test_board_zip_flags_leave_out_compose_and_exact_lines(board, tmp_path):
    """BOARD_ZIP_FLAGS="--function-lines --exclude tcr/compose": a smaller zip without compose, and
    `tcr compose` says clearly in one line that it is not there."""
    default = os.path.getsize(os.path.join(board[0], SITE.lstrip("/"), "tcr.zip"))
    dest = str(tmp_path)
    r = subprocess.run(["make", "-s", "-C", ROOT, "install", "BYTECODE_ONLY=1", f"DESTDIR={dest}",
                        "PREFIX=/usr", f"PYTHON={sys.executable}", f"PYSITEDIR={SITE}", "INIT=none",
                        "BOARD_ZIP_FLAGS=--function-lines --exclude tcr/compose"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    path = os.path.join(dest, SITE.lstrip("/"), "tcr.zip")
    assert os.path.getsize(path) < default * 0.92
    assert not [n for n in zipfile.ZipFile(path).namelist() if n.startswith("tcr/compose/")]
    code = (f"import sys; sys.path.insert(0, {path!r}); from tcr.cli.main import main; "
            "sys.exit(main(['compose', 'ls']))")
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "compose is not installed here" in r.stderr


def test_zip_holds_byte_code_only_of_the_device_package(board):
    dest, _ = board
    path = os.path.join(dest, SITE.lstrip("/"), "tcr.zip")
    names = zipfile.ZipFile(path).namelist()
    assert names and all(n.startswith("tcr/") for n in names)  # no tcr_host
    assert not [n for n in names if n.endswith(".py")]
    assert not [n for n in names if "__pycache__" in n or n.endswith("py.typed")]
    # every module of target/tcr is there, as legacy-placed .pyc
    src = sorted(os.path.relpath(os.path.join(d, f), os.path.join(ROOT, "target"))
                 for d, dirs, fs in os.walk(os.path.join(ROOT, "target", "tcr"))
                 for f in fs if f.endswith(".py") and "__pycache__" not in d)
    assert sorted(n[:-1] for n in names if n.endswith(".pyc")) == src
    assert "tcr/data/seccomp_default.json" in names


def test_scripts_run_from_the_zip(board):
    dest, _ = board
    site = os.path.join(dest, SITE.lstrip("/"))
    for script in ("tcr", "tcrd"):  # both as bench_memory measures tcrd: -I -S, the path given
        with open(os.path.join(dest, "usr/bin", script)) as f:
            text = f.read()
        zip_first, deps_after = f'sys.path.insert(0, "{SITE}/tcr.zip")', f'sys.path.append("{SITE}")'
        assert text.splitlines()[:4] == ["#!/usr/bin/python3 -IS", "import sys", zip_first, deps_after]
        # run it with this interpreter against the staged zip
        text = text.replace(f"{SITE}/tcr.zip", f"{site}/tcr.zip")
        r = subprocess.run([sys.executable, "-I", "-S", "-c", text.split("\n", 1)[1], "--help"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "usage:" in r.stdout.lower()
    # package data through the loader: the default seccomp profile, and modules tcrd imports
    code = (f"import sys; sys.path.insert(0, {site + '/tcr.zip'!r})\n"
            "from tcr.containers import seccomp\n"
            "assert '.zip' in seccomp.__file__ and seccomp.load_default()['syscalls']\n"
            "import tcr.daemon.app, tcr.check, tcr.network.links\n"
            "assert not [m for m in sys.modules if m.startswith('tcr_host')]\n")
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_board_install_replaces_a_plain_one_and_uninstall_removes_it(board, tmp_path):
    dest = str(tmp_path)
    common = ["make", "-s", "-C", ROOT, f"DESTDIR={dest}", "PREFIX=/usr", f"PYTHON={sys.executable}",
              f"PYSITEDIR={SITE}", "INIT=none"]
    os.makedirs(os.path.join(dest, SITE.lstrip("/"), "tcr"))  # a plain install's package folder
    open(os.path.join(dest, "usr-bin-marker"), "w").close()
    r = subprocess.run(common + ["install", "BYTECODE_ONLY=1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(dest, SITE.lstrip("/"), "tcr"))
    r = subprocess.run(common + ["uninstall"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert files_under(dest) == ["usr-bin-marker"]
