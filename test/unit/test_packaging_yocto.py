"""The Yocto layer buildroot/meta-tcr: recipe versions agree with the project, the license
checksum is right, and RDEPENDS lists exactly the Python standard library split packages that
target/tcr imports (mapping from oe-core's python3-manifest.json)."""

import ast
import hashlib
import os
import re
import sys
from typing import Dict, List, Set

import pytest

from test.fixtures.project import pyproject_version, read

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAYER = os.path.join(ROOT, "buildroot", "meta-tcr")
RECIPE_DIR = os.path.join(LAYER, "recipes-containers", "tcr")

# stdlib module (top level, or a dotted name where a submodule lives elsewhere) -> the oe-core
# package holding it, per meta/recipes-devtools/python/python3/python3-manifest.json.
# "core" needs no extra entry. An import missing here fails test_every_stdlib_import_is_mapped.
_CORE = """
__future__ _abc _bisect _codecs _collections _collections_abc _compression _functools _heapq _imp _io
_locale _operator _posixsubprocess _signal _sre _stat _string _struct _thread _warnings _weakref
_weakrefset abc argparse array ast atexit binascii bisect builtins bz2 code codecs codeop collections
configparser contextlib copy copyreg csv dataclasses dis encodings enum errno faulthandler fnmatch
functools gc genericpath getopt gettext glob grp heapq importlib inspect io ipaddress itertools keyword
linecache locale lzma marshal math operator optparse os pathlib pkgutil platform posix posixpath pwd re
reprlib rlcompleter runpy select selectors shutil signal site sre_compile sre_constants sre_parse stat
stringprep struct subprocess sys sysconfig textwrap threading time token tokenize traceback types typing
unicodedata urllib.parse warnings weakref zipimport zlib
"""
_OTHER = {
    "asyncio": "asyncio", "concurrent": "asyncio",
    "wave": "audio",
    "_multibytecodec": "codecs",
    "compileall": "compile", "filecmp": "compile", "py_compile": "compile",
    "gzip": "compression", "tarfile": "compression", "zipfile": "compression",
    "hashlib": "crypt", "_hashlib": "crypt", "_md5": "crypt", "_sha1": "crypt", "_sha2": "crypt",
    "_sha256": "crypt", "_sha512": "crypt", "_sha3": "crypt", "_blake2": "crypt",
    "ctypes": "ctypes", "_ctypes": "ctypes",
    "curses": "curses",
    "datetime": "datetime", "_datetime": "datetime", "calendar": "datetime", "_strptime": "datetime",
    "dbm": "db",
    "bdb": "debugger", "pdb": "debugger",
    "difflib": "difflib", "doctest": "doctest",
    "email": "email", "imaplib": "email",
    "fcntl": "fcntl",
    "html": "html",
    "colorsys": "image",
    "_pyio": "io", "_socket": "io", "socket": "io", "_ssl": "io", "ssl": "io", "tempfile": "io",
    "termios": "io",
    "json": "json", "_json": "json",
    "logging": "logging",
    "mailbox": "mailbox",
    "random": "math", "_random": "math", "cmath": "math",
    "quopri": "mime",
    "mmap": "mmap",
    "multiprocessing": "multiprocessing", "_multiprocessing": "multiprocessing",
    "base64": "netclient", "ftplib": "netclient", "hmac": "netclient", "http": "netclient",
    "mimetypes": "netclient", "poplib": "netclient", "secrets": "netclient", "smtplib": "netclient",
    "urllib": "netclient", "uuid": "netclient", "_uuid": "netclient",
    "socketserver": "netserver",
    "contextvars": "numbers", "_contextvars": "numbers", "decimal": "numbers", "_decimal": "numbers",
    "fractions": "numbers", "numbers": "numbers",
    "pickle": "pickle", "_pickle": "pickle", "pickletools": "pickle", "shelve": "pickle",
    "plistlib": "plistlib", "pprint": "pprint",
    "cProfile": "profile", "profile": "profile", "pstats": "profile",
    "pydoc": "pydoc",
    "resource": "resource",
    "cmd": "shell", "shlex": "shell",
    "sqlite3": "sqlite3", "statistics": "statistics",
    "string": "stringold",
    "syslog": "syslog",
    "pty": "terminal", "tty": "terminal",
    "queue": "threading", "_queue": "threading", "_threading_local": "threading",
    "tkinter": "tkinter", "tomllib": "tomllib", "unittest": "unittest", "getpass": "unixadmin",
    "venv": "venv", "xml": "xml", "pyexpat": "xml", "xmlrpc": "xmlrpc", "zipapp": "zipapp",
    "zoneinfo": "zoneinfo",
}
YOCTO_STDLIB_PACKAGE: Dict[str, str] = {m: "core" for m in _CORE.split()}
YOCTO_STDLIB_PACKAGE.update(_OTHER)
# third-party module -> recipe (None: optional, the code falls back without it)
YOCTO_THIRD_PARTY = {"dnslib": "python3-dnslib", "PySquashfsImage": "python3-pysquashfsimage", "ujson": None,
                     "yaml": None}


