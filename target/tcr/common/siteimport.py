"""Modules from outside tcr's own directory (PyYAML, dnslib, PySquashfsImage), also when tcr runs
as `python3 -I -S` with only its own site directory on sys.path (the scripts `make install` and pip
install, docs/profile.md "The client"): where such an import fails, the interpreter's usual site
directories are added (site.main(), once: Debian keeps python3-dnslib in /usr/lib/python3/
dist-packages, beside tcr's /usr/local/...) and the import is tried again. For rare paths only."""

import sys

_site_added = False


def add_site() -> bool:
    """Add the interpreter's site directories, once, when running without site: True if that
    happened now (a failed import is then worth one more try)."""
    global _site_added
    if _site_added or not sys.flags.no_site:
        return False
    _site_added = True
    import site

    site.main()
    return True


def import_module(name: str):
    """The module `name` (dotted names too), as importlib.import_module; ImportError if absent."""
    try:
        __import__(name)
    except ImportError:
        if not add_site():
            raise
        __import__(name)
    return sys.modules[name]
