"""tcr.common.log: the small logger that replaced the standard logging package in tcr."""

import io
import re

import pytest

from tcr.common import log


@pytest.fixture(autouse=True)
def _reset():
    yield
    log.setup(prog="")
    log._cfg.level = log.WARNING


def test_tcrd_lines_have_time_prog_and_level():
    out = io.StringIO()
    log.setup(prog="tcrd", stream=out)
    lg = log.get_logger("tcr.x")
    lg.info("started %s with %d", "a", 3)
    lg.debug("hidden at INFO")
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert re.fullmatch(stamp + r" tcrd: INFO: started a with 3\n", out.getvalue())


def test_client_logs_warnings_only_unless_debug():
    out = io.StringIO()
    log.setup(prog="tcr", stream=out)
    lg = log.get_logger("tcr.run")
    lg.info("no")
    lg.warning("yes %s", 1)
    assert out.getvalue() == "tcr: WARNING: yes 1\n"
    assert not lg.isEnabledFor(log.DEBUG)
    log.setup(debug=True, prog="tcr", stream=out)
    assert lg.isEnabledFor(log.DEBUG)
    lg.debug("run: %s", "crun")
    assert out.getvalue().endswith("tcr: DEBUG: run: crun\n")


def test_exception_appends_the_traceback_and_keeps_percent_signs():
    out = io.StringIO()
    log.setup(prog="tcrd", stream=out)
    try:
        raise ValueError("100% broken")
    except ValueError:
        log.get_logger("t").exception("handler %s failed", "ps")
    text = out.getvalue()
    assert "ERROR: handler ps failed\nTraceback (most recent call last):\n" in text
    assert "in test_exception_appends_the_traceback_and_keeps_percent_signs" in text
    assert text.rstrip().endswith("builtins.ValueError: 100% broken")


def test_bad_format_args_do_not_raise():
    out = io.StringIO()
    log.setup(prog="tcr", stream=out)
    log.get_logger("t").warning("%d items", "x")
    assert "%d items ('x',)" in out.getvalue()


def test_closed_stream_does_not_raise():
    out = io.StringIO()
    log.setup(prog="tcr", stream=out)
    out.close()
    log.get_logger("t").error("nowhere to go")
