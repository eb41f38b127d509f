"""Pre-flight: every missing tool or package is reported at once, before any work starts."""

import importlib.util
from typing import Iterable, List

from tcr.common.errors import TcrError
from tcr.common.run import PACKAGES, which

PY_PACKAGES = {"xxhash": "python3-xxhash"}


def missing(tools: Iterable[str], modules: Iterable[str] = ()) -> List[str]:
    out = []
    for t in tools:
        if which(t) is None:
            out.append(f"{t} (apt-get install {PACKAGES.get(t, t)})")
    for m in modules:
        if importlib.util.find_spec(m) is None:
            out.append(f"Python package {m} (pip install {m}, or apt-get install {PY_PACKAGES.get(m, m)})")
    return out


def check(tools: Iterable[str], modules: Iterable[str] = ()) -> None:
    gone = missing(tools, modules)
    if gone:
        raise TcrError("missing prerequisites: " + "; ".join(gone))
