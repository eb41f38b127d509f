"""What only some containers need, loaded with the first one that does (an idle tcrd that ran
none does not hold it, docs/profile.md): volumes (-v NAME, anonymous volumes, seeding from the
image) and host devices (--device, --privileged). ContainerManager keeps a thin entry point for
each, which returns early for a container without volumes or devices.
"""

from __future__ import annotations

import os

from tcr.common.errors import TcrError
from tcr.common.record import replace
from tcr.containers.manager import StartFailed, log

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional, Tuple

    from tcr.containers.manager import Container, ContainerManager


def make_volumes(cm: ContainerManager, opts: Any) -> Any:
    """Name the anonymous volumes and create the named ones that do not exist yet (docker does
    both at create). Returns the options with every volume named."""
    vm = cm.volumes
    vols = []
    for v in opts.volumes:
        if v.kind == "volume":
            if v.anonymous:
                v = replace(v, src=vm.create(anonymous=True).name)
            elif v.src not in vm.vols:
                vm.create(v.src)
        vols.append(v)
    return replace(opts, volumes=tuple(vols))


def drop_anonymous(cm: ContainerManager, opts: Any) -> None:
    for v in opts.volumes:
        if v.kind == "volume" and v.anonymous and v.src:
            try:
                cm.volumes.remove(v.src)
            except TcrError as exc:
                log.warning("anonymous volume %s not removed: %s", v.src[:12], exc)


def volume_sources(cm: ContainerManager, c: Container, image: Any) -> Tuple[str, ...]:
    """Host directory of every -v/--mount: volumes seeded from the image on first use, missing
    -v host directories made (docker), missing --mount type=bind sources refused."""
    out = []
    for v in c.opts.volumes:
        if v.kind == "volume":
            vm = cm.volumes
            if v.src not in vm.vols:  # removed behind our back (volume rm -f is refused; a crash)
                vm.create(v.src, anonymous=v.anonymous)
            try:  # its directory deleted by hand: an empty volume again, not a failed start
                os.makedirs(vm.data_dir(v.src), mode=0o755, exist_ok=True)
            except OSError as exc:
                raise StartFailed(f"volume {v.src}: {exc.strerror}")
            vm.seed(v.src, image.rootfs, v.dst)
            out.append(vm.data_dir(v.src))
            continue
        if not os.path.lexists(v.src):
            if not v.create:
                raise StartFailed("invalid mount config for type \"bind\": bind source path does not "
                                  f"exist: {v.src}")
            try:
                os.makedirs(v.src, mode=0o755, exist_ok=True)
            except OSError as exc:
                raise StartFailed(f"cannot create the host directory {v.src} for -v: {exc.strerror}")
        out.append(v.src)
    return tuple(out)


def seed_volumes(cm: ContainerManager, c: Container, on_done: Callable[[Optional[TcrError]], None]) -> bool:
    """Before a start: copy the image's content into c's new volumes in a worker (a `cp -a` of
    a big directory must not stall the loop); the start then finds them seeded. False when
    there is nothing to do here (on_done is not called); else on_done(None or the TcrError,
    as a StartFailed) on the loop once every volume is seeded."""
    try:
        image = cm.daemon.images.get(c.rec.image_id)
        cm.daemon.images.check_usable(image)
    except TcrError:
        return False  # the start itself says why
    from tcr.common import oserrors
    from tcr.daemon import worker

    vm = cm.volumes
    todo = [v for v in c.opts.volumes if v.kind == "volume" and v.src in vm.vols]

    def spawn(fn: Any, args: Any, what: str, done: Any) -> None:
        worker.spawn(cm.loop, fn, args, what=what, on_done=done)

    def step(i: int, err: Optional[TcrError]) -> None:
        if err is not None:
            on_done(StartFailed(err.message, hint=err.hint))
            return
        if i == len(todo):
            on_done(None)
            return
        v = todo[i]
        try:
            os.makedirs(vm.data_dir(v.src), mode=0o755, exist_ok=True)
            vm.seed_async(v.src, image.rootfs, v.dst, spawn, lambda e: step(i + 1, e))
        except TcrError as exc:
            step(i, exc)
        except OSError as exc:
            step(i, oserrors.to_error(exc))

    step(0, None)
    return True


def devices(cm: ContainerManager, c: Container) -> Tuple[Any, ...]:
    """The host devices of --privileged (all of them) and every --device."""
    from tcr.containers.ociconfig import HostDevice
    from tcr.kernel import devices as kdev

    found: Dict[str, Any] = {}
    if c.opts.privileged:
        for hn in kdev.all_host_devices():
            found[hn.host_path] = HostDevice(hn.host_path, hn.type, hn.major, hn.minor, "rwm", hn.mode,
                                             hn.uid, hn.gid, hn.host_path, False)
    for d in c.opts.devices:
        try:
            n = kdev.node(d.host)
            nodes = [(d.container, n)] if n is not None else []
            if n is None and os.path.isdir(d.host):  # --device /dev/snd: every node below it
                top = os.path.realpath(d.host)
                nodes = [(os.path.join(d.container, os.path.relpath(m.host_path, top)), m)
                         for m in kdev.walk(d.host)]
        except OSError as exc:
            raise StartFailed(f"error gathering device information while adding device {d.host!r}: "
                              f"{exc.strerror}")
        if not nodes:
            raise StartFailed(f"--device {d.host}: not a character or block device")
        for path, m in nodes:
            found[path] = HostDevice(path, m.type, m.major, m.minor, d.perms, m.mode, m.uid, m.gid,
                                     m.host_path, m.devpts)
    return tuple(found.values())
