"""Image commands other than `image load`: image ls|rm|inspect|verify|tag|prune and `images`.

Loaded by their first command (`images` through tcr.commands.dispatch.LAZY_COMMANDS, the `image`
group's verbs through tcr.commands.images.HANDLERS): an idle tcrd that only loaded an image does
not hold them (docs/profile.md).
"""

from __future__ import annotations

import time

from tcr.commands import base, render
from tcr.commands.base import Ctx, Output, Parser, Pending
from tcr.commands.images import _images, _pending
from tcr.common.errors import TcrError

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Sequence


def _ls_item(rec: Any) -> Dict[str, Any]:
    repo_tag = rec.tags[0] if rec.tags else ""
    repo, _, tag = repo_tag.rpartition(":") if repo_tag else (rec.info.name, "", "")
    return {
        "Id": rec.id,
        "ID": rec.id,
        "Repository": repo,
        "Tag": tag,
        "Tags": list(rec.tags),
        "Digest": rec.info.digest,
        "Arch": rec.info.arch,
        "Created": rec.info.created,
        "Size": rec.size,
        "LoadedAt": rec.loaded_at,
        "Broken": "",
    }


def image_labels(rec: Any) -> Dict[str, str]:
    """The image's labels (docker LABEL): tcr-create-image keeps them as config.json annotations,
    beside its own org.opencontainers.image.* and org.tcr.* keys. {} if unreadable."""
    from tcr.common import fileread, jsonc

    try:
        config = jsonc.loads(fileread.read_bytes(rec.config_path, fileread.IMAGE_CONFIG_CAP))
        ann = config.get("annotations") or {}
    except (ValueError, AttributeError, OSError, TcrError):
        return {}
    if not isinstance(ann, dict):
        return {}
    return {str(k): str(v) for k, v in ann.items()
            if not str(k).startswith(("org.opencontainers.image.", "org.tcr."))}


def inspect_item(mgr: Any, rec: Any) -> Dict[str, Any]:
    d = rec.to_dict()
    d["labels"] = image_labels(rec)
    d["mounted"] = mgr.is_mounted(rec)
    d["bundle"] = rec.bundle
    d["rootfs"] = rec.rootfs
    if rec.id in mgr.unmounted:
        d["mountError"] = mgr.unmounted[rec.id]
    if rec.id in mgr.broken:
        d["broken"] = mgr.broken[rec.id]
    return d


def image_ls(ctx: Ctx, args: List[str], prog: str = "image ls") -> Output:
    p = Parser(prog, description="List loaded images.")
    p.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="label=K[=V]")
    base.add_format(p)
    ns = p.parse(args)
    mgr = _images(ctx)
    recs = mgr.list()
    if ns.filter:
        from tcr.commands.volumes import label_filter

        match = label_filter(ns.filter)
        recs = [r for r in recs if match(image_labels(r))]
    # Broken images (their file changed, or they could not be mounted) are listed, and said so
    # on stderr so the table and -q stay parseable.
    bad = {r.id: mgr.broken.get(r.id) or mgr.unmounted.get(r.id) for r in recs
           if r.id in mgr.broken or r.id in mgr.unmounted}
    warn = "".join(f"warning: image {i} is broken: {why}\n" for i, why in bad.items())
    if ns.quiet:
        return Output(0, "".join(r.id + "\n" for r in recs), warn)
    items = [_ls_item(r) for r in recs]
    for i in items:
        i["Broken"] = bad.get(i["Id"]) or ""
    now = time.time()

    def table() -> str:
        rows: List[Sequence[Any]] = [
            [i["Repository"], i["Tag"] or "<none>", i["Id"],
             render.human_ago(now - i["Created"]) if i["Created"] else "",
             render.human_size(i["Size"]), i["Arch"]]
            for i in items
        ]
        return render.table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "ARCH"], rows)

    return Output(0, render.listing(ns.format, items, table, {"ID": "IMAGE ID"}), warn)


def image_rm(ctx: Ctx, args: List[str]) -> Output:
    p = Parser("image rm", description="Remove images (refused while a container uses one).")
    p.add_argument("refs", nargs="+", metavar="IMAGE")
    ns = p.parse(args)
    mgr = _images(ctx)
    recs = [mgr.get(r) for r in ns.refs]  # all must resolve before anything is removed
    for r in recs:
        mgr.check_unused(r)
    out = []
    for r in dict((r.id, r) for r in recs).values():
        mgr.remove(r.id)
        out.append(r.id)
    return Output(0, "".join(i + "\n" for i in out))


def image_inspect(ctx: Ctx, args: List[str]) -> Output:
    p = Parser("image inspect", description="Show everything tcrd knows about images (JSON).")
    p.add_argument("refs", nargs="+", metavar="IMAGE")
    base.add_format(p, short=True)
    ns = p.parse(args)
    mgr = _images(ctx)
    items = [inspect_item(mgr, mgr.get(r)) for r in ns.refs]
    return Output(0, render.objects(ns.format, items))


def image_verify(ctx: Ctx, args: List[str]) -> Pending:
    p = Parser("image verify", description="Hash an image's stored file and compare it with its "
               ".sha256 sidecar and the digest recorded at load.")
    p.add_argument("refs", nargs="+", metavar="IMAGE")
    ns = p.parse(args)
    mgr = _images(ctx)
    recs = [mgr.get(ref) for ref in ns.refs]  # all must resolve before any work starts
    lines: List[str] = []

    def start(on_done) -> None:
        def step(i: int) -> None:  # one worker after the other: verifying is disk-bound
            if i == len(recs):
                on_done(Output(0, "\n".join(lines) + "\n"))
                return

            def got(r) -> None:
                if isinstance(r, TcrError):
                    on_done(r)
                else:
                    lines.append(f"{recs[i].id}: OK (sha256 {r})")
                    step(i + 1)

            try:
                mgr.verify_async(recs[i].id, got)
            except TcrError as exc:
                on_done(exc)

        step(0)

    return _pending(start)


def image_tag(ctx: Ctx, args: List[str]) -> Output:
    p = Parser("image tag", description="Give an image another name:tag (taken from any image that had it).")
    p.add_argument("source", metavar="IMAGE")
    p.add_argument("target", metavar="NAME[:TAG]")
    ns = p.parse(args)
    _images(ctx).tag(ns.source, ns.target)
    return Output(0)


def image_prune(ctx: Ctx, args: List[str]) -> Output:
    from tcr.commands.housekeeping import image_prune as prune

    return prune(ctx, args)


@base.command("images", "List images (same as 'image ls')")
def cmd_images(ctx: Ctx) -> Output:
    return image_ls(ctx, ctx.args, prog="images")
