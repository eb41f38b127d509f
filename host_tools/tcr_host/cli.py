"""tcr-create-image: build a tcr squashfs image from an OCI image (see docs/create_image.md).

Errors are handled once, here: a TcrError prints one line (plus a hint) and exits 1 (usage 2);
tracebacks only with --debug.
"""

import argparse
import logging
import sys
from typing import List, NoReturn, Optional

from tcr.common import jsonc
from tcr.common.errors import TcrError, UsageError

PROG = "tcr-create-image"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {PROG} --help)")


def _bool(v: str) -> bool:
    s = v.strip().lower()
    if s in ("true", "1", "yes", "on"):
        return True
    if s in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {v!r}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Pull an OCI image and pack it as a tcr zstd squashfs image "
                "(no root needed). Subcommand: `inspect FILE.sqfs`.")
    p.add_argument("image", help="name[:tag|@digest], docker://..., oci:DIR[:TAG], oci-archive:FILE[:TAG], "
                   "docker-archive:FILE[:REF]")
    p.add_argument("-o", "--output", help="output .sqfs (default ./<name>_<tag>.sqfs)")
    p.add_argument("--arch", help="target architecture: amd64, arm64, arm/v7 ... (multi-arch images)")
    p.add_argument("--tls-verify", type=_bool, nargs="?", const=True, default=True, metavar="BOOL",
                   help="--tls-verify=false for plain-HTTP or self-signed registries")
    p.add_argument("--creds", metavar="USER:PASS", help="registry credentials")
    p.add_argument("--authfile", help="registry auth file (containers-auth.json format)")
    p.add_argument("--comp-level", type=int, metavar="N", help="zstd level 1..22 (default 15)")
    p.add_argument("--name", metavar="NAME[:TAG]", help="record the image under this name in image-info.json")
    p.add_argument("-f", "--force", action="store_true", help="overwrite the output file")
    p.add_argument("-w", "--work-dir", help="keep pulled blobs in this directory (reused next time)")
    p.add_argument("-j", "--jobs", type=int, help="compressor threads (default: all CPUs)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.add_argument("--debug", action="store_true", help="log commands; tracebacks on errors")
    return p


def inspect_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=f"{PROG} inspect", description="Show a tcr image's image-info.json (no mount, no root).")
    p.add_argument("file", help="the .sqfs image")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.add_argument("--verify", action="store_true", help="check the FILE.sqfs.sha256 sidecar")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return p


def _cmd_build(argv: List[str]) -> int:
    a = build_parser().parse_args(argv)
    from tcr_host.build import create_image
    from tcr_host.progress import Progress

    progress = Progress(enabled=False if a.quiet else None)
    res = create_image(a.image, a.output, arch=a.arch, tls_verify=a.tls_verify, creds=a.creds,
                       authfile=a.authfile, comp_level=a.comp_level, force=a.force, work_dir=a.work_dir,
                       name=a.name, jobs=a.jobs, progress=progress)
    if a.json:
        print(jsonc.dumps(res.to_dict()))
    elif progress.enabled:
        print(f"{res.path}: {res.info.reference} {res.info.arch}, {res.size / 1e6:.1f} MB, "
              f"id {res.info.id}, {res.seconds:.1f}s", file=sys.stderr)
        print(res.path)
    else:
        print(res.path)
    return 0


def _cmd_inspect(argv: List[str]) -> int:
    a = inspect_parser().parse_args(argv)
    from tcr_host.inspect import inspect_image, render

    ins = inspect_image(a.file, verify=a.verify)
    print(jsonc.dumps_pretty(ins.to_dict()).rstrip() if a.json else render(ins))
    return 1 if ins.checksum == "mismatch" else 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(name)s: %(message)s")
    try:
        if argv and argv[0] == "inspect":
            return _cmd_inspect(argv[1:])
        return _cmd_build(argv)
    except TcrError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"{PROG}: error: {exc.render()}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        print(f"{PROG}: internal error: {exc.__class__.__name__}: {exc} (run with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
