"""The BR2_EXTERNAL tree in buildroot/: Buildroot's check-package conventions (re-implemented
here, as Buildroot is not vendored), versions and hashes that agree with the project and with
the Yocto layer, and Kconfig selects that cover what target/tcr imports."""

import ast
import gzip
import os
import re
import sys
from typing import Dict, List, Set

import pytest

from test.fixtures.project import pyproject_version, read

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BR = os.path.join(ROOT, "buildroot")
PKGDIR = os.path.join(BR, "package")
PACKAGES = ["tcr", "python-dnslib", "python-pysquashfsimage"]

# Symbols outside this tree that our Config.in files use, each checked against Buildroot's own
# Config.in files (package/crun, libcap, libseccomp, nftables, python3, cgroupfs-*, toolchain);
# make check-recipes loads them with the real Buildroot.
KNOWN_BUILDROOT_SYMBOLS = {
    "BR2_PACKAGE_CRUN", "BR2_PACKAGE_NFTABLES", "BR2_PACKAGE_PYTHON3", "BR2_PACKAGE_LIBCAP",
    "BR2_PACKAGE_LIBSECCOMP", "BR2_PACKAGE_LIBSECCOMP_ARCH_SUPPORTS", "BR2_TOOLCHAIN_HEADERS_AT_LEAST_3_17",
    "BR2_PACKAGE_PYTHON3_ZLIB", "BR2_PACKAGE_PYTHON3_SSL", "BR2_PACKAGE_PYTHON3_SQLITE",
    "BR2_PACKAGE_PYTHON3_XZ", "BR2_PACKAGE_PYTHON3_BZIP2", "BR2_PACKAGE_PYTHON3_DECIMAL",
    "BR2_PACKAGE_PYTHON3_PYEXPAT", "BR2_PACKAGE_PYTHON3_UNICODEDATA", "BR2_PACKAGE_PYTHON3_CURSES",
    "BR2_PACKAGE_PYTHON3_READLINE", "BR2_PACKAGE_CGROUPFS_V2_MOUNT", "BR2_PACKAGE_CGROUPFS_MOUNT",
    "BR2_INIT_SYSTEMD", "BR2_TOOLCHAIN_USES_UCLIBC", "BR2_TOOLCHAIN_GCC_AT_LEAST_4_9", "BR2_USE_WCHAR",
    "BR2_TOOLCHAIN_HEADERS_AT_LEAST_3_12", "BR2_USE_MMU",
}
# stdlib module -> the Buildroot python3 option that builds it (modules not listed are always built)
BR_PYTHON3_OPTION = {
    "zlib": "ZLIB", "gzip": "ZLIB", "zipfile": "ZLIB", "ssl": "SSL", "_ssl": "SSL", "sqlite3": "SQLITE",
    "lzma": "XZ", "bz2": "BZIP2", "decimal": "DECIMAL", "xml": "PYEXPAT", "pyexpat": "PYEXPAT",
    "unicodedata": "UNICODEDATA", "curses": "CURSES", "readline": "READLINE",
}
THIRD_PARTY_OPTION = {
    "dnslib": "BR2_PACKAGE_PYTHON_DNSLIB",
    "PySquashfsImage": "BR2_PACKAGE_PYTHON_PYSQUASHFSIMAGE",
}


def mk_vars(path: str) -> Dict[str, str]:
    """Simple assignments of a .mk file (continuations joined; define blocks skipped)."""
    out: Dict[str, str] = {}
    text = re.sub(r"\\\n\s*", " ", read(path))
    in_define = False
    for line in text.splitlines():
        if line.startswith("define "):
            in_define = True
        elif line.startswith("endef"):
            in_define = False
        elif not in_define:
            m = re.match(r"^([A-Z0-9_]+)\s*(\+=|:=|\?=|=)\s*(.*)$", line)
            if m:
                out[m.group(1)] = (out.get(m.group(1), "") + " " + m.group(3)).strip() \
                    if m.group(2) == "+=" else m.group(3).strip()
    return out


def common_text_problems(path: str) -> List[str]:
    text = read(path)
    errs = []
    if not text.endswith("\n"):
        errs.append("no newline at end of file")
    if text.endswith("\n\n"):
        errs.append("empty last line")
    for i, line in enumerate(text.split("\n"), 1):
        if line != line.rstrip():
            errs.append(f"line {i}: trailing whitespace")
    if "\n\n\n" in text:
        errs.append("consecutive empty lines")
    return [f"{os.path.relpath(path, ROOT)}: {e}" for e in errs]


