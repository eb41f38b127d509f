#!/usr/bin/env python3
"""`make check-recipes`: check buildroot/ and buildroot/meta-tcr with the real tools, offline.

Upstream trees come from tarballs (../shared/vendor/ beside the checkout by default, see
docs/board-integration.md) unpacked once into a cache keyed by the tarball's checksum, or from
BUILDROOT_DIR= (one or more Buildroot trees) and YOCTO_LAYERS_DIR= (a folder holding bitbake/,
openembedded-core/, meta-openembedded/, meta-virtualization/). Nothing is downloaded: Buildroot
only configures, bitbake only parses and resolves dependencies (BB_NO_NETWORK=1). A full build
needs the sources of every package and is out of reach offline.

Steps (each prints one line; --only NAME runs some of them):
  buildroot   check-package on the external tree and the init scripts; <defconfig>, savedefconfig
              equal to the committed file, printvars (crun with caps and seccomp, a cgroup mount
              under BusyBox init, no pyroute2), show-info; for every Buildroot tree
  kernel      the fragment merged into Debian's linux-source-6.1 like Buildroot does it
              (merge_config.sh -m + olddefconfig, dummy tools), arm64/x86_64 x defconfig,
              allnoconfig, tinyconfig: every option survives
  yocto       bitbake -p, bitbake -g tcr with INIT_MANAGER systemd and sysvinit, as an
              unprivileged user; without the seccomp distro feature tcr is refused by name
  oelint      oelint-adv --release scarthgap on the layer
  shell       shellcheck on the init scripts; systemd-analyze verify on the unit
"""

import argparse
import glob
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BR_EXT = os.path.join(ROOT, "buildroot")
LAYER = os.path.join(BR_EXT, "meta-tcr")
FRAGMENT = os.path.join(BR_EXT, "board", "tcr-kernel.fragment")
INIT = os.path.join(ROOT, "target", "init")
DEFCONFIG = "tcr_qemu_aarch64_virt_defconfig"
RELEASES = "scarthgap"
BB_USER = "tcr-recipes"
YOCTO_LAYERS = ("bitbake", "openembedded-core", "meta-openembedded", "meta-virtualization")
KERNEL_TARBALL = "/usr/src/linux-source-6.1.tar.xz"
KERNEL_BASES = [(arch, base) for arch in ("arm64", "x86_64")
                for base in ("defconfig", "allnoconfig", "tinyconfig")]


class Failed(Exception):
    pass


def read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def touch(path: str) -> None:
    with open(path, "w"):
        pass


def default_vendor() -> str:
    # CI: the clone with a copy of shared/ beside it (../shared/vendor); the dev VM: /work/shared.
    # (a git worktree under <project>/wt/<name>: two levels up)
    for cand in (os.path.join(os.path.dirname(ROOT), "shared", "vendor"),
                 os.path.join(os.path.dirname(os.path.dirname(ROOT)), "shared", "vendor")):
        if os.path.isdir(cand):
            return cand
    return os.path.join(os.path.dirname(ROOT), "shared", "vendor")


def default_cache() -> str:
    if os.geteuid() == 0:
        return "/var/cache/tcr-recipes"
    return os.path.join(os.path.expanduser("~"), ".cache", "tcr-recipes")


def sh(argv: Sequence[str], *, cwd: Optional[str] = None, env: Optional[Dict[str, str]] = None,
       check: bool = True, timeout: float = 3600) -> subprocess.CompletedProcess:
    res = subprocess.run(list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, timeout=timeout)
    if check and res.returncode != 0:
        tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-25:])
        raise Failed(f"{' '.join(argv)} exited {res.returncode}:\n{tail}")
    return res


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def unpack(tarball: str, cache: str, members: Optional[Sequence[str]] = None) -> str:
    """Unpack once into cache/<name>-<sha256[:16]>/ (a .done marker makes it atomic)."""
    key = os.path.basename(tarball).split(".tar")[0] + "-" + sha256(tarball)[:16]
    dest = os.path.join(cache, key)
    if os.path.exists(os.path.join(dest, ".done")):
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    tmp = dest + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    sh(["tar", "-xf", tarball, "-C", tmp] + list(members or []))
    os.rename(tmp, dest)
    touch(os.path.join(dest, ".done"))
    return dest


