################################################################################
#
# tcr
#
################################################################################

TCR_VERSION = 0.1.0
# Built from the tree this BR2_EXTERNAL lives in; only what the Python build reads is copied.
# rsync applies the first matching rule: the excludes come before the includes.
TCR_SITE = $(BR2_EXTERNAL_TCR_PATH)/..
TCR_SITE_METHOD = local
TCR_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude __pycache__ --exclude '*.pyc' --exclude '*.egg-info' \
	--include /pyproject.toml --include /README.md --include /LICENSE \
	--include /Makefile --include '/bin/***' --include '/target/***' --include '/host_tools/***' \
	--exclude '*'
TCR_LICENSE = MIT
TCR_LICENSE_FILES = LICENSE
# pyproject.toml uses the setuptools.build_meta backend. The "setuptools" type makes the
# infrastructure add host-python-setuptools and build without isolation (no download at
# build time); "pep517" would need the backend listed by hand.
TCR_SETUP_TYPE = setuptools

# The board gets byte code only (no .py sources, no tcr_host, no tcr-create-image): the
# project's own "make install BYTECODE_ONLY=1" does that, with the target interpreter's
# byte code compiled by the host python3 of the same version.
define TCR_INSTALL_TARGET_CMDS
	$(MAKE) -C $(@D) install BYTECODE_ONLY=1 INIT=none \
		DESTDIR=$(TARGET_DIR) PREFIX=/usr \
		PYTHON=$(HOST_DIR)/bin/python3 \
		TARGET_PYTHON=/usr/bin/python3 \
		PYSITEDIR=/usr/lib/python$(PYTHON3_VERSION_MAJOR)/site-packages
endef

define TCR_INSTALL_PURGE_SCRIPT
	$(INSTALL) -D -m 0755 $(@D)/target/init/tcr-purge \
		$(TARGET_DIR)/usr/sbin/tcr-purge
endef
TCR_POST_INSTALL_TARGET_HOOKS += TCR_INSTALL_PURGE_SCRIPT

# crun needs a mounted cgroup hierarchy and BusyBox init mounts none: unless a package of
# Buildroot does it, tcr's own script mounts cgroup v2 (works on every Buildroot version).
ifeq ($(BR2_PACKAGE_CGROUPFS_MOUNT)$(BR2_PACKAGE_CGROUPFS_V2_MOUNT),)
define TCR_INSTALL_CGROUP2_MOUNT
	$(INSTALL) -D -m 0755 $(TCR_PKGDIR)/S30tcr-cgroup2 \
		$(TARGET_DIR)/etc/init.d/S30tcr-cgroup2
endef
endif

define TCR_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(@D)/target/init/S95tcrd \
		$(TARGET_DIR)/etc/init.d/S95tcrd
	$(TCR_INSTALL_CGROUP2_MOUNT)
endef

define TCR_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/target/init/tcrd.service \
		$(TARGET_DIR)/usr/lib/systemd/system/tcrd.service
endef

$(eval $(python-package))
