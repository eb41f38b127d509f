"""tcr.common.signames: the name table of `signal.Signals` without the signal module's enums, and
the user's spelling of a signal (--stop-signal, kill -s, attach's forwarded signals)."""

import signal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcr.common import signames
from tcr.common.errors import InvalidArgument


def test_names_and_numbers_are_the_enums():
    for s in signal.Signals:
        assert signames.number(s.name) == s.value
        assert signames.name(s.value) == signal.Signals(s.value).name


@pytest.mark.parametrize("text, want", [("SIGTERM", "SIGTERM"), ("TERM", "SIGTERM"), ("term", "SIGTERM"),
                                        (" 15 ", "SIGTERM"), ("9", "SIGKILL"), ("sigusr1", "SIGUSR1"),
                                        ("IOT", "SIGABRT")])
def test_parse_takes_docker_spellings(text, want):
    assert signames.parse(text) == want


@given(st.text(max_size=12))
def test_parse_gives_a_name_or_one_invalid_argument(text):
    try:
        got = signames.parse(text)
    except InvalidArgument as exc:
        assert str(exc).startswith("invalid signal: ")
        return
    assert got in {s.name for s in signal.Signals}
