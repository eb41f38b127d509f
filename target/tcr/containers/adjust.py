"""Changes to an existing container: pause/unpause, rename, update (a ContainerManager mixin).

pause freezes the container's cgroup through `crun pause`; the paused flag is runtime state
(crun's own state says "paused", which recovery reads back), so no record format changes.
rename changes the name in the record and in the network's DNS names. update changes the
cgroup limits of a running container with `crun update` and records them, so the next start
uses them too; `--restart` changes the policy.
"""

from __future__ import annotations

from tcr.common import syntax
from tcr.common.errors import CommandError, InUse, InvalidArgument, TcrError
from tcr.common.record import replace
from tcr.containers import crun

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional


class AdjustOps:
    """Mixed into tcr.containers.manager.ContainerManager (uses its containers, store, crun_root)."""

    containers: Dict[str, Any]
    crun_root: str
    daemon: Any

    def _save(self, c: Any, **changes: Any) -> bool:  # provided by ContainerManager
        raise NotImplementedError

    # ---- pause / unpause ---------------------------------------------------------------------

    def _crun(self, c: Any, *args: str) -> None:
        from tcr.common.run import run

        try:
            run(crun.base(self.crun_root) + list(args) + [c.rec.id], timeout=30)
        except CommandError as exc:
            lines = exc.stderr.strip().splitlines()
            raise InvalidArgument(f"container {c.rec.name}: {lines[-1] if lines else exc}")

    def pause(self, c: Any) -> None:
        if c.rec.state != "running":
            raise InvalidArgument(f"container {c.rec.name} is not running")
        if getattr(c, "paused", False):
            raise InvalidArgument(f"container {c.rec.name} is already paused")
        self._crun(c, "pause")
        c.paused = True

    def unpause(self, c: Any) -> None:
        if not getattr(c, "paused", False):
            raise InvalidArgument(f"container {c.rec.name} is not paused")
        self._crun(c, "resume")
        c.paused = False

    def thaw(self, c: Any) -> None:
        """Before a stop, kill or remove: a frozen cgroup would hold the signal (v1 freezer)."""
        if getattr(c, "paused", False):
            try:
                self._crun(c, "resume")
            except TcrError:
                pass
            c.paused = False

    # ---- rename ------------------------------------------------------------------------------

    def rename(self, c: Any, new: str) -> None:

        if not syntax.name(new):
            raise InvalidArgument(f"invalid container name {new[:64]!r}",
                                  hint="use letters, digits, '_', '.', '-' (up to 128 characters)")
        if new == c.rec.name:
            raise InvalidArgument(f"container {new!r} already has that name")
        if any(o.rec.name == new for o in self.containers.values()):
            raise InUse(f"the container name {new!r} is already in use")
        options = dict(c.rec.options)
        if options.get("name"):
            options["name"] = new
        self._save(c, name=new, options=options)
        nets = self.daemon.networks
        if nets is not None and hasattr(nets, "rename"):
            nets.rename(c.rec.id, new)

    # ---- update ------------------------------------------------------------------------------

    def update(self, c: Any, memory: Optional[int], cpus: Optional[float], pids: Optional[int],
               restart: Optional[Any]) -> None:
        """New limits (None = unchanged) and restart policy, live where the container runs."""
        from tcr.containers import resources

        if restart is not None and restart.name != "no" and c.opts.rm:
            raise InvalidArgument("--restart cannot be set on a container started with --rm")
        if c.rec.state == "running" and any(v is not None for v in (memory, cpus, pids)):
            argv: List[str] = ["update"]
            if memory is not None:
                argv.append(f"--memory={memory}")
            if cpus is not None:
                res = resources.oci_resources(None, cpus, None)["cpu"]
                argv += [f"--cpu-quota={res['quota']}", f"--cpu-period={res['period']}"]
            if pids is not None:
                argv.append(f"--pids-limit={pids}")
            self._crun(c, *argv)
        o = c.opts
        o = replace(o, memory=memory if memory is not None else o.memory,
                    cpus=cpus if cpus is not None else o.cpus,
                    pids_limit=pids if pids is not None else o.pids_limit,
                    restart=restart if restart is not None else o.restart)
        c.opts = o
        self._save(c, options=o.to_dict())
        if restart is not None:
            c.streak = 0
