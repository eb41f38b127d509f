"""Image commands: `image load` (what an idle tcrd keeps), and the `image` group, whose other
verbs (ls, rm, inspect, verify, tag, prune) and `images` live in tcr.commands.imageops, loaded on
first use (docs/profile.md)."""

from __future__ import annotations

import os

from tcr.commands import base
from tcr.commands.base import Ctx, Output, Parser, Pending
from tcr.common.errors import InvalidArgument, TcrError

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List

SUBCOMMANDS = ("load", "ls", "rm", "inspect", "verify", "tag", "prune")
USAGE = "usage: tcr image load|ls|rm|inspect|verify|tag|prune ..."


def _images(ctx: Ctx) -> Any:
    return ctx.daemon.images


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


def _occasional(name: str) -> Callable[[Ctx, List[str]], Any]:
    """The handler `name` of tcr.commands.imageops, imported by its first call."""
    def run(ctx: Ctx, args: List[str]) -> Any:
        from tcr.commands import imageops

        return getattr(imageops, name)(ctx, args)

    return run


HANDLERS: Dict[str, Any] = {"load": image_load,
                            "ls": _occasional("image_ls"), "list": _occasional("image_ls"),
                            "rm": _occasional("image_rm"), "remove": _occasional("image_rm"),
                            "inspect": _occasional("image_inspect"), "verify": _occasional("image_verify"),
                            "tag": _occasional("image_tag"), "prune": _occasional("image_prune")}


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