def only_dir(path: str) -> str:
    subs = [d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d))]
    if len(subs) != 1:
        raise Failed(f"{path}: expected one top folder, found {subs}")
    return os.path.join(path, subs[0])


# ---- Buildroot ---------------------------------------------------------------------------------

def external_tree_files() -> List[str]:
    out = []
    for d, dirs, files in os.walk(BR_EXT):
        dirs[:] = [x for x in dirs if x not in ("meta-tcr", "__pycache__")]
        out += [os.path.join(d, f) for f in files]
    return sorted(out)


def br_make(br: str, out: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, BR2_DL_DIR=os.path.join(out, "dl"), LC_ALL="C")
    env.pop("MAKEFLAGS", None)
    env.pop("MAKELEVEL", None)
    return sh(["make", "-s", "-C", br, f"O={out}", f"BR2_EXTERNAL={BR_EXT}", *args], env=env)


def check_buildroot(br: str, cache: str) -> str:
    version = sh(["make", "-s", "-C", br, "print-version"], env=dict(os.environ, MAKEFLAGS="")).stdout.strip()
    # check-package runs from the external tree's parent, with -b (a BR2_EXTERNAL tree)
    files = [os.path.relpath(f, ROOT) for f in external_tree_files()]
    files += [os.path.relpath(os.path.join(INIT, "S95tcrd"), ROOT)]
    res = sh(["/usr/bin/python3", os.path.join(br, "utils", "check-package"), "-b", *files], cwd=ROOT,
             check=False)
    warnings = [x for x in res.stdout.splitlines() + res.stderr.splitlines()
                if x and not re.search(r"lines processed|warnings generated", x)]
    if res.returncode != 0 or warnings:
        raise Failed(f"Buildroot {version} check-package:\n" + "\n".join(warnings))

    out = os.path.join(cache, f"br-out-{version}")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    br_make(br, out, DEFCONFIG)
    saved = os.path.join(out, "saved_defconfig")
    br_make(br, out, "savedefconfig", f"BR2_DEFCONFIG={saved}")
    committed = os.path.join(BR_EXT, "configs", DEFCONFIG)
    proc = subprocess.run(["diff", "-u", committed, saved], capture_output=True, text=True)
    if proc.returncode != 0:
        raise Failed(f"Buildroot {version}: {DEFCONFIG} is not in savedefconfig form:\n{proc.stdout}")

    config = read_text(os.path.join(out, ".config"))
    pv = br_make(br, out, "printvars", "VARS=CRUN_CONF_OPTS TCR_INSTALL_INIT_SYSV TCR_DEPENDENCIES").stdout
    # a define's value spans several lines: each variable runs until the next NAME= line
    var_re = re.compile(r"^([A-Z0-9_]+)=(.*?)(?=^[A-Z0-9_]+=|\Z)", re.M | re.S)
    opts = {m.group(1): m.group(2) for m in var_re.finditer(pv)}
    crun = opts.get("CRUN_CONF_OPTS", "").split()
    if "--enable-caps" not in crun or "--enable-seccomp" not in crun:
        raise Failed(f"Buildroot {version}: crun is built with {' '.join(crun)} (needs --enable-caps "
                     "--enable-seccomp: BR2_PACKAGE_LIBCAP, BR2_PACKAGE_LIBSECCOMP)")
    if "BR2_PACKAGE_PYTHON_PYROUTE2=y" in config:
        raise Failed(f"Buildroot {version}: python-pyroute2 is selected, tcr does not use it")
    cgroup_pkg = re.search(r"^BR2_PACKAGE_CGROUPFS(_V2)?_MOUNT=y$", config, re.M)
    if not cgroup_pkg and "S30tcr-cgroup2" not in opts.get("TCR_INSTALL_INIT_SYSV", ""):
        raise Failed(f"Buildroot {version}: nothing mounts a cgroup hierarchy under BusyBox init")
    info = json.loads(br_make(br, out, "show-info").stdout)
    tcr = info.get("tcr") or {}
    for pkg in ("crun", "libcap", "libseccomp", "nftables", "python-dnslib", "python-pysquashfsimage"):
        if pkg not in info:
            raise Failed(f"Buildroot {version}: show-info lacks {pkg}")
    crun_deps = set(info["crun"].get("dependencies", []))
    if not {"libcap", "libseccomp"} <= crun_deps:
        raise Failed(f"Buildroot {version}: show-info: crun depends on {sorted(crun_deps)}, "
                     "not on libcap and libseccomp")
    if tcr.get("licenses") != "MIT" or tcr.get("license_files") != ["LICENSE"]:
        raise Failed(f"Buildroot {version}: tcr licence {tcr.get('licenses')} {tcr.get('license_files')}")
    mount = "cgroupfs-v2-mount" if cgroup_pkg else "tcr's S30tcr-cgroup2"
    return f"Buildroot {version}: check-package clean, savedefconfig equal, crun +caps +seccomp, {mount}"