# ---- Config.in -------------------------------------------------------------------------------

INDENTED = {"bool", "default", "depends", "help", "prompt", "select", "string"}
NOT_INDENTED = {"choice", "comment", "config", "endchoice", "endif", "endmenu", "if", "menu", "menuconfig",
                "source"}
ORDER = {"bool": 1, "prompt": 1, "string": 1, "default": 2, "depends": 3, "select": 4, "help": 5}


def config_in_problems(path: str) -> List[str]:
    errs = common_text_problems(path)
    rel = os.path.relpath(path, ROOT)
    in_help = False
    first_help_line = False
    state = 0
    backslash = False
    for i, line in enumerate(read(path).splitlines(), 1):
        stripped = line.strip()
        if backslash:
            backslash = line.endswith("\\")
            if not line.startswith("\t"):
                errs.append(f"{rel}:{i}: continuation line should be indented with tabs")
            continue
        if stripped == "" or stripped.startswith("#"):
            continue
        if in_help and line.startswith("\t  "):
            fmt = r"^\t  \S.{0,61}$" if first_help_line else r"^\t  .{0,62}$"
            first_help_line = False
            if not re.match(fmt, line) and not re.match(r"^(http|https|git)://\S*$", stripped):
                errs.append(f"{rel}:{i}: help text: <tab><2 spaces><62 chars>")
            continue
        word = stripped.split()[0]
        backslash = line.endswith("\\")
        if word in NOT_INDENTED:
            in_help = False
            state = 0
            if line != line.lstrip():
                errs.append(f"{rel}:{i}: {word} should not be indented")
            continue
        if word in INDENTED:
            if not line.startswith("\t" + word):
                errs.append(f"{rel}:{i}: {word} should be indented with one tab")
            if ORDER[word] < state:
                errs.append(f"{rel}:{i}: attributes order: type, default, depends on, select, help")
            state = ORDER[word]
            if word == "help":
                in_help = True
                first_help_line = True
            if re.match(r"^\tdefault n$", line.split("#")[0].rstrip()):
                errs.append(f"{rel}:{i}: 'default n' is redundant")
    return errs


def kconfig_symbols(path: str, keyword: str) -> Set[str]:
    out = set()
    for line in read(path).splitlines():
        s = line.strip()
        if s.startswith(keyword + " "):
            expr = s[len(keyword):].split("#")[0]
            out |= set(re.findall(r"\b[A-Z][A-Z0-9_]+\b", expr.replace(" if ", " ")))
    return out


def all_config_ins() -> List[str]:
    return [os.path.join(BR, "Config.in")] + [os.path.join(PKGDIR, p, "Config.in") for p in PACKAGES]


@pytest.mark.parametrize("path", all_config_ins(), ids=lambda p: os.path.relpath(p, BR))
def test_config_in_follows_check_package(path):
    assert config_in_problems(path) == []


def test_config_in_checker_catches_bad_indentation_and_long_help(tmp_path):
    p = tmp_path / "Config.in"
    p.write_text('config BR2_PACKAGE_X\n    bool "x"\n\thelp\n\t  ' + "y" * 70 + "\n\tselect BR2_PACKAGE_Y\n")
    errs = config_in_problems(str(p))
    assert any("indented with one tab" in e for e in errs)
    assert any("help text" in e for e in errs)
    assert any("attributes order" in e for e in errs)


def test_external_tree_layout():
    desc = read(os.path.join(BR, "external.desc"))
    name = re.search(r"^name:\s+(\S+)$", desc, re.M)
    assert name and re.fullmatch(r"[A-Za-z0-9_]+", name.group(1))
    var = f"BR2_EXTERNAL_{name.group(1)}_PATH"
    assert f"include $(sort $(wildcard $({var})/package/*/*.mk))" in read(os.path.join(BR, "external.mk"))
    top = read(os.path.join(BR, "Config.in"))
    for p in PACKAGES:
        assert f'source "${var}/package/{p}/Config.in"' in top
        assert os.path.isfile(os.path.join(PKGDIR, p, f"{p}.mk"))
        # every BR2_EXTERNAL_*_PATH reference in the tree uses this tree's name
        for f in os.listdir(os.path.join(PKGDIR, p)):
            for ref in re.findall(r"BR2_EXTERNAL_([A-Za-z0-9_]+)_PATH", read(os.path.join(PKGDIR, p, f))):
                assert ref == name.group(1), f"{p}/{f} refers to BR2_EXTERNAL_{ref}_PATH"


