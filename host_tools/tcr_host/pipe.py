"""A streaming subprocess: we write a tool's stdin while it runs (tar -> tar2sqfs).

tcr.common.run.run() runs commands to completion and cannot feed a live stream, so this is the
build PC's one other subprocess door. Same conventions: argv lists, debug logging, a missing
tool becomes a TcrError with the package to install, failures become CommandError with stderr.
"""

import fcntl
import io
import logging
import subprocess
import tempfile
from typing import Sequence

from tcr.common.errors import CommandError, TcrError
from tcr.common.run import PACKAGES

log = logging.getLogger("tcr.run")
F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20


class StreamSink:
    """Popen with stdin=PIPE (big buffer), stdout discarded, stderr kept in a temp file."""

    def __init__(self, argv: Sequence[str]):
        self.argv = [str(a) for a in argv]
        log.debug("spawn: %s", " ".join(self.argv))
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed by finish()/abort()
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=self._err, close_fds=True, bufsize=0)
        except FileNotFoundError:
            self._err.close()
            pkg = PACKAGES.get(self.argv[0].rsplit("/", 1)[-1])
            raise TcrError(f"{self.argv[0]}: command not found",
                           hint=f"install it: apt-get install {pkg}" if pkg else None)
        assert self.proc.stdin is not None
        try:  # fewer wake-ups between us and the consumer; best effort (capped for non-root)
            fcntl.fcntl(self.proc.stdin.fileno(), F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass
        self.stdin = io.BufferedWriter(self.proc.stdin, PIPE_SIZE)  # type: ignore[arg-type]

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