# ---- kernel fragment ---------------------------------------------------------------------------

def fragment_options() -> Dict[str, str]:
    out = {}
    for line in read_text(FRAGMENT).splitlines():
        m = re.match(r"^(CONFIG_[A-Z0-9_]+)=(.*)$", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def kernel_tree(cache: str) -> str:
    if not os.path.exists(KERNEL_TARBALL):
        print("installing linux-source-6.1 (apt-get)", flush=True)
        sh(["apt-get", "install", "-y", "-qq", "linux-source-6.1"],
           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    # Kconfig needs the Kconfig/Makefile skeleton and scripts/, not the sources (~50 MB, not 1.3 GB)
    key = "linux-kconfig-" + sha256(KERNEL_TARBALL)[:16]
    dest = os.path.join(cache, key)
    if os.path.exists(os.path.join(dest, ".done")):
        return only_dir(dest)
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest + ".tmp", exist_ok=True)
    top = "linux-source-6.1"
    ex = []
    for d in ("drivers", "fs", "net", "sound", "arch", "kernel", "lib", "mm", "crypto", "include", "block",
              "security", "ipc", "virt", "samples", "io_uring", "certs", "rust", "usr", "init"):
        ex += [f"--exclude={top}/{d}/*.[chS]", f"--exclude={top}/{d}/*.dts*"]
    ex += [f"--exclude={top}/Documentation/*/*", f"--exclude={top}/tools", f"--exclude={top}/LICENSES"]
    sh(["tar", "-xf", KERNEL_TARBALL, "-C", dest + ".tmp", *ex])
    os.rename(dest + ".tmp", dest)
    touch(os.path.join(dest, ".done"))
    return only_dir(dest)


def merge_fragment(ksrc: str, out: str, arch: str, base: str) -> Dict[str, str]:
    """Buildroot's way (linux/linux.mk): <base> config, merge_config.sh -m, olddefconfig. One
    output folder per architecture, so the kconfig tools are compiled once."""
    os.makedirs(out, exist_ok=True)
    for f in (".config", ".config.old"):
        if os.path.exists(os.path.join(out, f)):
            os.unlink(os.path.join(out, f))
    karch = "x86" if arch == "x86_64" else arch
    env = dict(os.environ, LC_ALL="C")
    env.pop("MAKEFLAGS", None)
    make = ["make", "-s", "-C", ksrc, f"O={out}", f"ARCH={karch}",
            f"CROSS_COMPILE={ksrc}/scripts/dummy-tools/"]
    sh(make + [base], env=env)
    sh([os.path.join(ksrc, "scripts", "kconfig", "merge_config.sh"), "-m", "-O", out,
        os.path.join(out, ".config"), FRAGMENT], cwd=out, env=env)
    sh(make + ["olddefconfig"], env=env)
    final: Dict[str, str] = {}
    for line in read_text(os.path.join(out, ".config")).splitlines():
        m = re.match(r"^(CONFIG_[A-Z0-9_]+)=(.*)$", line.strip())
        if m:
            final[m.group(1)] = m.group(2)
    return final


def check_kernel(cache: str) -> str:
    ksrc = kernel_tree(cache)
    want = fragment_options()
    problems = []
    for arch, base in KERNEL_BASES:
        got = merge_fragment(ksrc, os.path.join(cache, f"kernel-out-{arch}"), arch, base)
        lost = [f"{k}={v} -> {got.get(k, 'n')}" for k, v in want.items() if got.get(k) != v]
        if lost:
            problems.append(f"{arch} {base}: " + ", ".join(lost))
    if problems:
        raise Failed("kernel fragment options dropped by olddefconfig (linux-source-6.1):\n"
                     + "\n".join(problems))
    return f"kernel fragment: {len(want)} options survive on {len(KERNEL_BASES)} bases (Linux 6.1)"


# ---- Yocto -------------------------------------------------------------------------------------

def ensure_locale() -> None:
    """bitbake's sanity check wants en_US.UTF-8 (Debian: locales, enabled in /etc/locale.gen)."""
    if re.search(r"^en_US\.utf-?8$", sh(["locale", "-a"]).stdout, re.M | re.I):
        return
    gen = read_text("/etc/locale.gen")
    with open("/etc/locale.gen", "w") as f:
        f.write(re.sub(r"^# *(en_US\.UTF-8 UTF-8)", r"\1", gen, flags=re.M))
    sh(["locale-gen"])


def ensure_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(BB_USER)
    except KeyError:
        sh(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/bin/sh",
            BB_USER])
        return pwd.getpwnam(BB_USER)


