SUMMARY = "Encode and decode DNS wire-format packets"
DESCRIPTION = "A pure-Python library to encode/decode DNS wire-format packets, with a small \
               server framework."
HOMEPAGE = "https://github.com/paulc/dnslib"
BUGTRACKER = "https://github.com/paulc/dnslib/issues"
SECTION = "devel/python"
LICENSE = "BSD-2-Clause"
LIC_FILES_CHKSUM = "file://LICENSE;md5=8d24d8757f793508dc751f2037c49333"

inherit pypi setuptools3

PYPI_PACKAGE = "dnslib"
SRC_URI[sha256sum] = "be56857534390b2fbd02935270019bacc5e6b411d156cb3921ac55a7fb51f1a8"

# dnslib.dns: base64, calendar, random, socket, string
RDEPENDS:${PN} += "python3-core python3-datetime python3-io python3-math python3-netclient python3-stringold"

CVE_PRODUCT = "dnslib"

BBCLASSEXTEND = "native nativesdk"
