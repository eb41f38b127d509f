"""The os functions the client's fast path needs, straight from the posix module.

`import os` costs the client ~1 ms of its ~3 ms budget over a bare interpreter (posixpath, stat,
_collections_abc; `python3 -I -S` has not imported os yet). Same names and behaviour as os for
what is here; any other attribute imports os on first use and comes from there, so code written
against os keeps working (module __getattr__, PEP 562).
"""

import posix
from posix import (  # noqa: F401 - re-exported
    O_WRONLY,
    WEXITSTATUS,
    WIFEXITED,
    WIFSIGNALED,
    WTERMSIG,
    _exit,
    close,
    dup,
    dup2,
    execv,
    fork,
    getcwd,
    getpid,
    open,
    read,
    stat,
    waitpid,
    write,
)

devnull = "/dev/null"


def getenv(key, default=None):
    """os.getenv without os.environ (which builds a mapping of the whole environment)."""
    value = posix.environ.get(key.encode("utf-8", "surrogateescape"))
    return default if value is None else value.decode("utf-8", "surrogateescape")


def execvp(file, args):
    """os.execvp: PATH search as os._execvpe does (the first ENOENT/ENOTDIR is not the last word)."""
    if "/" in file:
        execv(file, args)
        return
    path = getenv("PATH") or "/usr/local/bin:/usr/bin:/bin"
    last: OSError | None = None
    for d in path.split(":"):
        try:
            execv(f"{d or '.'}/{file}", args)
        except (FileNotFoundError, NotADirectoryError) as exc:
            last = last or exc
        except OSError as exc:
            last = exc
    raise last if last is not None else FileNotFoundError(2, "No such file or directory", file)


def __getattr__(name):
    import os

    return getattr(os, name)