def test_every_select_and_depend_names_a_real_option():
    defined = set()
    for path in all_config_ins():
        defined |= set(re.findall(r"^config\s+(BR2_\w+)", read(path), re.M))
    for path in all_config_ins():
        for sym in kconfig_symbols(path, "select") | kconfig_symbols(path, "depends on"):
            assert re.fullmatch(r"BR2_[A-Z0-9_]+", sym), f"{path}: {sym} is not a Buildroot option name"
            assert sym in defined or sym in KNOWN_BUILDROOT_SYMBOLS, f"{path}: unknown option {sym}"


def test_package_option_names_follow_directory_names():
    for p in PACKAGES:
        sym = "BR2_PACKAGE_" + p.upper().replace("-", "_")
        assert re.search(rf"^config {sym}$", read(os.path.join(PKGDIR, p, "Config.in")), re.M), sym


# ---- .mk files ---------------------------------------------------------------------------------

def mk_problems(pkg: str) -> List[str]:
    path = os.path.join(PKGDIR, pkg, f"{pkg}.mk")
    rel = os.path.relpath(path, ROOT)
    errs = common_text_problems(path)
    lines = read(path).split("\n")
    hashes = "#" * 80
    if lines[:6] != [hashes, "#", f"# {pkg}", "#", hashes, ""]:
        errs.append(f"{rel}: header must be 80 '#', '#', '# {pkg}', '#', 80 '#', empty line")
    body = [x for x in lines if x.strip()]
    if body[-1] != "$(eval $(python-package))":
        errs.append(f"{rel}: last line must be $(eval $(python-package))")
    prefix = pkg.upper().replace("-", "_") + "_"
    in_define = False
    for i, line in enumerate(lines, 1):
        if line.startswith("define "):
            in_define = True
            if not line[7:].startswith(prefix):
                errs.append(f"{rel}:{i}: define name should start with {prefix}")
            continue
        if line.startswith("endef"):
            in_define = False
            continue
        if in_define:
            if line and not line.startswith("\t"):
                errs.append(f"{rel}:{i}: define body should be indented with a tab")
            continue
        m = re.match(r"^([A-Z0-9_]+)\s*(\+=|:=|\?=|=)", line)
        if m and not m.group(1).startswith(prefix):
            errs.append(f"{rel}:{i}: possible typo, variable {m.group(1)} should start with {prefix}")
        if m and re.match(r"^[A-Z0-9_]+(=|\+=)", line):
            errs.append(f"{rel}:{i}: use spaces around the assignment operator")
        if line.startswith(" ") and lines[i - 2].endswith("\\"):
            errs.append(f"{rel}:{i}: continuation line should be indented with a tab")
    v = mk_vars(path)
    for suffix in ("VERSION", "SITE", "LICENSE", "SETUP_TYPE"):
        if prefix + suffix not in v:
            errs.append(f"{rel}: {prefix}{suffix} missing")
    local = v.get(prefix + "SITE_METHOD") == "local"
    if not local:
        for suffix in ("SOURCE", "LICENSE_FILES"):
            if prefix + suffix not in v:
                errs.append(f"{rel}: {prefix}{suffix} missing")
        if f"$({prefix}VERSION)" not in v.get(prefix + "SOURCE", ""):
            errs.append(f"{rel}: {prefix}SOURCE should use $({prefix}VERSION)")
    if v.get(prefix + "SETUP_TYPE") not in ("setuptools", "pep517", "flit", "hatch", "poetry", "maturin"):
        errs.append(f"{rel}: unknown {prefix}SETUP_TYPE")
    return errs


@pytest.mark.parametrize("pkg", PACKAGES)
def test_mk_follows_check_package(pkg):
    assert mk_problems(pkg) == []


def test_tcr_version_matches_pyproject():
    assert mk_vars(os.path.join(PKGDIR, "tcr", "tcr.mk"))["TCR_VERSION"] == pyproject_version()


