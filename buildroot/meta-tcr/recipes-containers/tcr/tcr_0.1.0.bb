SUMMARY = "tcr: tiny container runtime for embedded Linux boards"
DESCRIPTION = "tcrd loop-mounts squashfs container images made on a build PC, runs containers \
with crun on overlayfs, networks them through a NAT bridge (nftables) with a DNS forwarder and \
supervises them; the tcr CLI drives it locally or over SSH."
SECTION = "containers"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://pyproject.toml;beginline=11;endline=11;md5=7d995d69c29a01e73a161f8674ecfc0c"

# By default the source is the git checkout this layer lives in
# (buildroot/meta-tcr/recipes-containers/tcr -> four levels up). Point TCR_SRC_URI at another
# clone, and pin SRCREV for a reproducible release build, in local.conf or a bbappend.
TCR_TREE := "${@os.path.abspath(os.path.join(d.getVar('THISDIR'), '../../../..'))}"
TCR_SRC_URI ?= "git://${TCR_TREE};protocol=file;branch=main"
SRC_URI = "${TCR_SRC_URI}"
SRCREV ?= "${AUTOREV}"
S = "${WORKDIR}/git"

# pyproject.toml uses the setuptools.build_meta backend (PEP 517 wheel build, no isolation).
inherit python_setuptools_build_meta systemd update-rc.d

SYSTEMD_SERVICE:${PN} = "tcrd.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"
INITSCRIPT_NAME = "tcrd"
INITSCRIPT_PARAMS = "defaults 95 5"

do_install:append() {
    # tcr-create-image and its package belong on the build PC, not on the board
    rm -rf ${D}${PYTHON_SITEPACKAGES_DIR}/tcr_host
    rm -f ${D}${bindir}/tcr-create-image

    install -d ${D}${sbindir}
    install -m 0755 ${S}/target/init/tcr-purge ${D}${sbindir}/tcr-purge

    if ${@bb.utils.contains('DISTRO_FEATURES', 'systemd', 'true', 'false', d)}; then
        install -d ${D}${systemd_system_unitdir}
        sed -e 's,^ExecStart=/usr/bin/tcrd,ExecStart=${bindir}/tcrd,' \
            ${S}/target/init/tcrd.service >${D}${systemd_system_unitdir}/tcrd.service
        chmod 0644 ${D}${systemd_system_unitdir}/tcrd.service
    fi
    if ${@bb.utils.contains('DISTRO_FEATURES', 'sysvinit', 'true', 'false', d)}; then
        install -d ${D}${INIT_D_DIR}
        sed -e 's,TCRD_BIN:=/usr/bin/,TCRD_BIN:=${bindir}/,' \
            ${S}/target/init/S95tcrd >${D}${INIT_D_DIR}/tcrd
        chmod 0755 ${D}${INIT_D_DIR}/tcrd
    fi
}

# The Python standard library pieces target/tcr imports (test_packaging_yocto.py keeps this
# list equal to what the code imports), then the tools and modules it drives.
RDEPENDS:${PN} += " \
    python3-core \
    python3-compression \
    python3-crypt \
    python3-ctypes \
    python3-fcntl \
    python3-io \
    python3-json \
    python3-mmap \
    python3-resource \
    python3-shell \
    python3-syslog \
    crun \
    nftables \
    python3-pyroute2 \
    python3-dnslib \
    python3-pysquashfsimage \
"

RRECOMMENDS:${PN} += " \
    kernel-module-squashfs \
    kernel-module-overlay \
    kernel-module-loop \
    kernel-module-veth \
    kernel-module-bridge \
    kernel-module-nf-tables \
    kernel-module-nft-nat \
    kernel-module-nft-masq \
    kernel-module-nft-ct \
    kernel-module-nft-fib-inet \
    kernel-module-nft-chain-nat \
"
