"""The daemon's persistent state: one versioned JSON file per record, written atomically.

Layout: <root>/<kind>/<key>.json containing {"version": 1, "kind": KIND, "data": {...}}.
Writes go through tcr.common.atomic (temp file, fsync, rename, fsync dir), so a crash leaves the
old or the new record, never half of one. A damaged file is reported in one line and moved aside
to <name>.corrupt; it never stops the daemon.
"""

from __future__ import annotations

import os

from tcr.common import jsonc, syntax
from tcr.common.atomic import remove_durable, write_atomic
from tcr.common.errors import InvalidArgument
from tcr.common.faults import fail

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Tuple, TypeVar

    T = TypeVar("T")

VERSION = 1
MAX_RECORD = 4 * 1024 * 1024


def _key(text: str) -> bool:
    """^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"""
    return syntax.tag(text)


def _check(kind: str, key: str) -> None:
    if not _key(kind):
        raise InvalidArgument(f"invalid state kind {kind!r}")
    if not _key(key):
        raise InvalidArgument(f"invalid state key {key!r}")


class StateStore:
    def __init__(self, root: str):
        self.root = root
        # Told of every durable change (tcr.daemon.events derives `tcr events` from them):
        # on_change(kind, key, data or None after a delete); on_load(kind, key, data) at start-up.
        self.on_change: Optional[Callable[[str, str, Optional[dict]], None]] = None
        self.on_load: Optional[Callable[[str, str, dict], None]] = None

    def dir(self, kind: str) -> str:
        return os.path.join(self.root, kind)

    def path(self, kind: str, key: str) -> str:
        _check(kind, key)
        return os.path.join(self.root, kind, key + ".json")

    def save(self, kind: str, key: str, data: dict) -> None:
        p = self.path(kind, key)
        os.makedirs(os.path.dirname(p), mode=0o700, exist_ok=True)
        doc = {"version": VERSION, "kind": kind, "data": data}
        fail("state.write", p)
        write_atomic(p, jsonc.dumps_pretty(doc), mode=0o600)
        if self.on_change is not None:
            self.on_change(kind, key, data)

    def announce(self, kind: str, key: str, data: dict) -> None:
        """A record another process (a worker) saved: tell on_change as save() would have."""
        if self.on_change is not None:
            self.on_change(kind, key, data)

    def delete(self, kind: str, key: str, last: Optional[dict] = None) -> None:
        """Remove a record; `last` is its final state when that was never saved (an --rm exit)."""
        remove_durable(self.path(kind, key))
        if self.on_change is not None:
            if last is not None:
                self.on_change(kind, key, last)
            self.on_change(kind, key, None)

    def move_aside(self, kind: str, key: str) -> str:
        """Move a record that parses but is invalid out of the way (to <name>.corrupt)."""
        p = self.path(kind, key)
        os.replace(p, p + ".corrupt")
        return p + ".corrupt"

    def load_records(self, kind: str, from_dict: Callable[[dict], T], what: str,
                     key_of: Optional[Callable[[T], str]] = None,
                     aside: bool = False) -> Tuple[Dict[str, T], List[str]]:
        """Every record of kind made into an object by from_dict: (objects by key, one line per
        problem). Damaged files are moved aside (load_all); a record from_dict refuses, or whose
        key_of(obj) is not its file name, is reported as "<what> record KEY: why", and moved aside
        too with aside=True (else left in place and ignored)."""
        from tcr.common.errors import TcrError

        raw, problems = self.load_all(kind)
        out: Dict[str, T] = {}
        for key, d in raw.items():
            try:
                obj = from_dict(d)
                if key_of is not None and key_of(obj) != key:
                    raise ValueError(f"record id {key_of(obj)} does not match its file name")
            except (KeyError, TypeError, ValueError, TcrError) as exc:
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if aside:
                    try:
                        self.move_aside(kind, key)
                        problems.append(f"{what} record {key}: {why}; moved aside")
                    except OSError as err:
                        problems.append(f"{what} record {key}: {why}; could not move it aside: "
                                        f"{err.strerror}")
                else:
                    problems.append(f"{what} record {key}: {why}; ignored")
                continue
            out[key] = obj
        return out, problems

    def load_all(self, kind: str) -> Tuple[Dict[str, dict], List[str]]:
        """(records by key, one error line per damaged or unreadable file)."""
        records: Dict[str, dict] = {}
        errors: List[str] = []
        d = self.dir(kind)
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            return records, errors
        for name in names:
            p = os.path.join(d, name)
            if name.startswith(".") and ".json.tmp" in name:
                # An interrupted write_atomic: the rename never happened, the old file is intact.
                try:
                    os.unlink(p)
                except OSError:
                    pass
                continue
            if not name.endswith(".json") or not os.path.isfile(p):
                continue
            key = name[: -len(".json")]
            problem = None
            try:
                if not _key(key):
                    raise ValueError("file name is not a valid key")
                with open(p, "rb") as f:
                    raw = f.read(MAX_RECORD + 1)
                if len(raw) > MAX_RECORD:
                    raise ValueError("file is too large")
                doc = jsonc.loads(raw)
                if not isinstance(doc, dict):
                    raise ValueError("not a JSON object")
                version = doc.get("version")
                if type(version) is not int:
                    raise ValueError("no integer 'version'")
                if version > VERSION:
                    # Written by a newer tcr: not damaged, so leave it in place untouched.
                    errors.append(f"{p}: written by a newer tcr (version {version}); ignored")
                    continue
                if doc.get("kind") != kind:
                    raise ValueError(f"'kind' is {doc.get('kind')!r}, expected {kind!r}")
                data = doc.get("data")
                if not isinstance(data, dict):
                    raise ValueError("'data' is not an object")
                records[key] = data
                if self.on_load is not None:
                    self.on_load(kind, key, data)
            except (ValueError, OSError) as exc:
                problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if problem is not None:
                aside = p + ".corrupt"
                try:
                    os.replace(p, aside)
                    errors.append(f"{p}: damaged ({problem}); moved aside to {aside}")
                except OSError as exc:
                    errors.append(f"{p}: damaged ({problem}); could not move it aside: {exc.strerror}")
        return records, errors
