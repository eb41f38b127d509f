"""flock on the state root: exclusive, and a second taker learns the holder's pid."""

import os
import subprocess
import sys

import pytest

from tcr.kernel.flock import FileLock, LockBusy, parse_proc_locks

TARGET = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "target")


def test_second_locker_gets_holder_pid(tmp_path):
    path = str(tmp_path / ".lock")
    with FileLock(path, what=f"state root {tmp_path}"):
        code = ("import sys; from tcr.kernel.flock import FileLock, LockBusy\n"
                "try:\n FileLock(sys.argv[1], what='state root R').acquire()\n"
                "except LockBusy as e:\n print(e, e.holder); sys.exit(1)\n")
        r = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=TARGET))
        assert r.returncode == 1
        assert r.stdout.strip() == f"state root R is in use by tcrd (pid {os.getpid()}) {os.getpid()}"
    # released: can be taken again, by another FileLock object
    lk = FileLock(path).acquire()
    lk.release()


def test_same_process_second_open_is_refused(tmp_path):
    path = str(tmp_path / ".lock")
    a = FileLock(path).acquire()
    try:
        with pytest.raises(LockBusy) as ei:
            FileLock(path, what="X").acquire()
        assert ei.value.holder == os.getpid()
        assert str(ei.value) == f"X is in use by tcrd (pid {os.getpid()})"
    finally:
        a.release()


def test_parse_proc_locks():
    text = ("1: FLOCK  ADVISORY  WRITE 4242 fe:00:1234 0 EOF\n"
            "1: -> FLOCK  ADVISORY  WRITE 4343 fe:00:1234 0 EOF\n"
            "2: POSIX  ADVISORY  WRITE 99 fe:00:1234 0 EOF\n"
            "3: FLOCK  ADVISORY  WRITE 7 08:01:55 0 EOF\n")
    assert parse_proc_locks(text, 0xFE, 0, 1234) == 4242
    assert parse_proc_locks(text, 8, 1, 55) == 7
    assert parse_proc_locks(text, 8, 1, 56) is None