def test_tcr_uses_setuptools_infrastructure_matching_the_backend():
    # build-backend setuptools.build_meta: the "setuptools" type brings host-python-setuptools
    # and builds without isolation, so nothing is downloaded at build time.
    assert 'build-backend = "setuptools.build_meta"' in read(os.path.join(ROOT, "pyproject.toml"))
    assert mk_vars(os.path.join(PKGDIR, "tcr", "tcr.mk"))["TCR_SETUP_TYPE"] == "setuptools"


def test_tcr_local_site_copies_what_the_build_reads():
    v = mk_vars(os.path.join(PKGDIR, "tcr", "tcr.mk"))
    assert v["TCR_SITE_METHOD"] == "local"
    assert os.path.realpath(v["TCR_SITE"].replace("$(BR2_EXTERNAL_TCR_PATH)", BR)) == os.path.realpath(ROOT)
    rules = v["TCR_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS"]
    py = read(os.path.join(ROOT, "pyproject.toml"))
    needed = ["/pyproject.toml"]
    readme = re.search(r'^readme\s*=\s*"([^"]+)"', py, re.M)
    if readme:
        needed.append("/" + readme.group(1))
    where = re.search(r"^where\s*=\s*\[(.*?)\]", py, re.M)
    assert where
    needed += ["'/{}/***'".format(w.strip().strip('"')) for w in where.group(1).split(",")]
    scripts = re.search(r"^script-files\s*=\s*\[(.*?)\]", py, re.M)  # setuptools reads them at build
    if scripts:
        tops = {f.strip().strip('"').split("/")[0] for f in scripts.group(1).split(",")}
        needed += sorted(f"'/{t}/***'" for t in tops)
    for n in needed:
        assert f"--include {n}" in rules, f"tcr.mk does not copy {n}"
    assert rules.rstrip().endswith("--exclude '*'")
    # what the install hooks use is inside the copied tree
    for rel in re.findall(r"\$\(@D\)/(\S+)", read(os.path.join(PKGDIR, "tcr", "tcr.mk"))):
        assert os.path.exists(os.path.join(ROOT, rel)), rel
        assert rel.split("/")[0] in ("target", "host_tools"), rel


def test_tcr_installs_both_init_flavours_and_drops_build_pc_tools():
    mk = read(os.path.join(PKGDIR, "tcr", "tcr.mk"))
    assert re.search(r"define TCR_INSTALL_INIT_SYSV\n.*target/init/S95tcrd.*/etc/init.d/S95tcrd", mk, re.S)
    assert re.search(r"define TCR_INSTALL_INIT_SYSTEMD\n.*target/init/tcrd.service"
                     r".*/usr/lib/systemd/system/tcrd.service", mk, re.S)
    # the board install: byte code only, without tcr_host and tcr-create-image (make install does that)
    assert re.search(r"define TCR_INSTALL_TARGET_CMDS\n\t\$\(MAKE\) -C \$\(@D\) install BYTECODE_ONLY=1 ", mk)
    assert "PYTHON=$(HOST_DIR)/bin/python3" in mk and "DESTDIR=$(TARGET_DIR)" in mk
    rules = mk_vars(os.path.join(PKGDIR, "tcr", "tcr.mk"))["TCR_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS"]
    assert "--include /Makefile" in rules


def test_a_cgroup_hierarchy_is_mounted_under_busybox_init_on_every_buildroot():
    # cgroupfs-v2-mount only exists from Buildroot 2025.05: selecting it did nothing on 2024.02
    # and 2025.02 LTS. tcr installs its own script unless one of Buildroot's packages does it.
    cfg = read(os.path.join(PKGDIR, "tcr", "Config.in"))
    assert "CGROUPFS_V2_MOUNT" not in "".join(x for x in cfg.splitlines() if x.strip().startswith("select"))
    mk = read(os.path.join(PKGDIR, "tcr", "tcr.mk"))
    assert "ifeq ($(BR2_PACKAGE_CGROUPFS_MOUNT)$(BR2_PACKAGE_CGROUPFS_V2_MOUNT),)" in mk
    assert re.search(r"define TCR_INSTALL_CGROUP2_MOUNT\n"
                     r"\t\$\(INSTALL\) -D -m 0755 \$\(TCR_PKGDIR\)/S30tcr-cgroup2 \\\n"
                     r"\t\t\$\(TARGET_DIR\)/etc/init.d/S30tcr-cgroup2\n", mk)
    assert re.search(r"define TCR_INSTALL_INIT_SYSV\n(\t.*\n)*\t\$\(TCR_INSTALL_CGROUP2_MOUNT\)\nendef", mk)
    script = read(os.path.join(PKGDIR, "tcr", "S30tcr-cgroup2"))
    assert "mount -t cgroup2" in script and 'DAEMON="tcr-cgroup2"' in script


