"""The attach data channel on one RPC connection (wire: docs/formats.md "Attach channel").

Transport only: the command layer (tcr.containers.attach, tcr.containers.logstream) writes output
through it and gets the client's stdin and controls from it; it knows nothing about containers.

Frames are whole SEQPACKET messages. tcrd -> client: b"\\x01" + stdout bytes, b"\\x02" + stderr
bytes. client -> tcrd: b"\\x00" + stdin bytes (a lone b"\\x00" is end of input) and JSON
{"id":N,"control":{"signal":"SIGINT"}} or {"id":N,"control":{"resize":[rows,cols]}}.

Flow control, so tcrd's memory stays bounded whatever the sizes: sends never block; what the
socket does not take waits in the connection's outbox, and once that holds more than HIGH_WATER
bytes `pressured` is true and the producer stops (it pauses the container's pipes or stops reading
the log file) until on_drain() is called below LOW_WATER.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional, Tuple, Union


FRAME = 64 * 1024  # payload bytes per frame
HIGH_WATER = 1 << 20
LOW_WATER = 256 * 1024
STDIN, STDOUT, STDERR = 0, 1, 2
_STREAM = {"stdout": b"\x01", "stderr": b"\x02"}


class Channel:
    def __init__(self, conn: Any, rid: Union[int, float], winsize: Optional[Tuple[int, int]] = None):
        self.conn = conn
        self.rid = rid
        self.winsize = winsize
        self.on_input: Optional[Callable[[bytes], None]] = None  # b"" = end of input
        self.on_control: Optional[Callable[[Dict[str, Any]], None]] = None
        self.on_drain: Optional[Callable[[], None]] = None
        self.on_close: Optional[Callable[[], None]] = None
        self._was_pressured = False

    @property
    def closed(self) -> bool:
        return bool(self.conn.closed)

    def open(self, stdin: bool = False, tty: bool = False, detach_keys: bytes = b"",
             sig_proxy: bool = False, extra: Optional[Dict[str, Any]] = None) -> None:
        """Start the data channel: tell the client what to expect, route its input here.
        extra: more keys for the announcement (`cp`: what the client does with the data)."""
        from tcr.rpc import protocol

        self.conn.channel = self
        msg: Dict[str, Any] = {"stdin": stdin, "tty": tty}
        if detach_keys:
            msg["detachKeys"] = list(detach_keys)
        if sig_proxy:
            msg["sigProxy"] = True
        if extra:
            msg.update(extra)
        from tcr.common import jsonc

        data = jsonc.dumps({"id": self.rid, "attach": msg}).encode()
        assert len(data) < protocol.MAX_MESSAGE
        self.conn.send_raw(data)

    def write(self, stream: str, data: bytes) -> None:
        tag = _STREAM[stream]
        for i in range(0, len(data), FRAME):
            self.conn.send_raw(tag + data[i:i + FRAME])

    @property
    def pressured(self) -> bool:
        p = self.conn.outbytes > HIGH_WATER
        if p:
            self._was_pressured = True
        return p

    def on_sent(self) -> None:
        if self._was_pressured and self.conn.outbytes <= LOW_WATER:
            self._was_pressured = False
            if self.on_drain is not None:
                self.on_drain()

    def pause_input(self) -> None:
        self.conn.pause_reading()

    def resume_input(self) -> None:
        self.conn.resume_reading()

    def on_message(self, data: bytes) -> None:
        """A message from the client while the channel is open."""
        if data[:1] == b"\x00":
            if self.on_input is not None:
                self.on_input(data[1:])
            return
        if data[:1] != b"{":
            return  # unknown frame kind: ignored (newer client)
        from tcr.common import jsonc

        try:
            obj = jsonc.loads(data)
        except ValueError:
            return
        ctl = obj.get("control") if isinstance(obj, dict) else None
        if isinstance(ctl, dict) and self.on_control is not None:
            self.on_control(ctl)

    def detach(self) -> None:
        if self.conn.channel is self:
            self.conn.channel = None
            self.conn.resume_reading()