def project_version() -> str:
    m = re.search(r'^version = "([^"]+)"', read_text(os.path.join(ROOT, "pyproject.toml")), re.M)
    return m.group(1) if m else "?"


# A release build pins SRCREV. Parsing does not look the commit up, and a constant keeps
# bitbake's parse cache (keyed by the configuration) valid from one run to the next.
PINNED_SRCREV = "5ca1ab1e" * 5


def yocto_conf(build: str, layers: str, layer_copy: str, init: str, extra: str = "") -> None:
    os.makedirs(os.path.join(build, "conf"), exist_ok=True)
    oe = os.path.join(layers, "openembedded-core")
    moe = os.path.join(layers, "meta-openembedded")
    bblayers = [os.path.join(oe, "meta"), os.path.join(moe, "meta-oe"), os.path.join(moe, "meta-python"),
                os.path.join(moe, "meta-networking"), os.path.join(moe, "meta-filesystems"),
                os.path.join(layers, "meta-virtualization"), layer_copy]
    with open(os.path.join(build, "conf", "bblayers.conf"), "w") as f:
        f.write('LCONF_VERSION = "7"\nBBPATH = "${TOPDIR}"\nBBFILES ?= ""\nBBLAYERS = " \\\n')
        f.write("".join(f"  {p} \\\n" for p in bblayers) + '"\n')
    with open(os.path.join(build, "conf", "local.conf"), "w") as f:
        f.write(f'MACHINE = "qemuarm64"\nINIT_MANAGER = "{init}"\n'
                'DISTRO_FEATURES:append = " virtualization"\n'
                'BB_NO_NETWORK = "1"\nCONF_VERSION = "2"\n'
                f'DL_DIR = "{build}/downloads"\nSSTATE_DIR = "{build}/sstate"\n'
                'BB_NUMBER_THREADS = "2"\nBB_NUMBER_PARSE_THREADS = "2"\n'
                # a release build: SRCREV pinned (AUTOREV would run git ls-remote while parsing)
                f'SRCREV:pn-tcr = "{PINNED_SRCREV}"\n' + extra)


