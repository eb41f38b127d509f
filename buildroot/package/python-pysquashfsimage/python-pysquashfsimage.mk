################################################################################
#
# python-pysquashfsimage
#
################################################################################

PYTHON_PYSQUASHFSIMAGE_VERSION = 0.9.0
PYTHON_PYSQUASHFSIMAGE_SOURCE = PySquashfsImage-$(PYTHON_PYSQUASHFSIMAGE_VERSION).tar.gz
PYTHON_PYSQUASHFSIMAGE_SITE = https://files.pythonhosted.org/packages/source/P/PySquashfsImage
PYTHON_PYSQUASHFSIMAGE_SETUP_TYPE = setuptools
PYTHON_PYSQUASHFSIMAGE_LICENSE = LGPL-2.1
PYTHON_PYSQUASHFSIMAGE_LICENSE_FILES = LICENSE.LGPL LICENSE.GPL3

$(eval $(python-package))
