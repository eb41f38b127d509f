"""`tcr exec` as docker's: the exec'd process starts from the container's own process settings.

crun's `exec --env` replaces the environment, `--user` takes numbers only, the working directory
defaults to `/`, and a missing command exits 255. So tcrd reads the container's config.json (its
own file) and hands crun the full picture: the container's env with the -e values merged in, the
user resolved from the image's /etc/passwd, the container's WORKDIR, and a command check that
gives docker's 127/126 before crun runs.
"""

from __future__ import annotations

from tcr.common.errors import InvalidArgument, TcrError
from tcr.common.record import dataclass
from tcr.containers.ociconfig import merge_env, resolve_user

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence


@dataclass(frozen=True)
class ExecPlan:
    env: List[str]
    user: Optional[str]  # "UID:GID" for crun, None for the container's own user
    cwd: str
    rootfs: str


def plan(config: Dict[str, Any], extra_env: Sequence[str], user: Optional[str],
         cwd: Optional[str]) -> ExecPlan:
    """Pure: the container's config.json (as written at its start) + exec flags -> what crun gets."""
    process = config.get("process") or {}
    rootfs = str((config.get("root") or {}).get("path") or "")
    base_env = [e for e in (process.get("env") or []) if isinstance(e, str)]
    env = merge_env(base_env, [e for e in extra_env if "=" in e])
    uid_gid: Optional[str] = None
    if user:
        u = resolve_user(user, rootfs or None)
        uid_gid = f"{u.uid}:{u.gid}"
        if not any(e.startswith("HOME=") for e in extra_env):
            env = merge_env(env, [f"HOME={u.home}"])
    workdir = cwd or str(process.get("cwd") or "/")
    if not workdir.startswith("/"):
        raise InvalidArgument(f"the working directory must be absolute: {workdir!r}")
    return ExecPlan(env, uid_gid, workdir, rootfs)


def load_config(path: str) -> Dict[str, Any]:
    from tcr.common import jsonc
    from tcr.common.fileread import read_bytes

    try:
        d = jsonc.loads(read_bytes(path, 16 << 20))
    except (OSError, ValueError, TcrError) as exc:
        raise InvalidArgument(f"cannot read the container's config: {exc}")
    if not isinstance(d, dict):
        raise InvalidArgument("the container's config.json is not a JSON object")
    return d
