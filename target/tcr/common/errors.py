"""The one exception hierarchy of tcr.

Every user-facing failure is a TcrError: a one-line message, an optional hint, and the RPC error
code of the C implementation's protocol (1 syntax ... 7 internal). Exit codes are decided once, in
the CLI's main(); nothing else calls sys.exit.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Optional


# RPC error codes, fixed by the C implementation's wire protocol.
SYNTAX = 1
CONTAINER_NOT_FOUND = 2
IMAGE_NOT_FOUND = 3
NETWORK_NOT_FOUND = 4
IN_USE = 5
INVALID_ARGUMENT = 6
INTERNAL = 7


class TcrError(Exception):
    """A failure the user can act on. str(err) is one line."""

    code = INTERNAL

    def __init__(self, message: str, hint: Optional[str] = None, code: Optional[int] = None):
        super().__init__(message)
        self.message = message.strip().splitlines()[0] if message.strip() else "error"
        self.hint = hint
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message

    def render(self) -> str:
        """The message as printed: one line, plus one hint line if any."""
        return self.message if not self.hint else f"{self.message}\nhint: {self.hint}"


class UsageError(TcrError):
    code = SYNTAX


class ContainerNotFound(TcrError):
    code = CONTAINER_NOT_FOUND


class ImageNotFound(TcrError):
    code = IMAGE_NOT_FOUND


class NetworkNotFound(TcrError):
    code = NETWORK_NOT_FOUND


class InUse(TcrError):
    code = IN_USE


class InvalidArgument(TcrError):
    code = INVALID_ARGUMENT


class InternalError(TcrError):
    code = INTERNAL


class CommandError(TcrError):
    """A subprocess failed. Carries the argv, the exit code and stderr (see tcr.common.run)."""

    code = INTERNAL

    def __init__(self, argv, returncode: int, stderr: str = "", hint: Optional[str] = None):
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        last = ""
        for line in reversed(stderr.strip().splitlines()):
            if line.strip():
                last = line.strip()
                break
        what = f"exit code {returncode}" if returncode >= 0 else f"killed by signal {-returncode}"
        msg = f"{self.argv[0]} failed ({what})" + (f": {last}" if last else "")
        super().__init__(msg, hint)


class HostError(TcrError):
    """The host failed us: disk full, out of file descriptors, I/O error (tcr.common.oserrors)."""

    code = INTERNAL


ECHO_MAX = 64  # characters of bad input an error message may repeat


def echo(value: object, limit: int = ECHO_MAX) -> str:
    """Bad input quoted for an error message: repr() of at most `limit` characters of it."""
    text = value if isinstance(value, str) else str(value)
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def shorten_echoes(message: str, inputs) -> str:
    """Cut every long input (as is, or as it appears inside a repr()) that a message repeats to
    ECHO_MAX characters: the one safety net under all error messages built from request args."""
    texts = set()
    for t in inputs:
        if isinstance(t, str) and len(t) > ECHO_MAX:
            texts.add(t)
            for sep in ("=", ":"):  # the value part of --flag=VALUE, HOST:CONTAINER ...
                texts.update(part for part in t.split(sep) if len(part) > ECHO_MAX)
    for text in sorted(texts, key=len, reverse=True):
        for form in (repr(text)[1:-1], text):
            head = form[: ECHO_MAX + 1]  # a repeat of more than ECHO_MAX characters of it (or all)
            i = message.find(head)
            while i != -1:
                n = len(head)
                while n < len(form) and i + n < len(message) and message[i + n] == form[n]:
                    n += 1
                message = message[: i + ECHO_MAX] + "..." + message[i + n:]
                i = message.find(head, i + ECHO_MAX + 3)
    return message



def shorten_error(exc: TcrError, inputs) -> TcrError:
    """exc with shorten_echoes() applied to its message and hint (returned, for `raise`)."""
    exc.message = shorten_echoes(exc.message, inputs)
    if exc.hint:
        exc.hint = shorten_echoes(exc.hint, inputs)
    return exc
