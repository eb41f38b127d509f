"""Logging set-up shared by tcrd, tcr and tcr-create-image."""

import logging
import sys


def setup(debug: bool = False, prog: str = "tcr", stream=None) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    fmt = "%(asctime)s " if prog == "tcrd" else ""
    handler.setFormatter(logging.Formatter(fmt + prog + ": %(levelname)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO if prog == "tcrd" else logging.WARNING)