def recipe_path() -> str:
    bbs = [f for f in os.listdir(RECIPE_DIR) if f.endswith(".bb")]
    assert len(bbs) == 1, bbs
    return os.path.join(RECIPE_DIR, bbs[0])


def bb_vars(path: str) -> Dict[str, str]:
    """Assignments of a recipe (continuations joined, quotes removed, += appended)."""
    out: Dict[str, str] = {}
    text = re.sub(r"\\\n", " ", read(path))
    for line in text.splitlines():
        m = re.match(r'^([A-Za-z0-9_:${}\[\]\-]+)\s*(\?\?=|\?=|:=|\+=|\.=|=)\s*"(.*)"\s*$', line)
        if not m:
            continue
        name, op, val = m.group(1), m.group(2), " ".join(m.group(3).split())
        if op in ("+=", ".="):
            out[name] = (out.get(name, "") + (" " if op == "+=" else "") + val).strip()
        elif op in ("?=", "??="):
            out.setdefault(name, val)
        else:
            out[name] = val
    return out


def imported_modules() -> Dict[str, Set[str]]:
    """Every imported module name, dotted and top level -> files importing it."""
    found: Dict[str, Set[str]] = {}
    for d, dirs, files in os.walk(os.path.join(ROOT, "target", "tcr")):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(d, f)
            rel = os.path.relpath(path, ROOT)
            for n in ast.walk(ast.parse(read(path))):
                names: List[str] = []
                if isinstance(n, ast.Import):
                    names = [a.name for a in n.names]
                elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
                    names = [n.module]
                for name in names:
                    found.setdefault(name, set()).add(rel)
    return found


def yocto_package_of(dotted: str) -> str:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):  # the most specific entry wins (urllib.parse is core)
        key = ".".join(parts[:i])
        if key in YOCTO_STDLIB_PACKAGE:
            return YOCTO_STDLIB_PACKAGE[key]
    raise KeyError(dotted)


def needed_stdlib_packages() -> Dict[str, Set[str]]:
    """python3-<pkg> -> modules needing it."""
    out: Dict[str, Set[str]] = {}
    for dotted in imported_modules():
        if dotted.split(".")[0] in sys.stdlib_module_names:
            out.setdefault("python3-" + yocto_package_of(dotted), set()).add(dotted)
    return out


def rdepends() -> List[str]:
    return bb_vars(recipe_path()).get("RDEPENDS:${PN}", "").split()


# ---- tests ------------------------------------------------------------------------------------

def test_recipe_version_matches_pyproject():
    m = re.fullmatch(r"tcr_([0-9][0-9A-Za-z.+-]*)\.bb", os.path.basename(recipe_path()))
    assert m and m.group(1) == pyproject_version()


def test_every_stdlib_import_is_mapped():
    unmapped = {}
    for dotted, where in imported_modules().items():
        if dotted.split(".")[0] in sys.stdlib_module_names:
            try:
                yocto_package_of(dotted)
            except KeyError:
                unmapped[dotted] = sorted(where)
    assert not unmapped, f"add these modules to YOCTO_STDLIB_PACKAGE (see python3-manifest.json): {unmapped}"


def test_rdepends_lists_exactly_the_imported_stdlib_packages():
    needed = needed_stdlib_packages()
    needed.setdefault("python3-core", set())
    third_party = {r for r in YOCTO_THIRD_PARTY.values() if r}
    listed = {d for d in rdepends() if d.startswith("python3-") and d not in third_party}
    missing = {p: sorted(m) for p, m in needed.items() if p not in listed}
    extra = sorted(listed - set(needed))
    assert not missing, f"tcr_*.bb RDEPENDS lacks {missing} (package: modules imported by target/tcr)"
    assert not extra, f"tcr_*.bb RDEPENDS lists {extra}, which target/tcr does not import"


