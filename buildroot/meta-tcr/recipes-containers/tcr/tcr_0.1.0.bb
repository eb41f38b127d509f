SUMMARY = "tcr: tiny container runtime for embedded Linux boards"
DESCRIPTION = "tcrd loop-mounts squashfs container images made on a build PC, runs \
               containers with crun on overlayfs, networks them through a NAT bridge \
               (nftables) with a DNS forwarder and supervises them; the tcr CLI drives it \
               locally or over SSH."
# The project publishes no web site yet: its README in the checkout is the home page.
# nooelint: oelint.vars.homepageprefix
HOMEPAGE = "file://${TCR_TREE}/README.md"
SECTION = "containers"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://LICENSE;md5=66e0f28d8426590f87aab3184b0afa4b"

# By default the source is the git checkout this layer lives in
# (buildroot/meta-tcr/recipes-containers/tcr -> four levels up); TCR_SRC_URI names another clone.
# A release build pins the commit of tag v${PV}: SRCREV = "<sha1>" in local.conf or a bbappend.
# Without a pin the newest commit is built and the version says so (${PV}+git<sha1>).
TCR_TREE := "${@os.path.abspath(os.path.join(d.getVar('THISDIR'), '../../../..'))}"
PV .= "${@'+git' if 'AUTOREV' in (d.getVar('SRCREV', False) or '') else ''}"
TCR_SRC_URI ?= "git://${TCR_TREE};protocol=file;branch=main"
SRC_URI = "${TCR_SRC_URI}"
# nooelint: oelint.vars.autorev - development default, a release sets SRCREV (see above)
SRCREV ?= "${AUTOREV}"
S = "${WORKDIR}/git"

# meta-virtualization's crun needs the systemd (libsystemd) and seccomp distro features, and
# oe-core's systemd needs usrmerge. Say so at parse time, by name, instead of "Nothing RPROVIDES
# 'crun'". With SysV init, keep INIT_MANAGER = "sysvinit" and add
# DISTRO_FEATURES:append = " systemd usrmerge": tcrd then runs from its init script, crun just
# links libsystemd (docs/board-integration.md).
REQUIRED_DISTRO_FEATURES = "seccomp systemd usrmerge"

inherit features_check python3native python3-dir systemd update-rc.d

SYSTEMD_SERVICE:${PN} = "tcrd.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"
INITSCRIPT_NAME = "tcrd"
INITSCRIPT_PARAMS = "defaults 95 5"

# Nothing to build: "make install BYTECODE_ONLY=1" compiles the target package to byte code
# with python3-native (the target's Python version) and leaves out the sources and the
# build-PC tools (tcr_host, tcr-create-image).
do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    oe_runmake -C ${S} install BYTECODE_ONLY=1 INIT=none DESTDIR=${D} PREFIX=${prefix} \
        BINDIR=${bindir} PYTHON=${PYTHON} TARGET_PYTHON=${bindir}/python3 \
        PYSITEDIR=${PYTHON_SITEPACKAGES_DIR}

    install -d ${D}${sbindir}
    install -m 0755 ${S}/target/init/tcr-purge ${D}${sbindir}/tcr-purge

    if ${@bb.utils.contains('DISTRO_FEATURES', 'systemd', 'true', 'false', d)}; then
        install -d ${D}${systemd_system_unitdir}
        sed -e 's,^ExecStart=/[a-z/]*/tcrd$,ExecStart=${bindir}/tcrd,' \
            ${S}/target/init/tcrd.service >${D}${systemd_system_unitdir}/tcrd.service
        chmod 0644 ${D}${systemd_system_unitdir}/tcrd.service
    fi
    if ${@bb.utils.contains('DISTRO_FEATURES', 'sysvinit', 'true', 'false', d)}; then
        install -d ${D}${INIT_D_DIR}
        sed -e 's,TCRD_BIN:=/[a-z/]*/,TCRD_BIN:=${bindir}/,' \
            ${S}/target/init/S95tcrd >${D}${INIT_D_DIR}/tcrd
        chmod 0755 ${D}${INIT_D_DIR}/tcrd
    fi
}

FILES:${PN} += "${PYTHON_SITEPACKAGES_DIR}/tcr"

# The Python standard library pieces target/tcr imports (test_packaging_yocto.py keeps this
# list equal to what the code imports), then the tools and modules it drives.
RDEPENDS:${PN} += "\
    crun \
    nftables \
    python3-compression \
    python3-core \
    python3-crypt \
    python3-ctypes \
    python3-dnslib \
    python3-fcntl \
    python3-io \
    python3-json \
    python3-mmap \
    python3-pysquashfsimage \
    python3-resource \
    python3-shell \
    python3-syslog \
"

# For kernels that build these as modules (module names of Linux 6.1; tcr's nft table is
# "ip", so fib is nft_fib_ipv4)
RRECOMMENDS:${PN} += "\
    kernel-module-bridge \
    kernel-module-loop \
    kernel-module-nf-conntrack \
    kernel-module-nf-nat \
    kernel-module-nf-tables \
    kernel-module-nft-chain-nat \
    kernel-module-nft-ct \
    kernel-module-nft-fib \
    kernel-module-nft-fib-ipv4 \
    kernel-module-nft-masq \
    kernel-module-nft-nat \
    kernel-module-overlay \
    kernel-module-squashfs \
    kernel-module-veth \
"
