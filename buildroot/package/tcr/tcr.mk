################################################################################
#
# tcr
#
################################################################################

TCR_VERSION = 0.1.0
# Built from the tree this BR2_EXTERNAL lives in; only what the Python build reads is copied.
TCR_SITE = $(BR2_EXTERNAL_TCR_PATH)/..
TCR_SITE_METHOD = local
TCR_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--include /pyproject.toml --include /README.md --include /LICENSE \
	--include '/target/***' --include '/host_tools/***' \
	--exclude __pycache__ --exclude '*.egg-info' --exclude '*'
TCR_LICENSE = MIT
TCR_LICENSE_FILES = pyproject.toml
# pyproject.toml uses the setuptools.build_meta backend. The "setuptools" type makes the
# infrastructure add host-python-setuptools and build without isolation (no download at
# build time); "pep517" would need the backend listed by hand.
TCR_SETUP_TYPE = setuptools

# tcr-create-image and its package belong on the build PC, not on the board.
define TCR_REMOVE_BUILD_PC_TOOLS
	rm -rf $(TARGET_DIR)/usr/lib/python$(PYTHON3_VERSION_MAJOR)/site-packages/tcr_host
	rm -f $(TARGET_DIR)/usr/bin/tcr-create-image
endef
TCR_POST_INSTALL_TARGET_HOOKS += TCR_REMOVE_BUILD_PC_TOOLS

define TCR_INSTALL_PURGE_SCRIPT
	$(INSTALL) -D -m 0755 $(@D)/target/init/tcr-purge \
		$(TARGET_DIR)/usr/sbin/tcr-purge
endef
TCR_POST_INSTALL_TARGET_HOOKS += TCR_INSTALL_PURGE_SCRIPT

define TCR_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(@D)/target/init/S95tcrd \
		$(TARGET_DIR)/etc/init.d/S95tcrd
endef

define TCR_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/target/init/tcrd.service \
		$(TARGET_DIR)/usr/lib/systemd/system/tcrd.service
endef

$(eval $(python-package))