def test_rsync_rules_exclude_before_they_include():
    # rsync applies the first matching rule: an exclude after '--include /target/***' never applies
    rules = mk_vars(os.path.join(PKGDIR, "tcr", "tcr.mk"))["TCR_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS"].split()
    first_include = rules.index("--include")
    for pat in ("__pycache__", "'*.egg-info'"):
        assert pat in rules and rules.index(pat) < first_include, f"--exclude {pat} must come first"


def test_license_file_is_the_mit_text_pyproject_names():
    assert 'license = { text = "MIT" }' in read(os.path.join(ROOT, "pyproject.toml"))
    text = read(os.path.join(ROOT, "LICENSE"))
    assert text.startswith("MIT License\n") and "THE SOFTWARE IS PROVIDED \"AS IS\"" in text
    v = mk_vars(os.path.join(PKGDIR, "tcr", "tcr.mk"))
    assert v["TCR_LICENSE"] == "MIT" and v["TCR_LICENSE_FILES"] == "LICENSE"
    assert "--include /LICENSE" in v["TCR_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS"]


def test_init_scripts_are_not_executable_in_the_tree():
    # check-package: "This file does not need to be executable" ($(INSTALL) -m 0755 sets the mode)
    for path in (os.path.join(ROOT, "target", "init", "S95tcrd"),
                 os.path.join(PKGDIR, "tcr", "S30tcr-cgroup2")):
        assert not os.stat(path).st_mode & 0o111, path


# ---- hash files -------------------------------------------------------------------------------

HASH_LEN = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}


