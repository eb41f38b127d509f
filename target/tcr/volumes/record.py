"""The volume record (state kind "volumes", one file per volume)."""

from __future__ import annotations

from tcr.common.record import dataclass

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, Tuple

KIND = "volumes"


@dataclass(frozen=True)
class VolumeRecord:
    name: str
    created: float
    labels: Tuple[Tuple[str, str], ...] = ()
    anonymous: bool = False
    seeded: bool = False  # filled from an image already (docker copies only into a new volume)

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "created": self.created, "labels": dict(self.labels),
                "anonymous": self.anonymous, "seeded": self.seeded}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> VolumeRecord:
        labels = d.get("labels") or {}
        if not isinstance(labels, dict):
            raise ValueError("labels must be an object")
        return cls(str(d["name"]), float(d.get("created", 0.0)),
                   tuple((str(k), str(v)) for k, v in labels.items()), bool(d.get("anonymous", False)),
                   bool(d.get("seeded", False)))