def bitbake(build: str, layers: str, user: pwd.struct_passwd, *args: str,
            check: bool = True) -> subprocess.CompletedProcess:
    path = f"{layers}/bitbake/bin:{layers}/openembedded-core/scripts:/usr/sbin:/usr/bin:/sbin:/bin"
    env = {"PATH": path, "HOME": build, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "BB_NO_NETWORK": "1",
           "BBPATH": build, "TERM": "dumb"}
    argv = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
            "env", "-i", *[f"{k}={v}" for k, v in env.items()], "bitbake", *args]
    return sh(argv, cwd=build, check=check)


# Layers beside oe-core, whose recipes the further configurations mask when tcr does not need them
OTHER_LAYERS = ("meta-openembedded/meta-oe", "meta-openembedded/meta-python",
                "meta-openembedded/meta-networking", "meta-openembedded/meta-filesystems",
                "meta-virtualization")


def recipe_name(filename: str) -> str:
    return os.path.basename(filename).split(".bb")[0].split("_")[0]


def parse_mask(layers: str, buildlist: Sequence[str]) -> str:
    """A BBMASK for the configurations after the first: every recipe folder of the layers beside
    oe-core that holds none of the recipes tcr needed in the first one. bitbake parses all
    ~2900 recipes for each configuration (minutes each on two cores); oe-core stays whole, and
    a dependency that only the later configuration needs would show as "Nothing PROVIDES"."""
    names = set()
    for n in buildlist:
        names.add(n)
        names.add(re.sub(r"^nativesdk-|-native$|-cross(-.*)?$|-crosssdk(-.*)?$", "", n))
    masks = []
    for rel in OTHER_LAYERS:
        base = os.path.join(layers, rel)
        keep = set()
        for path in glob.glob(os.path.join(base, "recipes*", "*", "**", "*.bb"), recursive=True):
            if recipe_name(path) in names:
                keep.add("/".join(os.path.relpath(path, base).split(os.sep)[:2]))
        alt = "|".join(re.escape(k) for k in sorted(keep))
        masks.append(f"^{re.escape(base)}/" + (f"(?!(?:{alt})/)" if alt else "") + "recipes[^/]*/[^/]+/")
    return " ".join(masks)