def test_rdepends_third_party_and_tools():
    deps = set(rdepends())
    assert {"crun", "nftables"} <= deps
    imported = {d.split(".")[0] for d in imported_modules()}
    for mod, recipe in YOCTO_THIRD_PARTY.items():
        if recipe and mod in imported:
            assert recipe in deps, f"target/tcr imports {mod}: add {recipe} to RDEPENDS"
    for recipe in ("python3-dnslib", "python3-pysquashfsimage"):
        assert recipe in deps
    # imported nowhere: netlink is tcr.network.links (pyroute2 stays a test-only oracle)
    assert "python3-pyroute2" not in deps and "pyroute2" not in read(os.path.join(LAYER, "README.md"))


def test_mapping_detects_a_missing_package(monkeypatch):
    # a module from a split package must make the exactness check fail until RDEPENDS has it
    assert yocto_package_of("logging.handlers") == "logging"
    assert yocto_package_of("urllib.parse") == "core"
    assert yocto_package_of("urllib.request") == "netclient"
    with pytest.raises(KeyError):
        yocto_package_of("antigravity")


def test_rrecommends_kernel_modules():
    rrec = set(bb_vars(recipe_path()).get("RRECOMMENDS:${PN}", "").split())
    for mod in ("squashfs", "overlay", "loop", "veth", "bridge", "nf-tables", "nft-nat", "nft-masq", "nft-ct",
                "nft-chain-nat", "nft-fib-ipv4"):
        assert f"kernel-module-{mod}" in rrec
    # tcr's table is `ip`: the inet fib module is not what it loads
    assert "kernel-module-nft-fib-inet" not in rrec


def test_recipe_build_classes_and_init_integration():
    text = read(recipe_path())
    inherits = set()
    for line in re.findall(r"^inherit\s+(.*)$", text, re.M):
        inherits |= set(line.split())
    # pyproject's backend is setuptools.build_meta -> the PEP 517 setuptools class
    assert 'build-backend = "setuptools.build_meta"' in read(os.path.join(ROOT, "pyproject.toml"))
    assert {"python3native", "python3-dir", "systemd", "update-rc.d", "features_check"} <= inherits
    # the board gets byte code only, through the project's own install (issue 16)
    assert re.search(r"oe_runmake -C \$\{S\} install BYTECODE_ONLY=1 ", text)
    assert "PYTHON=${PYTHON}" in text and "PYSITEDIR=${PYTHON_SITEPACKAGES_DIR}" in text
    v = bb_vars(recipe_path())
    assert v["SYSTEMD_SERVICE:${PN}"] == "tcrd.service"
    assert v["INITSCRIPT_NAME"] == "tcrd"
    assert re.fullmatch(r"defaults 95( \d+)?", v["INITSCRIPT_PARAMS"])
    assert "${systemd_system_unitdir}/tcrd.service" in text
    assert "${INIT_D_DIR}/tcrd" in text
    for rel in re.findall(r"\$\{S\}/(\S+)", text):
        assert os.path.exists(os.path.join(ROOT, rel)), f"recipe uses {rel}, which does not exist"
    # the sed substitutions match lines of the files they edit
    assert re.search(r"^ExecStart=/usr/bin/tcrd$", read(os.path.join(ROOT, "target/init/tcrd.service")), re.M)
    assert "TCRD_BIN:=/usr/bin/" in read(os.path.join(ROOT, "target/init/S95tcrd"))


def test_license_checksum_is_the_license_file():
    v = bb_vars(recipe_path())
    assert v["LICENSE"] == "MIT"
    m = re.fullmatch(r"file://LICENSE;md5=([0-9a-f]{32})", v["LIC_FILES_CHKSUM"])
    assert m, v["LIC_FILES_CHKSUM"]
    with open(os.path.join(ROOT, "LICENSE"), "rb") as f:
        text = f.read()
    assert text.startswith(b"MIT License")
    assert hashlib.md5(text).hexdigest() == m.group(1), "LICENSE changed: update LIC_FILES_CHKSUM"


def test_default_source_is_the_tree_holding_the_layer():
    text = read(recipe_path())
    m = re.search(r"os\.path\.join\(d\.getVar\('THISDIR'\), '([./]+)'\)", text)
    assert m
    assert os.path.realpath(os.path.join(RECIPE_DIR, m.group(1))) == os.path.realpath(ROOT)
    assert "protocol=file" in text and 'S = "${WORKDIR}/git"' in text


