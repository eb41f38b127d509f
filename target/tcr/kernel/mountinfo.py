"""/proc/self/mountinfo parsing (see proc(5)); paths come with octal escapes (\\040 for a space)."""

from __future__ import annotations

from tcr.common.record import dataclass

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import List, Optional, Tuple



def unescape(s: str) -> str:
    """Undo the kernel's octal escaping of space, tab, newline and backslash."""
    if "\\" not in s:
        return s
    parts = s.split("\\")
    out = [parts[0]]
    for p in parts[1:]:  # re.sub(r"\\([0-7]{3})", chr(octal)): other backslashes stay
        if len(p) >= 3 and p[0] in "01234567" and p[1] in "01234567" and p[2] in "01234567":
            out.append(chr(int(p[:3], 8)) + p[3:])
        else:
            out.append("\\" + p)
    return "".join(out)


@dataclass(frozen=True)
class Mount:
    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str
    mount_point: str
    options: str
    optional: Tuple[str, ...]
    fstype: str
    source: str
    super_options: str


def parse_line(line: str) -> Optional[Mount]:
    parts = line.split(" ")
    try:
        sep = parts.index("-", 6)
        major, minor = parts[2].split(":")
        return Mount(
            mount_id=int(parts[0]),
            parent_id=int(parts[1]),
            major=int(major),
            minor=int(minor),
            root=unescape(parts[3]),
            mount_point=unescape(parts[4]),
            options=parts[5],
            optional=tuple(parts[6:sep]),
            fstype=parts[sep + 1],
            source=unescape(parts[sep + 2]),
            super_options=parts[sep + 3] if len(parts) > sep + 3 else "",
        )
    except (ValueError, IndexError):
        return None


def parse(text: str) -> List[Mount]:
    out = []
    for line in text.splitlines():
        m = parse_line(line) if line else None
        if m is not None:
            out.append(m)
    return out


def read(path: str = "/proc/self/mountinfo") -> List[Mount]:
    with open(path) as f:
        return parse(f.read())


def find(mount_point: str, mounts: Optional[List[Mount]] = None) -> Optional[Mount]:
    """The top-most mount at mount_point (the last one listed wins), or None."""
    found = None
    for m in mounts if mounts is not None else read():
        if m.mount_point == mount_point:
            found = m
    return found


def under(prefix: str, mounts: Optional[List[Mount]] = None) -> List[Mount]:
    """Mounts at or below prefix, deepest first (the order to unmount them in)."""
    prefix = prefix.rstrip("/")
    ms = [m for m in (mounts if mounts is not None else read())
          if m.mount_point == prefix or m.mount_point.startswith(prefix + "/")]
    return sorted(ms, key=lambda m: (-m.mount_point.count("/"), -m.mount_id))