def hash_entries(pkg: str) -> Dict[str, str]:
    path = os.path.join(PKGDIR, pkg, f"{pkg}.hash")
    out = {}
    for i, line in enumerate(read(path).splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split()
        assert len(f) == 3, f"{pkg}.hash:{i}: expected three fields"
        assert line == "  ".join(f), f"{pkg}.hash:{i}: fields must be separated by two spaces"
        assert f[0] in HASH_LEN and re.fullmatch(f"[0-9a-f]{{{HASH_LEN[f[0]]}}}", f[1]), f"{pkg}.hash:{i}"
        out[f[2]] = f[1]
    return out


@pytest.mark.parametrize("pkg", ["python-dnslib", "python-pysquashfsimage"])
def test_hash_file_covers_source_and_license_files(pkg):
    assert common_text_problems(os.path.join(PKGDIR, pkg, f"{pkg}.hash")) == []
    prefix = pkg.upper().replace("-", "_") + "_"
    v = mk_vars(os.path.join(PKGDIR, pkg, f"{pkg}.mk"))
    source = v[prefix + "SOURCE"].replace(f"$({prefix}VERSION)", v[prefix + "VERSION"])
    entries = hash_entries(pkg)
    assert source in entries
    for lic in v[prefix + "LICENSE_FILES"].split():
        assert lic in entries


@pytest.mark.parametrize("pkg,pypi", [("python-dnslib", "dnslib"),
                                      ("python-pysquashfsimage", "PySquashfsImage")])
def test_pypi_packages_agree_with_yocto_and_pyproject(pkg, pypi):
    prefix = pkg.upper().replace("-", "_") + "_"
    v = mk_vars(os.path.join(PKGDIR, pkg, f"{pkg}.mk"))
    version = v[prefix + "VERSION"]
    letter = pypi[0]
    assert v[prefix + "SITE"] == f"https://files.pythonhosted.org/packages/source/{letter}/{pypi}"
    assert v[prefix + "SOURCE"] == f"{pypi}-$({prefix}VERSION).tar.gz"
    recipe_dir = os.path.join(BR, "meta-tcr", "recipes-devtools", "python")
    bb = os.path.join(recipe_dir, f"python3-{pypi.lower()}_{version}.bb")
    assert os.path.isfile(bb), f"Yocto recipe for {pypi} {version} missing"
    sha = re.search(r'SRC_URI\[sha256sum\]\s*=\s*"([0-9a-f]{64})"', read(bb))
    assert sha and sha.group(1) == hash_entries(pkg)[f"{pypi}-{version}.tar.gz"]
    # the packaged version satisfies pyproject's minimum
    m = re.search(rf'"{pypi}>=([0-9.]+)"', read(os.path.join(ROOT, "pyproject.toml")))
    assert m, f"{pypi} not a pyproject dependency"
    assert tuple(map(int, version.split("."))) >= tuple(map(int, m.group(1).split(".")))


# ---- Kconfig selects cover what the code imports -------------------------------------------------

def target_imports() -> Set[str]:
    mods = set()
    for d, dirs, files in os.walk(os.path.join(ROOT, "target", "tcr")):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        for f in files:
            if f.endswith(".py"):
                tree = ast.parse(read(os.path.join(d, f)))
                for n in ast.walk(tree):
                    if isinstance(n, ast.Import):
                        mods |= {a.name.split(".")[0] for a in n.names}
                    elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
                        mods.add(n.module.split(".")[0])
    return mods


def test_crun_gets_caps_and_seccomp():
    # crun.mk: --enable-caps only with BR2_PACKAGE_LIBCAP, --enable-seccomp only with
    # BR2_PACKAGE_LIBSECCOMP; without them containers keep every capability and have no seccomp.
    path = os.path.join(PKGDIR, "tcr", "Config.in")
    sel = kconfig_symbols(path, "select")
    dep = kconfig_symbols(path, "depends on")
    assert {"BR2_PACKAGE_LIBCAP", "BR2_PACKAGE_LIBSECCOMP"} <= sel
    # a select must carry the selected option's own dependencies (libseccomp, libcap, crun)
    assert {"BR2_PACKAGE_LIBSECCOMP_ARCH_SUPPORTS", "BR2_TOOLCHAIN_HEADERS_AT_LEAST_3_17",
            "BR2_USE_MMU"} <= dep
    comment = read(path).split("comment ", 1)[1]
    assert "headers >= 3.17" in comment and "BR2_TOOLCHAIN_HEADERS_AT_LEAST_3_17" in comment


def test_tcr_selects_runtime_tools_and_modules():
    sel = kconfig_symbols(os.path.join(PKGDIR, "tcr", "Config.in"), "select")
    assert {"BR2_PACKAGE_CRUN", "BR2_PACKAGE_NFTABLES",
            "BR2_PACKAGE_PYTHON_DNSLIB", "BR2_PACKAGE_PYTHON_PYSQUASHFSIMAGE"} <= sel
    # pyroute2 is imported nowhere and pulls OpenSSL and SQLite onto the board
    assert not any("PYROUTE2" in s for s in sel)
    imported = target_imports()
    for mod, opt in THIRD_PARTY_OPTION.items():
        if mod in imported:
            assert opt in sel, f"target/tcr imports {mod}: select {opt}"
    needed = {"BR2_PACKAGE_PYTHON3_" + BR_PYTHON3_OPTION[m] for m in imported
              if m in BR_PYTHON3_OPTION and m in sys.stdlib_module_names}
    selected = {s for s in sel if s.startswith("BR2_PACKAGE_PYTHON3_")}
    assert selected == needed, f"python3 options: select {sorted(needed)}, not {sorted(selected)}"


# ---- init script (Buildroot's sysv rules) -----------------------------------------------------------

def test_sysv_script_follows_buildroot_rules():
    path = os.path.join(ROOT, "target", "init", "S95tcrd")
    text = read(path)
    assert common_text_problems(path) == []
    for i, line in enumerate(text.splitlines(), 1):
        assert not re.match(r"^\t* ", line), f"S95tcrd:{i}: indent with tabs"
    daemon = re.findall(r"^DAEMON=[\"']?([^\"']*)[\"']?$", text, re.M)
    assert daemon == ["tcrd"], "DAEMON defined once, without a path"
    assert re.fullmatch(r"S\d\d" + daemon[0], os.path.basename(path))
    assert re.search(r'PIDFILE:=/var/run/\$DAEMON\.pid', text)


# ---- kernel fragment and defconfig ------------------------------------------------------------------

REQUIRED_KERNEL = {
    "SQUASHFS", "SQUASHFS_ZSTD", "OVERLAY_FS", "BLK_DEV_LOOP", "NAMESPACES", "NET_NS", "PID_NS", "IPC_NS",
    "UTS_NS", "VETH", "BRIDGE", "NF_TABLES", "NF_TABLES_IPV4", "NFT_NAT", "NFT_MASQ", "NFT_FIB_IPV4",
    "NF_NAT", "NF_CONNTRACK", "CGROUPS", "MEMCG", "CGROUP_PIDS", "CGROUP_SCHED", "CGROUP_DEVICE",
    "CGROUP_FREEZER", "SECCOMP", "SECCOMP_FILTER",
}


def fragment() -> Dict[str, str]:
    out: Dict[str, str] = {}
    path = os.path.join(BR, "board", "tcr-kernel.fragment")
    assert common_text_problems(path) == []
    for i, line in enumerate(read(path).splitlines(), 1):
        m = re.fullmatch(r"# (CONFIG_[A-Z0-9_]+) is not set", line)
        if m:
            sym, val = m.group(1), "n"
        elif not line or line.startswith("#"):
            continue
        else:
            m = re.fullmatch(r'(CONFIG_[A-Z0-9_]+)=(y|m|"[^"]*"|-?\d+|0x[0-9a-fA-F]+)', line)
            assert m, f"tcr-kernel.fragment:{i}: not a Kconfig assignment: {line!r}"
            sym, val = m.group(1), m.group(2)
        assert sym not in out, f"tcr-kernel.fragment:{i}: {sym} set twice"
        out[sym] = val
    return out


def test_kernel_fragment_enables_what_tcr_needs():
    frag = fragment()
    missing = {s for s in REQUIRED_KERNEL if frag.get("CONFIG_" + s) not in ("y", "m")}
    assert not missing, f"kernel fragment lacks {sorted(missing)}"


def test_kernel_fragment_has_no_option_its_dependencies_drop():
    # NFT_FIB_INET needs NFT_FIB_IPV6 and IPv6 nf_tables; tcr's table is `ip`: NFT_FIB_IPV4.
    # make check-recipes proves the whole fragment survives olddefconfig on real Kconfig trees.
    frag = fragment()
    assert "CONFIG_NFT_FIB_INET" not in frag and frag.get("CONFIG_NFT_FIB_IPV4") == "y"
    for needed_by, dep in (("VETH", "NET_CORE"), ("SQUASHFS", "BLOCK"), ("TMPFS", "SHMEM"),
                           ("NAMESPACES", "MULTIUSER"), ("CPUSETS", "SMP"), ("BRIDGE", "IPV6")):
        assert frag.get("CONFIG_" + dep) == "y", f"CONFIG_{needed_by} needs CONFIG_{dep}"


def test_kernel_fragment_symbols_exist_in_a_real_kernel():
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            running = f.read()
    except OSError:
        pytest.skip("/proc/config.gz not available to check symbol names against")
    unknown = [s for s in fragment() if not re.search(rf"^({s}=|# {s} is not set)", running, re.M)]
    assert not unknown, f"not symbols of the running kernel ({os.uname().release}): {unknown}"


def test_defconfig_uses_the_fragment_and_tcr():
    cfgdir = os.path.join(BR, "configs")
    defconfigs = [f for f in os.listdir(cfgdir) if f.endswith("_defconfig")]
    assert defconfigs
    for name in defconfigs:
        path = os.path.join(cfgdir, name)
        assert common_text_problems(path) == []
        text = read(path)
        for i, line in enumerate(text.splitlines(), 1):
            assert line.startswith("#") or re.fullmatch(r'BR2_\w+=(y|"[^"]*"|\d+)', line), f"{name}:{i}"
        assert "BR2_PACKAGE_TCR=y" in text and "BR2_PACKAGE_PYTHON3=y" in text
        # check-package wants it; savedefconfig form has no comments (make check-recipes compares)
        assert "BR2_DOWNLOAD_FORCE_CHECK_HASHES=y" in text
        assert not [x for x in text.splitlines() if x.startswith("#") and not x.endswith(" is not set")]
        frag = "$(BR2_EXTERNAL_TCR_PATH)/board/tcr-kernel.fragment"
        assert f'BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES="{frag}"' in text
