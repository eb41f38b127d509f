SUMMARY = "Read squashfs images without mounting them"
DESCRIPTION = "A pure-Python squashfs reader: list, read and extract files of a squashfs image \
               without mounting it."
HOMEPAGE = "https://github.com/matteomattei/PySquashfsImage"
BUGTRACKER = "https://github.com/matteomattei/PySquashfsImage/issues"
SECTION = "devel/python"
LICENSE = "LGPL-2.1-only"
LIC_FILES_CHKSUM = "file://LICENSE.LGPL;md5=7266a93b753b03bc5f00522e65722b79"

inherit pypi setuptools3

PYPI_PACKAGE = "PySquashfsImage"
SRC_URI[sha256sum] = "d3330ccd111ac2ef2cebf0c392077fe8608e2760862531d960ec9cb6c6d3655f"

RDEPENDS:${PN} += "python3-core python3-ctypes python3-datetime"
# Images compressed with zstd, lz4 or lzo need the matching Python module, which this layer
# does not provide: tcr then validates such an image through a private read-only mount.

CVE_PRODUCT = "pysquashfsimage"

BBCLASSEXTEND = "native nativesdk"
