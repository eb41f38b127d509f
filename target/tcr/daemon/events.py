"""`tcr events`: what happened to containers, images, networks and volumes, as docker reports it.

Events are derived from the state store, the one place every durable change goes through: the
store calls `observe(kind, key, data)` after each save and delete, and this module turns record
transitions into docker's actions (create, start, die with its exit code, stop, restart,
destroy; image load/tag/delete; network and volume create/destroy). The managers know nothing
about events. A bounded ring keeps the last RING events for `--since`, as compact tuples (a
dict per event cost ~0.85 kB; the idle daemon's memory is the number boards compare); live
watchers are plain callbacks, so nobody watching costs nothing (no timer, no buffer).
"""

from __future__ import annotations

import time
from _collections import deque  # not `collections` (~0.4 MB in tcrd: docs/profile.md)

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

RING = 256  # docker's daemon keeps 256 events too
KIND_TYPE = {"containers": "container", "images": "image", "networks": "network", "volumes": "volume"}

if TYPE_CHECKING:
    Event = Dict[str, Any]
    Watcher = Callable[[Event], None]


class EventLog:
    def __init__(self, ring: int = RING):
        # (timeNano, type, action, actor id, ((attr, value), ...)): built into docker's dict on demand
        self.ring: Deque[Tuple[int, str, str, str, Tuple[Tuple[str, Any], ...]]] = deque(maxlen=ring)
        self.watchers: List[Watcher] = []
        self._last: Dict[str, Dict[str, Any]] = {}  # "kind/key" -> the few fields transitions need

    # ---- producers -----------------------------------------------------------------------------

    def observe(self, kind: str, key: str, data: Optional[Dict[str, Any]]) -> None:
        """A record was saved (data) or deleted (None)."""
        typ = KIND_TYPE.get(kind)
        if typ is None:
            return
        slot = f"{kind}/{key}"
        before = self._last.get(slot)
        if data is None:
            self._last.pop(slot, None)
            if before is not None or typ != "container":
                action = "delete" if typ == "image" else "destroy"
                self.emit(typ, action, key, (before or {}).get("attrs", {}))
            return
        now = _summary(typ, data)
        self._last[slot] = now
        for action, extra in _transitions(typ, before, now):
            self.emit(typ, action, key, dict(now["attrs"], **extra))

    def seed(self, kind: str, key: str, data: Dict[str, Any]) -> None:
        """Remember a record found at start-up without reporting it as new."""
        typ = KIND_TYPE.get(kind)
        if typ is not None:
            self._last[f"{kind}/{key}"] = _summary(typ, data)

    def emit(self, typ: str, action: str, actor: str, attrs: Dict[str, Any]) -> None:
        entry = (time.time_ns(), typ, action, actor, tuple(attrs.items()))
        self.ring.append(entry)
        if not self.watchers:
            return
        ev = _event(entry)
        for w in list(self.watchers):
            try:
                w(ev)
            except Exception:  # a broken watcher must not break the daemon's own state change
                self.unwatch(w)

    # ---- consumers -----------------------------------------------------------------------------

    def since(self, t: float) -> List[Event]:
        return [_event(e) for e in self.ring if e[0] >= t * 1e9]

    def events(self) -> List[Event]:
        return [_event(e) for e in self.ring]

    def watch(self, w: Watcher) -> Callable[[], None]:
        self.watchers.append(w)
        return lambda: self.unwatch(w)

    def unwatch(self, w: Watcher) -> None:
        if w in self.watchers:
            self.watchers.remove(w)


def _event(e: Tuple[int, str, str, str, Tuple[Tuple[str, Any], ...]]) -> Event:
    """docker's event object."""
    ns, typ, action, actor, attrs = e
    return {"Type": typ, "Action": action, "Actor": {"ID": actor, "Attributes": dict(attrs)},
            "scope": "local", "time": ns // 1_000_000_000, "timeNano": ns}


def _summary(typ: str, d: Dict[str, Any]) -> Dict[str, Any]:
    if typ == "container":
        return {"state": d.get("state"), "exitCode": d.get("exitCode"),
                "stoppedByUser": bool(d.get("stoppedByUser")), "oomKilled": d.get("oomKilled") is True,
                "attrs": {"name": d.get("name", ""), "image": d.get("imageRef", "")}}
    if typ == "image":
        return {"tags": list(d.get("tags") or []), "attrs": {"name": ", ".join(d.get("tags") or [])}}
    if typ == "network":
        leases = d.get("leases") or []
        return {"cids": [le.get("cid", "") for le in leases if isinstance(le, dict)],
                "attrs": {"name": d.get("name", ""), "type": "bridge"}}
    return {"attrs": {"name": d.get("name", "")}}


def _transitions(typ: str, before: Optional[Dict[str, Any]], now: Dict[str, Any]) -> List[Any]:
    """(action, extra attributes) pairs for one record change."""
    if typ == "container":
        return _container(before, now)
    if typ == "image":
        if before is None:
            return [("load", {})]
        gained = [t for t in now["tags"] if t not in before["tags"]]
        lost = [t for t in before["tags"] if t not in now["tags"]]
        return [("tag", {"name": t}) for t in gained] + [("untag", {"name": t}) for t in lost]
    out: List[Any] = [("create", {})] if before is None else []
    if typ == "network":  # docker's network connect/disconnect (also at each start and exit)
        old = (before or {}).get("cids") or []
        out += [("connect", {"container": c}) for c in now["cids"] if c not in old]
        out += [("disconnect", {"container": c}) for c in old if c not in now["cids"]]
    return out


def _container(before: Optional[Dict[str, Any]], now: Dict[str, Any]) -> List[Any]:
    old = before["state"] if before else None
    new = now["state"]
    out: List[Any] = []
    if before is None and new in ("creating", "created", "running"):
        out.append(("create", {}))
    if new == old:
        return out
    if new == "running":
        out.append(("restart" if old == "restarting" else "start", {}))
    elif new in ("exited", "restarting") and old in ("running", "paused"):
        if now.get("oomKilled"):  # docker reports the OOM kill before the death it caused
            out.append(("oom", {}))
        code = now["exitCode"]
        out.append(("die", {"exitCode": "" if code is None else str(code)}))
        if now["stoppedByUser"]:
            out.append(("stop", {}))
    return out