def check_yocto(layers: str, cache: str) -> str:
    ensure_locale()
    user = ensure_user()
    work = os.path.join(cache, "yocto")
    os.makedirs(work, exist_ok=True)
    # The layer is read from a copy with the same shape (the recipe finds the project 4 levels up),
    # because the checkout may sit under a home directory the build user cannot enter.
    src = os.path.join(work, "src")
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(LAYER, os.path.join(src, "buildroot", "meta-tcr"))
    for f in ("pyproject.toml", "LICENSE"):
        shutil.copy(os.path.join(ROOT, f), src)
    os.chmod(work, 0o755)
    sh(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", work])
    layer_copy = os.path.join(src, "buildroot", "meta-tcr")
    results = []
    mask = ""
    # sysvinit: INIT_MANAGER sysvinit, with the systemd distro feature crun needs (libsystemd),
    # and usrmerge, which oe-core's systemd recipe needs
    configs = (("systemd", "systemd", ""),
               ("sysvinit", "sysvinit", 'DISTRO_FEATURES:append = " systemd usrmerge"\n'))
    for name, init, extra in configs:
        build = os.path.join(work, f"build-{name}")
        if mask:
            extra += f'BBMASK += "{mask}"\nBB_DANGLINGAPPENDS_WARNONLY = "1"\n'
        yocto_conf(build, layers, layer_copy, init, extra)
        sh(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", build])
        if name == "systemd":
            res = bitbake(build, layers, user, "-p", check=False)
            if res.returncode != 0 or re.search(r"^(ERROR|WARNING):", res.stdout + res.stderr, re.M):
                raise Failed("bitbake -p:\n" + "\n".join((res.stdout + res.stderr).splitlines()[-30:]))
        res = bitbake(build, layers, user, "-g", "tcr", check=False)
        text = res.stdout + res.stderr
        if res.returncode != 0:
            raise Failed(f"bitbake -g tcr ({name}):\n" + "\n".join(text.splitlines()[-30:]))
        deps = read_text(os.path.join(build, "pn-buildlist")).split()
        for need in ("crun", "nftables", "python3-dnslib", "python3-pysquashfsimage", "libseccomp", "libcap"):
            if need not in deps:
                raise Failed(f"bitbake -g tcr ({name}): {need} is not in the build list")
        if "python3-pyroute2" in deps:
            raise Failed(f"bitbake -g tcr ({name}): python3-pyroute2 is still pulled in")
        mask = mask or parse_mask(layers, deps)
        env = bitbake(build, layers, user, "-e", "tcr").stdout
        pv = re.search(r'^PV="([^"]*)"', env, re.M)
        if not pv or pv.group(1) != project_version():
            got = pv.group(1) if pv else "?"
            raise Failed(f"bitbake -e tcr ({name}): PV={got}, want {project_version()} "
                         "(SRCREV pinned)")
        results.append(name)
    # Plain SysV init without the systemd feature, and no seccomp: refused at parse time, by name.
    build = os.path.join(work, "build-sysvinit-plain")
    yocto_conf(build, layers, layer_copy, "sysvinit", 'DISTRO_FEATURES:remove = "seccomp"\n'
               f'BBMASK += "{mask}"\nBB_DANGLINGAPPENDS_WARNONLY = "1"\n')
    sh(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", build])
    res = bitbake(build, layers, user, "-g", "tcr", check=False)
    text = res.stdout + res.stderr
    named = re.search(r"tcr was skipped: missing required distro features '([^']+)'", text)
    if res.returncode == 0 or not named or set(named.group(1).split()) != {"seccomp", "systemd", "usrmerge"}:
        raise Failed("bitbake -g tcr without seccomp/systemd/usrmerge distro features did not name them:\n"
                     + "\n".join(text.splitlines()[-20:]))
    return (f"Yocto {RELEASES}: bitbake -p clean; -g tcr resolves ({', '.join(results)}); "
            "without the seccomp/systemd/usrmerge distro features tcr is refused by name")


# ---- oelint-adv, shellcheck, systemd-analyze ------------------------------------------------------

def check_oelint() -> str:
    exe = shutil.which("oelint-adv") or os.path.join(os.path.dirname(sys.executable), "oelint-adv")
    if not os.path.exists(exe):
        raise Failed("oelint-adv not found: pip install oelint-adv (pyproject extra 'recipes')")
    files = sorted(glob.glob(os.path.join(LAYER, "recipes-*", "*", "*.bb*")))
    # errors and warnings fail; homepageping is off because it would go online
    res = sh([exe, "--quiet", "--noinfo", f"--release={RELEASES}", "--suppress", "oelint.vars.homepageping",
              *files], check=False)
    lines = [x for x in (res.stdout + res.stderr).splitlines() if x.strip()]
    if res.returncode != 0 or lines:
        raise Failed("oelint-adv:\n" + "\n".join(lines))
    ver = sh([exe, "--version"], check=False).stdout.strip()
    return f"{ver} --release {RELEASES}: {len(files)} files clean"


def check_shell() -> str:
    scripts = [os.path.join(INIT, "S95tcrd"), os.path.join(INIT, "tcr-purge")]
    scripts += sorted(glob.glob(os.path.join(BR_EXT, "package", "*", "S[0-9][0-9]*")))
    sh(["shellcheck", "--shell=sh", *scripts])
    # systemd-analyze verify wants ExecStart= to exist: check the unit as make install stages it.
    with tempfile.TemporaryDirectory() as tmp:
        sh(["make", "-s", "-C", ROOT, "install", f"DESTDIR={tmp}", "PREFIX=/usr", "INIT=systemd",
            "PYTHON=/usr/bin/python3", "UNITDIR=/lib/systemd/system"],
           env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL")})
        unit = os.path.join(tmp, "tcrd.service")
        text = read_text(os.path.join(tmp, "lib", "systemd", "system", "tcrd.service"))
        text = text.replace("ExecStart=/usr/bin/tcrd", f"ExecStart={tmp}/usr/bin/tcrd")
        with open(unit, "w") as f:
            f.write(text)
        res = sh(["systemd-analyze", "verify", "--man=no", unit], check=False)
        noise = re.compile(r"Failed to open /etc|Failed to prepare filename|Unit .* not found|"
                           r"^\s*$|Configuration file .* is marked world")
        problems = [x for x in res.stderr.splitlines() if not noise.search(x)]
        if res.returncode != 0 or problems:
            raise Failed("systemd-analyze verify tcrd.service:\n" + res.stderr)
    return f"shellcheck: {len(scripts)} scripts clean; systemd-analyze verify tcrd.service clean"


# ---- driver ------------------------------------------------------------------------------------

STEPS = ("buildroot", "kernel", "yocto", "oelint", "shell")


def find_inputs(vendor: str, cache: str) -> Tuple[List[str], Optional[str]]:
    brs = [p for p in re.split(r"[\s:]+", os.environ.get("BUILDROOT_DIR", "")) if p]
    if not brs:
        for tb in sorted(glob.glob(os.path.join(vendor, "buildroot-*.tar.*")), reverse=True):
            brs.append(only_dir(unpack(tb, cache)))
    layers = os.environ.get("YOCTO_LAYERS_DIR") or None
    if not layers:
        tbs = sorted(glob.glob(os.path.join(vendor, "yocto-*-layers.tar.*")))
        if tbs:
            layers = unpack(tbs[0], cache)
            os.chmod(layers, 0o755)
    return brs, layers


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vendor", default=os.environ.get("TCR_VENDOR_DIR") or default_vendor())
    p.add_argument("--cache", default=os.environ.get("TCR_RECIPES_CACHE") or default_cache())
    p.add_argument("--only", action="append", choices=STEPS)
    opts = p.parse_args(argv)
    steps = opts.only or list(STEPS)
    os.makedirs(opts.cache, exist_ok=True)
    os.chmod(opts.cache, 0o755)
    t0 = time.monotonic()
    brs, layers = find_inputs(opts.vendor, opts.cache)
    if "buildroot" in steps and not brs:
        print(f"check-recipes: no Buildroot tree (BUILDROOT_DIR= or {opts.vendor}/buildroot-*.tar.*)")
        return 2
    if "yocto" in steps and not layers:
        print(f"check-recipes: no Yocto layers (YOCTO_LAYERS_DIR= or {opts.vendor}/yocto-*-layers.tar.*)")
        return 2
    print(f"check-recipes: unpacked in {time.monotonic() - t0:.0f}s (cache {opts.cache})", flush=True)
    failed = 0
    jobs = []
    for step in steps:
        if step == "buildroot":
            jobs += [(f"buildroot {os.path.basename(br)}", lambda br=br: check_buildroot(br, opts.cache))
                     for br in brs]
        elif step == "kernel":
            jobs.append(("kernel", lambda: check_kernel(opts.cache)))
        elif step == "yocto":
            assert layers
            jobs.append(("yocto", lambda: check_yocto(layers, opts.cache)))
        elif step == "oelint":
            jobs.append(("oelint", check_oelint))
        elif step == "shell":
            jobs.append(("shell", check_shell))
    for name, job in jobs:
        t = time.monotonic()
        try:
            msg = job()
            print(f"[ ok ] {msg} ({time.monotonic() - t:.0f}s)", flush=True)
        except (Failed, subprocess.TimeoutExpired, OSError) as exc:
            failed += 1
            print(f"[FAIL] {name}: {exc}", flush=True)
    print(f"check-recipes: {len(jobs) - failed}/{len(jobs)} passed in {time.monotonic() - t0:.0f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
