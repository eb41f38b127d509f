"""Volumes: create/ls/inspect/rm/prune, and what a container start needs (a host directory per
volume, seeded once from the image's content at the mount point, as docker does).

<root>/volumes/<name>.json      the record (StateStore)
<root>/volumes/<name>/_data     the content, bind-mounted into containers

Order: directory first, record after (a crash leaves a directory without a record, which recovery
adopts as a volume: data is never deleted by a rollback); rm deletes the record first, then the data.
"""

from __future__ import annotations

import os
import time

from tcr.common import syntax
from tcr.common.errors import InUse, InvalidArgument, TcrError
from tcr.common.log import get_logger
from tcr.common.tree import remove_tree
from tcr.volumes.record import KIND, VolumeRecord

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

    Spawn = Callable[[Callable[..., Any], Tuple[Any, ...], str, Callable[[Any], None]], Any]

log = get_logger("tcr.volumes")

SEED_TMP = "_seed.tmp"  # a seed copy in progress, beside _data


class VolumeNotFound(InvalidArgument):
    """The C protocol has no "volume not found": it travels as an invalid argument."""


class VolumeManager:
    def __init__(self, root: str, store: Any, users: Callable[[], Iterable[Tuple[str, str]]]):
        """users(): (container name, volume name) for every container that mounts a volume."""
        self.root = root
        self.dir = os.path.join(root, KIND)
        self.store = store
        self.users = users
        self.vols: Dict[str, VolumeRecord] = {}
        self._seeding: Dict[str, List[Callable[[Optional[TcrError]], None]]] = {}  # name -> waiters
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        records, errors = store.load_records(KIND, VolumeRecord.from_dict, "volume")
        for line in errors:
            log.warning("%s", line)
        for rec in records.values():
            self.vols[rec.name] = rec
        for name in os.listdir(self.dir):  # a crash between mkdir and the record: adopt the data
            remove_tree(os.path.join(self.dir, name, SEED_TMP))  # a cut-short seed
            if name not in self.vols and os.path.isdir(os.path.join(self.dir, name, "_data")):
                self.vols[name] = VolumeRecord(name, time.time())
                self.store.save(KIND, name, self.vols[name].to_dict())

    def data_dir(self, name: str) -> str:
        return os.path.join(self.dir, name, "_data")

    def get(self, name: str) -> VolumeRecord:
        rec = self.vols.get(name)
        if rec is None:
            raise VolumeNotFound(f"no such volume: {name[:80]}", hint="see 'tcr volume ls'")
        return rec

    def new_anonymous_name(self) -> str:
        name = os.urandom(32).hex()
        while name in self.vols:
            name = os.urandom(32).hex()
        return name

    def create(self, name: Optional[str] = None, labels: Iterable[Tuple[str, str]] = (),
               anonymous: bool = False) -> VolumeRecord:
        """Idempotent for an existing name (docker's `volume create` and `-v NAME:` both are)."""

        name = name or self.new_anonymous_name()
        # a record lives beside the directory as NAME.json: a volume named "x.json" would collide
        if not syntax.name(name) or name.endswith((".json", ".corrupt")):
            raise InvalidArgument(f"invalid volume name {name!r}",
                                  hint="letters, digits, '_', '.', '-'; must start with a letter or digit")
        if name in self.vols:
            return self.vols[name]
        os.makedirs(self.data_dir(name), mode=0o755, exist_ok=True)
        os.chmod(os.path.join(self.dir, name), 0o700)
        rec = VolumeRecord(name, round(time.time(), 3), tuple(labels), anonymous)
        self.store.save(KIND, name, rec.to_dict())
        self.vols[name] = rec
        log.info("volume %s created", name[:12] if anonymous else name)
        return rec

    def used_by(self, name: str) -> List[str]:
        return sorted({c for c, v in self.users() if v == name})

    def remove(self, name: str, force: bool = False) -> None:
        self.get(name)
        who = self.used_by(name)
        if who:
            raise InUse(f"volume {name} is in use by container(s): {', '.join(who[:5])}",
                        hint="remove those containers first")
        self._delete(name)

    def _delete(self, name: str) -> None:
        self.store.delete(KIND, name)
        self.vols.pop(name, None)
        remove_tree(os.path.join(self.dir, name))
        log.info("volume %s removed", name)

    def prune(self, all_unused: bool = False) -> List[str]:
        """Unused anonymous volumes (all unused ones with all_unused), as docker does."""
        used: Set[str] = {v for _c, v in self.users()}
        gone = [n for n, r in sorted(self.vols.items()) if n not in used and (r.anonymous or all_unused)]
        for n in gone:
            self._delete(n)
        return gone

    def seed(self, name: str, image_rootfs: str, dst: str) -> None:
        """Copy the image's content at dst into a new, empty volume once (owners, modes, xattrs
        kept: `cp -a`). An image without that path leaves the volume empty. The copy goes to a
        temporary directory renamed over the empty _data at the end, so a copy cut short (ENOSPC,
        a crash) leaves the volume empty and unseeded, never half-seeded.

        In this process: for a start that nothing seeded before (run and start seed in a worker
        first, seed_async); a volume seeded already costs nothing here."""
        if self.get(name).seeded:
            return
        plan = self._seed_plan(name, image_rootfs, dst)
        if plan is not None:
            copy_seed(*plan)
        self._finish_seed(name, plan)

    def seed_async(self, name: str, image_rootfs: str, dst: str, spawn: Spawn,
                   on_done: Callable[[Optional[TcrError]], None]) -> None:
        """seed() with the copy in a worker: spawn(fn, args, what, done) starts it (the daemon's
        tcr.daemon.worker); on_done(None or the TcrError) runs on the loop afterwards. Two starts
        that need the same volume share one copy."""
        if self.get(name).seeded:
            on_done(None)
            return
        waiting = self._seeding.get(name)
        if waiting is not None:
            waiting.append(on_done)
            return
        plan = self._seed_plan(name, image_rootfs, dst)
        if plan is None:
            self._finish_seed(name, None)
            on_done(None)
            return
        waiters = self._seeding[name] = [on_done]

        def copied(result: Any) -> None:
            self._seeding.pop(name, None)
            err: Optional[TcrError] = None
            try:
                if isinstance(result, TcrError):
                    raise result
                self._finish_seed(name, plan)
            except TcrError as exc:
                err = exc
            except OSError as exc:
                from tcr.common import oserrors

                err = oserrors.to_error(exc)
            if err is not None:
                err.message = f"volume {name[:64]}: cannot seed it from the image: {err.message}"
            for w in waiters:
                w(err)

        try:
            spawn(copy_seed, plan, "volume seed", copied)
        except BaseException:
            self._seeding.pop(name, None)
            remove_tree(plan[1])
            raise

    def _seed_plan(self, name: str, image_rootfs: str, dst: str) -> Optional[Tuple[str, str]]:
        """(source in the image, temporary directory made for the copy), or None: nothing to copy."""
        data = self.data_dir(name)
        from tcr.containers.ociconfig import walk_in_root

        src = walk_in_root(image_rootfs, dst, must_exist=True)
        if src is None or not os.path.isdir(src) or os.listdir(data) or not os.listdir(src):
            return None
        tmp = os.path.join(self.dir, name, SEED_TMP)
        remove_tree(tmp)
        os.mkdir(tmp, 0o700)
        return src, tmp

    def _finish_seed(self, name: str, plan: Optional[Tuple[str, str]]) -> None:
        """The copy is complete: it becomes _data (one rename), and the volume is marked seeded."""
        if plan is not None:
            data = self.data_dir(name)
            try:
                os.rmdir(data)
                os.rename(plan[1], data)
            except BaseException:
                remove_tree(plan[1])
                os.makedirs(data, mode=0o755, exist_ok=True)
                raise
        from tcr.common.record import replace

        rec = replace(self.get(name), seeded=True)
        self.store.save(KIND, name, rec.to_dict())
        self.vols[name] = rec

    def inspect(self, name: str) -> Dict[str, Any]:
        rec = self.get(name)
        from tcr.commands.views import rfc3339

        return {"Name": rec.name, "Driver": "local", "Mountpoint": self.data_dir(rec.name),
                "CreatedAt": rfc3339(rec.created), "Labels": dict(rec.labels), "Scope": "local",
                "Options": {}, "Anonymous": rec.anonymous, "UsedBy": self.used_by(rec.name)}

    def records(self) -> List[VolumeRecord]:
        return [self.vols[n] for n in sorted(self.vols)]

    def list(self) -> List[Dict[str, Any]]:
        """Every volume in inspect's shape (Name, Mountpoint, Labels ...), sorted by name."""
        return [self.inspect(n) for n in sorted(self.vols)]


def copy_seed(src: str, tmp: str) -> None:
    """`cp -a` of the image's directory src into tmp, with src's owner and mode (docker's seed).
    Runs in a worker (it may copy a lot); a failure leaves no partial copy."""
    from tcr.common.run import run

    try:
        run(["cp", "-a", "--", src + "/.", tmp + "/"], timeout=600)
        st = os.stat(src)
        os.chown(tmp, st.st_uid, st.st_gid)
        os.chmod(tmp, st.st_mode & 0o7777)
    except BaseException:
        remove_tree(tmp)
        raise
