"""Image commands: image load|ls|rm|inspect|verify, and `images` (= image ls)."""

from __future__ import annotations

import os
import time

from tcr.commands import base, render
from tcr.commands.base import Ctx, Output, Parser, Pending
from tcr.common.errors import InvalidArgument, TcrError

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Sequence

SUBCOMMANDS = ("load", "ls", "rm", "inspect", "verify", "tag", "prune")
USAGE = "usage: tcr image load|ls|rm|inspect|verify|tag|prune ..."


def _images(ctx: Ctx) -> Any:
    return ctx.daemon.images


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


def _pending(start) -> Pending:
    """A Pending finished by start(on_done), where on_done gets an Output or a TcrError."""
    p = Pending()

    def on_done(result) -> None:
        if isinstance(result, TcrError):
            p.fail(result)
        else:
            p.resolve(result)

    start(on_done)
    return p


def image_load(ctx: Ctx, args: List[str]) -> Pending:
    p = Parser("image load", description="Load a squashfs image made by tcr-create-image. The store "
               "keeps its own copy (reflink where the filesystem can), checked against FILE.sha256.")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    p.add_argument("--move", action="store_true",
                   help="move the file into the store instead of copying it (O(1); the file must be "
                        "root's, with no other hard link, on the store's filesystem)")
    p.add_argument("path", help="the .sqfs file (relative to the client's directory)")
    ns = p.parse(args)
    if ns.move and ctx.uid != 0 and ctx.uid != os.geteuid():
        # A member of group tcr may have root copy a file it can read, not move root's files away.
        raise InvalidArgument("image load --move: only root may move files into the image store",
                              hint="load it without --move (the store keeps a copy)")
    mgr = _images(ctx)

    def render_rec(rec) -> Output:
        # The C client prints the id; keep it as the first line so scripts can `| head -1`.
        return Output(0, f"{rec.id}\n" if ns.quiet else f"{rec.id}\nLoaded image: {rec.display_ref}\n")

    def start(on_done) -> None:
        mgr.load_async(ctx.path(ns.path), ns.move,
                       lambda r: on_done(r if isinstance(r, TcrError) else render_rec(r)))

    return _pending(start)


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


HANDLERS: Dict[str, Any] = {"load": image_load, "ls": image_ls, "list": image_ls, "rm": image_rm,
                            "remove": image_rm, "inspect": image_inspect, "verify": image_verify,
                            "tag": image_tag, "prune": image_prune}


@base.command("image", "Manage images: load, ls, rm, inspect, verify")
def cmd_image(ctx: Ctx) -> Any:
    return base.subcommand(ctx, "image", HANDLERS, USAGE, (
        "  load [--move] PATH  load a .sqfs image (copied into the store, checked, mounted read-only)\n"
        "  ls                  list images (--format json, -q)\n"
        "  rm IMAGE...         remove images not used by any container\n"
        "  inspect IMAGE...    details as JSON\n"
        "  verify IMAGE...     re-hash against FILE.sqfs.sha256 and the digest recorded at load\n"
        "  tag IMAGE NAME[:TAG]  add a name:tag to an image\n"
        "  prune [-a]          remove untagged images (-a: every image no container uses)\n"
        "IMAGE: id, unique id prefix (4+), name[:tag] (default latest), name@digest or digest\n"))


@base.command("images", "List images (same as 'image ls')")
def cmd_images(ctx: Ctx) -> Output:
    return image_ls(ctx, ctx.args, prog="images")
