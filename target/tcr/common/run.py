"""The one door to the outside world: every subprocess goes through run().

argv lists only (no shell), stdin closed unless input is given, the command logged at debug level,
and one exception type (CommandError) carrying the argv, the exit code and stderr.
"""

from __future__ import annotations

import _signal as signal  # not `signal`: its enums bring enum and functools (docs/profile.md)
import os
import select
import time

from tcr.common.errors import CommandError, TcrError
from tcr.common.log import DEBUG, get_logger

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

log = get_logger("tcr.run")

# Python ignores these; an exec keeps ignored signals, so reset them as subprocess does
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)


class Result:
    __slots__ = ("argv", "returncode", "stdout", "stderr")

    # stdout is bytes when input was bytes (binary mode), str otherwise.
    def __init__(self, argv: Sequence[str], returncode: int, stdout: Any, stderr: str):
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


PIPE = -1  # stdout=/stderr=PIPE: capture that stream even with capture=False (subprocess.PIPE's value)


def run(
    argv: Sequence[str],
    *,
    input: Optional[Union[str, bytes]] = None,
    check: bool = True,
    timeout: Optional[float] = 60.0,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
    capture: bool = True,
    stdout: Any = None,
    stderr: Any = None,
    stdin: Optional[int] = None,
) -> Result:
    """Run argv to completion. Raises CommandError if check and it fails.

    stdout/stderr may be given as file objects/fds to redirect instead of capturing, or PIPE.
    The child is started with os.posix_spawn (vfork+exec in glibc), not subprocess: subprocess
    costs tcrd ~0.9 MB resident (threading, locale, ...), and the spawn is cheaper than its fork
    for a daemon with a large heap. Python's fds are close-on-exec (PEP 446); only 0-2 pass.
    """
    if isinstance(argv, (str, bytes)):
        raise TypeError("run() takes an argv list, never a shell string")
    argv = [os.fspath(a) for a in argv]
    if log.isEnabledFor(DEBUG):
        log.debug("run: %s", " ".join(argv))
    text = not isinstance(input, bytes)
    if cwd is not None:  # posix_spawn has no chdir before Python 3.13: the rare caller pays subprocess
        return _run_subprocess(argv, input, check, timeout, env, cwd, capture, stdout, stderr, text)
    path = which(argv[0]) if os.sep not in argv[0] else argv[0]
    if path is None:
        raise TcrError(f"{argv[0]}: command not found", hint=_package_hint(argv[0]))
    actions: List[Any] = []
    parent_ends: Dict[int, int] = {}  # child fd -> our end of its pipe
    child_ends: List[int] = []
    try:
        if input is None and stdin is not None:  # a container's stdin pipe (tcr.containers.stdio)
            actions.append((os.POSIX_SPAWN_DUP2, stdin, 0))
        elif input is None:
            actions.append((os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0))
        else:
            r, w = os.pipe()
            child_ends.append(r)
            parent_ends[0] = w
            actions.append((os.POSIX_SPAWN_DUP2, r, 0))
        for fd, given in ((1, stdout), (2, stderr)):
            if given is PIPE or (given is None and capture):
                r, w = os.pipe()
                child_ends.append(w)
                parent_ends[fd] = r
                actions.append((os.POSIX_SPAWN_DUP2, w, fd))
            elif given is not None:
                actions.append((os.POSIX_SPAWN_DUP2, given if isinstance(given, int) else given.fileno(), fd))
        try:
            pid = os.posix_spawn(path, argv, os.environ if env is None else dict(env), file_actions=actions,
                                 setsigdef=_DEFAULT_SIGNALS)
        except FileNotFoundError:
            raise TcrError(f"{argv[0]}: command not found", hint=_package_hint(argv[0]))
    except BaseException:
        for fd in (*child_ends, *parent_ends.values()):
            os.close(fd)
        raise
    for fd in child_ends:
        os.close(fd)
    data = input.encode() if isinstance(input, str) else input
    deadline = None if timeout is None else time.monotonic() + timeout
    outs, timed_out = _communicate(parent_ends, data, deadline)
    if not timed_out and deadline is not None:
        timed_out = not _exited_by(pid, deadline)
    if timed_out:
        try:
            os.kill(pid, 9)  # our own child, by its pid
        except ProcessLookupError:
            pass
    _pid, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    err = outs.get(2, b"").decode("utf-8", "replace")
    if text:
        err = _newlines(err)
    if timed_out:
        raise CommandError(argv, -9, f"timed out after {timeout}s\n{err}")
    out_b = outs.get(1)
    out: Any = (_newlines(out_b.decode("utf-8", "replace")) if text else out_b) if out_b is not None \
        else ("" if text else b"")
    if check and code != 0:
        raise CommandError(argv, code, err)
    return Result(argv, code, out, err)


