"""Progress on a terminal (stderr, one rewritten line per step); silent otherwise."""

import sys
import time
from typing import Optional, TextIO


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


class Progress:
    def __init__(self, enabled: Optional[bool] = None, stream: Optional[TextIO] = None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._label = ""
        self._total = 0
        self._done = 0
        self._t0 = 0.0
        self._last = 0.0

    def step(self, label: str, total: int = 0) -> None:
        self._label, self._total, self._done = label, total, 0
        self._t0 = self._last = time.monotonic()
        self._draw()

    def advance(self, n: int) -> None:
        self._done += n
        if self.enabled:
            now = time.monotonic()
            if now - self._last >= 0.1:
                self._last = now
                self._draw()

    def _draw(self) -> None:
        if not self.enabled:
            return
        if self._total:
            pct = min(100, int(100 * self._done / self._total))
            text = f"{self._label}: {_mb(self._done)} / {_mb(self._total)} ({pct}%)"
        elif self._done:
            text = f"{self._label}: {_mb(self._done)}"
        else:
            text = f"{self._label} ..."
        self.stream.write("\r\033[K" + text)
        self.stream.flush()

    def done(self, note: str = "") -> None:
        if not self.enabled:
            return
        secs = time.monotonic() - self._t0
        self._draw()
        self.stream.write(f"  done in {secs:.1f}s" + (f" ({note})" if note else "") + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """End an unfinished line (before an error message)."""
        if self.enabled and self._label:
            self.stream.write("\n")
            self.stream.flush()
            self._label = ""
