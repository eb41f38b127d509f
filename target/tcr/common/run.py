"""The one door to the outside world: every subprocess goes through run().

argv lists only (no shell), stdin closed unless input is given, the command logged at debug level,
and one exception type (CommandError) carrying the argv, the exit code and stderr.
"""

from __future__ import annotations

import os
import subprocess

from tcr.common.errors import CommandError, TcrError
from tcr.common.log import DEBUG, get_logger

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Mapping, Optional, Sequence, Union

log = get_logger("tcr.run")


class Result:
    __slots__ = ("argv", "returncode", "stdout", "stderr")

    # stdout is bytes when input was bytes (binary mode), str otherwise.
    def __init__(self, argv: Sequence[str], returncode: int, stdout: Any, stderr: str):
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def run(
    argv: Sequence[str],
    *,
    input: Optional[Union[str, bytes]] = None,
    check: bool = True,
    timeout: Optional[float] = 60.0,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
    capture: bool = True,
    stdout=None,
    stderr=None,
) -> Result:
    """Run argv to completion. Raises CommandError if check and it fails.

    stdout/stderr may be given as file objects/fds to redirect instead of capturing.
    """
    if isinstance(argv, (str, bytes)):
        raise TypeError("run() takes an argv list, never a shell string")
    argv = [os.fspath(a) for a in argv]
    if log.isEnabledFor(DEBUG):
        log.debug("run: %s", " ".join(argv))
    text = not isinstance(input, bytes)
    try:
        proc = subprocess.run(
            argv,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            stdout=stdout if stdout is not None else (subprocess.PIPE if capture else None),
            stderr=stderr if stderr is not None else (subprocess.PIPE if capture else None),
            timeout=timeout,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            text=text,
            errors="replace" if text else None,
            close_fds=True,
        )
    except FileNotFoundError:
        raise TcrError(f"{argv[0]}: command not found", hint=_package_hint(argv[0]))
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr or ""
        if isinstance(err, bytes):
            err = err.decode(errors="replace")
        raise CommandError(argv, -9, f"timed out after {timeout}s\n{err}")
    out = proc.stdout if proc.stdout is not None else ("" if text else b"")
    err = proc.stderr if proc.stderr is not None else ""
    if isinstance(err, bytes):
        err = err.decode(errors="replace")
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, err)
    return Result(argv, proc.returncode, out, err)


class Sink:
    """A running command whose stdin we stream into (e.g. tar -> tar2sqfs); the other door of run().

    Same conventions: argv list, debug log, stdout discarded, stderr kept (in a temp file, so a
    chatty tool cannot block on a full pipe), a missing tool is a TcrError naming its package, and
    a failure is a CommandError with the argv, exit code and stderr.
    """

    PIPE_SIZE = 1 << 20
    F_SETPIPE_SZ = 1031

    def __init__(self, argv: Sequence[str]):
        import fcntl
        import io
        import tempfile

        self.argv = [os.fspath(a) for a in argv]
        log.debug("spawn: %s", " ".join(self.argv))
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed by finish()/abort()
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=self._err, close_fds=True, bufsize=0)
        except FileNotFoundError:
            self._err.close()
            raise TcrError(f"{self.argv[0]}: command not found", hint=_package_hint(self.argv[0]))
        assert self.proc.stdin is not None
        try:  # fewer wake-ups between us and the consumer; best effort (capped for non-root)
            fcntl.fcntl(self.proc.stdin.fileno(), self.F_SETPIPE_SZ, self.PIPE_SIZE)
        except OSError:
            pass
        self.stdin = io.BufferedWriter(self.proc.stdin, self.PIPE_SIZE)  # type: ignore[arg-type]

    def _stderr(self) -> str:
        self._err.seek(0)
        return self._err.read(64 * 1024).decode("utf-8", "replace")

    def finish(self) -> None:
        """Close stdin, wait, raise CommandError on failure."""
        try:
            self.stdin.close()
        except BrokenPipeError:
            pass
        rc = self.proc.wait()
        err = self._stderr()
        self._err.close()
        if rc != 0:
            raise CommandError(self.argv, rc, err)

    def failed_early(self) -> bool:
        """True if the consumer already exited with an error (e.g. after a broken pipe)."""
        rc = self.proc.poll()
        return rc is not None and rc != 0

    def abort(self) -> None:
        """Stop the consumer (our own child, by its pid) and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.stdin.close()
        except OSError:
            pass
        self.proc.wait()
        if not self._err.closed:
            self._err.close()


def which(name: str) -> Optional[str]:
    """Like shutil.which, without importing shutil on the hot path."""
    if os.sep in name:
        return name if os.access(name, os.X_OK) else None
    for d in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(os.pathsep):
        p = os.path.join(d or ".", name)
        if os.access(p, os.X_OK) and not os.path.isdir(p):
            return p
    for d in ("/usr/sbin", "/sbin"):  # root tools are often outside a user's PATH
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


# Debian package providing each external tool, for "missing tool" hints.
PACKAGES = {
    "crun": "crun",
    "skopeo": "skopeo",
    "umoci": "umoci",
    "mksquashfs": "squashfs-tools",
    "unsquashfs": "squashfs-tools",
    "tar2sqfs": "squashfs-tools-ng",
    "sqfs2tar": "squashfs-tools-ng",
    "nft": "nftables",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "scp": "openssh-client",
    "losetup": "util-linux",
}


def _package_hint(tool: str) -> Optional[str]:
    pkg = PACKAGES.get(os.path.basename(tool))
    return f"install it: apt-get install {pkg}" if pkg else None
