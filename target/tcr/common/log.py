"""The small logger shared by tcrd and tcr (instead of the standard logging package).

`logging` costs tcrd ~1.4 MB resident (threading, traceback, weakref, string, ...) for what is a
level check and one write (docs/profile.md). Same call surface as logging's Logger for what tcr
uses: get_logger(name).debug/info/warning/error/exception(msg, *args) with %-style args.
Lines look like logging's did: `2026-01-02 03:04:05,678 tcrd: INFO: message` (tcrd on stderr),
`tcr: DEBUG: message` (clients), `tcrd[PID]: INFO: message` in syslog (facility daemon).
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Optional, TextIO

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR"}
# syslog priorities (LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR), without importing syslog up front
_SYSLOG_PRIO = {DEBUG: 7, INFO: 6, WARNING: 4, ERROR: 3}


class _Config:
    __slots__ = ("level", "prog", "stream", "stamp", "syslog")

    def __init__(self) -> None:
        self.level = WARNING  # before setup(): warnings and errors to stderr, like logging's last resort
        self.prog = ""
        self.stream: Optional[TextIO] = None  # None: sys.stderr at the time of the write
        self.stamp = False
        self.syslog: Any = None  # the syslog module once setup(syslog=True) opened it


_cfg = _Config()


def setup(debug: bool = False, prog: str = "tcr", stream: Optional[TextIO] = None,
          syslog: bool = False) -> None:
    """tcrd logs INFO and up with a time stamp; clients WARNING and up; debug=True: everything.

    syslog=True sends lines to /dev/log (facility daemon); where there is no /dev/log it says so
    on stderr and logs to stderr instead."""
    _cfg.level = DEBUG if debug else INFO if prog == "tcrd" else WARNING
    _cfg.prog = prog
    _cfg.stream = stream
    _cfg.stamp = prog == "tcrd"
    _cfg.syslog = None
    if syslog:
        if not os.path.exists("/dev/log"):
            print(f"{prog}: syslog unavailable (no /dev/log); logging to stderr", file=sys.stderr)
            return
        import syslog as _syslog

        _syslog.openlog(prog, _syslog.LOG_PID, _syslog.LOG_DAEMON)
        _cfg.syslog = _syslog


def _traceback_text(exc: BaseException) -> str:
    """File/line/function of each frame (no source lines: linecache and traceback stay unloaded)."""
    lines = ["Traceback (most recent call last):"]
    tb = exc.__traceback__
    while tb is not None:
        co = tb.tb_frame.f_code
        lines.append(f'  File "{co.co_filename}", line {tb.tb_lineno}, in {co.co_name}')
        tb = tb.tb_next
    lines.append(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")
    return "\n".join(lines)


def _format(msg: str, args: tuple) -> str:
    if not args:
        return msg
    try:
        return msg % args
    except (TypeError, ValueError):  # a bad format string must not hide the message
        return f"{msg} {args!r}"


def _emit(level: int, msg: str) -> None:
    if _cfg.syslog is not None:
        _cfg.syslog.syslog(_SYSLOG_PRIO[level], f"{_NAMES[level]}: {msg}")
        return
    head = f"{_cfg.prog}: " if _cfg.prog else ""
    if _cfg.stamp:
        now = time.time()
        head = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f",{int(now % 1 * 1000):03d} " + head
    out = _cfg.stream or sys.stderr
    try:
        out.write(f"{head}{_NAMES[level]}: {msg}\n" if head else f"{msg}\n")
        out.flush()
    except (OSError, ValueError):  # stderr closed or full: logging must never take the caller down
        pass


class Logger:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging's name, so call sites read the same
        return level >= _cfg.level

    def _log(self, level: int, msg: str, args: tuple) -> None:
        if level >= _cfg.level:
            _emit(level, _format(msg, args))

    def debug(self, msg: str, *args: Any) -> None:
        self._log(DEBUG, msg, args)

    def info(self, msg: str, *args: Any) -> None:
        self._log(INFO, msg, args)

    def warning(self, msg: str, *args: Any) -> None:
        self._log(WARNING, msg, args)

    def error(self, msg: str, *args: Any) -> None:
        self._log(ERROR, msg, args)

    def exception(self, msg: str, *args: Any) -> None:
        """error() plus the traceback of the exception being handled."""
        if _cfg.level <= ERROR:
            msg = _format(msg, args)
            exc = sys.exc_info()[1]
            _emit(ERROR, f"{msg}\n{_traceback_text(exc)}" if exc is not None else msg)


def get_logger(name: str) -> Logger:
    return Logger(name)