def test_layer_conf():
    text = read(os.path.join(LAYER, "conf", "layer.conf"))
    assert 'BBFILE_COLLECTIONS += "tcr"' in text
    assert 'BBFILE_PATTERN_tcr = "^${LAYERDIR}/"' in text
    compat = re.search(r'^LAYERSERIES_COMPAT_tcr = "([a-z ]+)"$', text, re.M)
    # exactly the releases make check-recipes parses with bitbake (kirkstone's setuptools is too
    # old; styhead and later reject S = "${WORKDIR}/git"; styhead/walnascar are end of life)
    from test.recipes.check_recipes import RELEASES
    assert compat and compat.group(1).split() == RELEASES.split() == ["scarthgap"]
    deps = re.search(r'^LAYERDEPENDS_tcr = "([^"]+)"$', text, re.M)
    assert deps
    assert {"core", "meta-python", "networking-layer", "filesystems-layer", "virtualization-layer"} <= \
        set(deps.group(1).split())
    # BBFILES globs pick up every recipe of the layer
    for d, _, files in os.walk(LAYER):
        for f in files:
            if f.endswith(".bb"):
                rel = os.path.relpath(os.path.join(d, f), LAYER).split(os.sep)
                assert len(rel) == 3 and rel[0].startswith("recipes-"), rel


@pytest.mark.parametrize("name,pypi", [("python3-dnslib", "dnslib"),
                                       ("python3-pysquashfsimage", "PySquashfsImage")])
def test_pypi_recipes(name, pypi):
    d = os.path.join(LAYER, "recipes-devtools", "python")
    bbs = [f for f in os.listdir(d) if f.startswith(name + "_") and f.endswith(".bb")]
    assert len(bbs) == 1
    v = bb_vars(os.path.join(d, bbs[0]))
    text = read(os.path.join(d, bbs[0]))
    assert re.search(r"^inherit pypi (setuptools3|python_setuptools_build_meta)$", text, re.M)
    assert v["PYPI_PACKAGE"] == pypi
    assert re.fullmatch(r"file://\S+;md5=[0-9a-f]{32}", v["LIC_FILES_CHKSUM"])
    assert re.fullmatch(r"[0-9a-f]{64}", v["SRC_URI[sha256sum]"])
    assert "python3-core" in v["RDEPENDS:${PN}"].split()


def test_release_build_pins_srcrev_and_pv():
    text = read(recipe_path())
    v = bb_vars(recipe_path())
    # PV comes from the file name (= pyproject's version); only an unpinned (AUTOREV) build
    # marks itself +git<rev>, a pinned SRCREV keeps PV exactly the project's version
    assert "PV =" not in text.replace("PV .=", "")
    assert "PV .= \"${@'+git' if 'AUTOREV' in (d.getVar('SRCREV', False) or '') else ''}\"" in text
    assert v["SRCREV"] == "${AUTOREV}" and re.search(r'^SRCREV \?= "\$\{AUTOREV\}"$', text, re.M)
    assert v["HOMEPAGE"]


def test_distro_features_crun_needs_are_checked_at_parse_time():
    # meta-virtualization's crun: REQUIRED_DISTRO_FEATURES ?= "systemd seccomp"; without them
    # bitbake said only "Nothing RPROVIDES 'crun'"
    text = read(recipe_path())
    assert re.search(r"^inherit .*\bfeatures_check\b", text, re.M)
    # (and oe-core's systemd recipe needs usrmerge)
    features = set(bb_vars(recipe_path())["REQUIRED_DISTRO_FEATURES"].split())
    assert features == {"seccomp", "systemd", "usrmerge"}


# ---- the standard library tcrd needs on the board (docs/board-integration.md) ------------------

DOC = os.path.join(ROOT, "docs", "board-integration.md")
BEGIN, END = "<!-- stdlib-modules: begin -->", "<!-- stdlib-modules: end -->"


def stdlib_table() -> str:
    """Top-level standard library modules target/tcr imports, by the Yocto package holding them."""
    by_pkg: Dict[str, Set[str]] = {}
    for dotted in imported_modules():
        top = dotted.split(".")[0]
        if top in sys.stdlib_module_names:
            by_pkg.setdefault("python3-" + yocto_package_of(dotted), set()).add(top)
    rows = ["| Yocto package | modules tcr and tcrd import |", "|---|---|"]
    for pkg in sorted(by_pkg, key=lambda p: (p != "python3-core", p)):
        rows.append(f"| `{pkg}` | {', '.join(f'`{m}`' for m in sorted(by_pkg[pkg]))} |")
    return "\n".join(rows)


def test_board_integration_lists_the_stdlib_modules_tcrd_imports():
    text = read(DOC)
    assert BEGIN in text and END in text
    listed = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    want = stdlib_table()
    assert listed == want, f"update docs/board-integration.md between the markers to:\n{want}"