def spawn(argv: Sequence[str], *, stdin: Optional[int] = None, stdout: Optional[int] = None,
          stderr: Optional[int] = None) -> int:
    """Start argv and return its pid without waiting: for a process the daemon's loop watches (a
    foreground `crun run` that lives as long as its container). The caller must watch the pid
    before returning to the loop (tcr.daemon.loop reaps it). Its own session, so a ^C at tcrd's
    terminal does not reach it; fds are given as fds (tcrd's own are all close-on-exec)."""
    argv = [os.fspath(a) for a in argv]
    if log.isEnabledFor(DEBUG):
        log.debug("spawn: %s", " ".join(argv))
    path = which(argv[0]) if os.sep not in argv[0] else argv[0]
    if path is None:
        raise TcrError(f"{argv[0]}: command not found", hint=_package_hint(argv[0]))
    actions: List[Any] = []
    for fd, given in ((0, stdin), (1, stdout), (2, stderr)):
        if given is None:
            actions.append((os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0))
        else:
            actions.append((os.POSIX_SPAWN_DUP2, given, fd))
    try:
        return os.posix_spawn(path, argv, os.environ, file_actions=actions, setsid=True,
                              setsigdef=_DEFAULT_SIGNALS)
    except FileNotFoundError:
        raise TcrError(f"{argv[0]}: command not found", hint=_package_hint(argv[0]))
    except OSError as exc:
        raise CommandError(argv, -1, f"cannot start: {exc.strerror or exc}")


def cloexec_inherited() -> int:
    """Mark every fd above 2 close-on-exec; returns how many were not.

    tcrd calls it once at start: fds its parent left inheritable would otherwise pass into every
    tool run() spawns (posix_spawn does not close fds as subprocess's close_fds did). The fds
    Python itself opens are close-on-exec already (PEP 446)."""
    import fcntl

    count = 0
    try:
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        return 0
    for fd in fds:
        if fd <= 2:
            continue
        try:
            flags = fcntl.fcntl(fd, fcntl.F_GETFD)
            if not flags & fcntl.FD_CLOEXEC:
                fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)
                count += 1
        except OSError:  # the listing's own fd, closed by now
            continue
    return count


def _newlines(s: str) -> str:
    """What subprocess's text mode did (universal newlines)."""
    return s.replace("\r\n", "\n").replace("\r", "\n") if "\r" in s else s


def _exited_by(pid: int, deadline: float) -> bool:
    """Wait (without reaping) until the child has exited or the deadline passed."""
    try:
        pfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # kernel < 5.3: waitpid() blocks without a time limit
        return True
    try:
        poller = select.poll()
        poller.register(pfd, select.POLLIN)
        return bool(poller.poll(max(0, int((deadline - time.monotonic()) * 1000))))
    finally:
        os.close(pfd)


def _communicate(ends: Dict[int, int], data: Optional[bytes], deadline: Optional[float]) -> Any:
    """Feed stdin, drain stdout/stderr until both close or the deadline. Returns ({fd: bytes}, timed_out)."""
    data = data or b""
    bufs: Dict[int, List[bytes]] = {fd: [] for fd in ends if fd != 0}
    by_end = {end: fd for fd, end in ends.items()}
    poller = select.poll()
    pos = 0
    for fd, end in ends.items():
        if fd == 0:
            if data:
                os.set_blocking(end, False)
                poller.register(end, select.POLLOUT)
            else:
                os.close(end)
                del by_end[end]
        else:
            poller.register(end, select.POLLIN)
    timed_out = False
    try:
        while by_end:
            wait_ms = None if deadline is None else int((deadline - time.monotonic()) * 1000)
            if wait_ms is not None and wait_ms <= 0:
                timed_out = True
                break
            events = poller.poll(wait_ms)
            for end, _ev in events:
                who = by_end.get(end)
                if who is None:
                    continue
                if who == 0:
                    try:
                        pos += os.write(end, memoryview(data)[pos:pos + 65536])
                    except BlockingIOError:
                        continue
                    except OSError:  # EPIPE: the tool stopped reading; its exit code tells why
                        pos = len(data)
                    if pos >= len(data):
                        poller.unregister(end)
                        os.close(end)
                        del by_end[end]
                    continue
                chunk = os.read(end, 65536)
                if chunk:
                    bufs[who].append(chunk)
                else:
                    poller.unregister(end)
                    os.close(end)
                    del by_end[end]
    finally:
        for end in by_end:
            os.close(end)
    return {fd: b"".join(parts) for fd, parts in bufs.items()}, timed_out


def _run_subprocess(argv: List[str], input: Any, check: bool, timeout: Optional[float],
                    env: Optional[Mapping[str, str]], cwd: Optional[str], capture: bool, stdout: Any,
                    stderr: Any, text: bool) -> Result:
    import subprocess

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
        import subprocess
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
