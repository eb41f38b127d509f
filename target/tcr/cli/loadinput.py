"""`tcr image load` from standard input, or with docker's `-i/--input FILE` (client side).

docker reads the image from stdin when no file is named (`docker load < f.tar`). tcrd loads
files, so the client copies stdin into the daemon's incoming directory (root only; the same
place the SSH upload uses), first as NAME.part and then renamed, and names that file. tcrd moves
an upload from there into its store and removes it on every other outcome; a copy cut short
(`.part`) is removed at the next start of tcrd.
"""

import os
from typing import Callable, List, Optional

from tcr.common.errors import UsageError

VALUE_FLAGS = ("-i", "--input")
CHUNK = 1 << 20


def split(args: List[str]) -> "tuple[List[str], Optional[str]]":
    """`load` args -> (args with -i/--input turned into the positional FILE, that FILE or None)."""
    out: List[str] = []
    path: Optional[str] = None
    i = 1
    while i < len(args):
        a = args[i]
        if a in VALUE_FLAGS:
            if i + 1 >= len(args):
                raise UsageError(f"tcr image load: flag needs an argument: {a}")
            path = args[i + 1]
            i += 2
            continue
        if a.startswith("--input="):
            path = a[len("--input="):]
        elif a == "--" or not a.startswith("-"):
            rest = args[i + 1:] if a == "--" else args[i:]
            out += rest
            if rest:
                path = rest[0]
            break
        else:
            out.append(a)
        i += 1
    if path is not None and path not in out:
        out.append(path)
    return ["load"] + out, path


def spool(incoming: str, read: Callable[[int], bytes]) -> str:
    """Copy everything `read` yields into a new file in `incoming`; its final path."""
    name = f"stdin-{os.getpid()}-{os.urandom(4).hex()}.sqfs"
    final = os.path.join(incoming, name)
    part = final + ".part"
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        total = 0
        while True:
            b = read(CHUNK)
            if not b:
                break
            view = memoryview(b)
            while view:
                view = view[os.write(fd, view):]
            total += len(b)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(part)
        raise
    os.close(fd)
    if total == 0:
        os.unlink(part)
        raise UsageError("tcr image load: standard input is empty", hint="pipe a .sqfs file into it")
    os.rename(part, final)
    return final


def rewrite(args: List[str], incoming: Callable[[], str]) -> List[str]:
    """The args to send for `image load ...`: a named file as is; otherwise stdin, spooled."""
    if any(a in ("-h", "--help") for a in args[1:]):
        return args
    out, path = split(args)
    if path is not None:
        return out
    if os.isatty(0):
        raise UsageError("tcr image load: name a FILE, use -i FILE, or pipe the image into standard input")
    if os.geteuid() != 0:
        raise UsageError("tcr image load: loading from standard input needs root (the upload goes to "
                         "tcrd's root-only incoming directory)", hint="name the file instead")
    return out + [spool(incoming(), lambda n: os.read(0, n))]
