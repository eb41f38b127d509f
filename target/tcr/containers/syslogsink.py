"""--log-driver syslog's sink, loaded with the first container that uses it (an idle tcrd does not
hold it, docs/profile.md); the log pump (tcr.containers.logs) feeds it as any other sink."""

from __future__ import annotations

import os

from tcr.containers.logs import parse_record

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Optional


class SyslogSink:
    """--log-driver syslog: one datagram per record to the board's syslog (/dev/log: BusyBox
    syslogd or journald), tag `tcr/NAME`, facility daemon, stdout as info and stderr as err.
    Never blocks: a full or missing syslog loses lines, as syslog does."""

    def __init__(self, name: str, path: Optional[str] = None):
        from tcr.kernel import sockets as socket

        self.tag = f"tcr/{name}".encode()
        # TCR_SYSLOG_SOCKET: another syslog socket for tcrd (tests, a syslogd in a chroot)
        self.path = path or os.environ.get("TCR_SYSLOG_SOCKET") or "/dev/log"
        self.sock: Any = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.setblocking(False)

    def write_record(self, rec: bytes) -> None:
        ts, stream, data = parse_record(rec.rstrip(b"\n"))
        pri = 3 * 8 + (3 if stream == "stderr" else 6)
        msg = b"<%d>%s: %s" % (pri, self.tag, data.rstrip(b"\n"))
        try:
            self.sock.sendto(msg, self.path)
        except OSError:
            pass

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
