"""tcr.commands.argv against argparse: whatever argparse accepts parses to the same values, and
whatever tcr's parser refuses argparse refuses too (tcr is allowed to be more permissive: it
accepts positionals after options between them, `rm a -f b`, which argparse's chunking refuses)."""

import argparse

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tcr.commands import argv
from tcr.commands.base import HelpRequested, Parser
from tcr.common.errors import UsageError


def _spec_ps(add):
    add("-a", "--all", action="store_true")
    add("-q", "--quiet", action="store_true")
    add("--no-trunc", action="store_true")
    add("--format", choices=["table", "json"], default="table")
    add("--json", dest="format", action="store_const", const="json")


def _spec_stop(add):
    add("-t", "--time", "--timeout", dest="time", type=int, default=None, metavar="SECONDS")
    add("containers", nargs="+", metavar="CONTAINER")


def _spec_exec(add):
    add("-d", "--detach", action="store_true")
    add("-i", "--interactive", action="store_true")
    add("-e", "--env", action="append", default=[], metavar="K=V")
    add("-u", "--user", metavar="UID[:GID]")
    add("container", metavar="CONTAINER")
    add("command", nargs="+", metavar="COMMAND")


def _spec_run(add):
    add("-d", "--detach", action="store_true", default=None)
    add("--rm", action="store_true", default=None)
    add("--name")
    add("-p", "--publish", action="append", default=[])
    add("--network", "--net", dest="network")
    add("--pids-limit", metavar="N")
    add("-n", "--tail", default="all")
    add("image", nargs="?")


SPECS = {"ps": _spec_ps, "stop": _spec_stop, "exec": _spec_exec, "run": _spec_run}
WORDS = ["-a", "-q", "-aq", "--all", "--no-trunc", "--format", "--format=json", "json", "xml", "--json", "-t",
         "-t3", "--time", "--time=2", "--timeout", "3", "x", "-1", "--", "-", "c1", "c2", "-d", "-i", "-di",
         "-e", "-eK=V", "-e=A", "K=V", "-u", "0:0", "--name", "--name=n", "-p", "80:80", "-p8080:80",
         "--network", "--net=none", "--pids-limit", "--rm", "-n", "5", "--unknown", "-z", "-dz", "-tx"]


def reference(spec):
    p = argparse.ArgumentParser(prog="t", allow_abbrev=False, add_help=False, exit_on_error=False)
    spec(p.add_argument)
    return p


def ours(spec):
    p = argv.ArgParser(prog="t", add_help=False)
    spec(p.add_argument)
    return p


def ref_parse(spec, args):
    p = reference(spec)
    p.error = lambda msg: (_ for _ in ()).throw(ValueError(msg))  # type: ignore[method-assign]
    try:
        return vars(p.parse_args(args))
    except (argparse.ArgumentError, ValueError):
        return None


def our_parse(spec, args):
    p = ours(spec)
    try:
        return vars(p._parse(list(args)))
    except argv.ArgumentError:
        return None


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(sorted(SPECS)), st.lists(st.sampled_from(WORDS), max_size=7))
def test_same_result_as_argparse(name, args):
    spec = SPECS[name]
    # argparse 3.11 strips a second `--` from the values after the first one (bpo-14364 follow-ups)
    assume(args.count("--") < 2)
    want, got = ref_parse(spec, args), our_parse(spec, args)
    if want is not None:
        assert got == want, (name, args)
    if got is None:
        assert want is None, (name, args)


@pytest.mark.parametrize("name,args,message", [
    ("stop", ["-t", "x", "c"], "argument -t/--time/--timeout: invalid int value: 'x'"),
    ("stop", [], "the following arguments are required: CONTAINER"),
    ("ps", ["--format", "xml"], "argument --format: invalid choice: 'xml' (choose from 'table', 'json')"),
    ("ps", ["--bogus", "x"], "unrecognized arguments: --bogus x"),
    ("exec", ["-u"], "argument -u/--user: expected one argument"),
])
def test_error_messages_read_like_argparse(name, args, message):
    with pytest.raises(argv.ArgumentError) as ei:
        ours(SPECS[name])._parse(args)
    assert str(ei.value) == message


def test_more_permissive_than_argparse_for_options_between_positionals():
    assert our_parse(_spec_stop, ["a", "-t", "1", "b"]) == {"time": 1, "containers": ["a", "b"]}


def test_command_parser_raises_usage_and_help():
    p = Parser("stop", description="Stop one or more running containers.")
    _spec_stop(p.add_argument)
    with pytest.raises(UsageError, match="tcr stop: the following arguments are required"):
        p.parse([])
    with pytest.raises(HelpRequested) as ei:
        p.parse(["--help"])
    text = ei.value.text
    assert text.startswith("usage: tcr stop [-h] [-t SECONDS] CONTAINER [CONTAINER ...]\n")
    assert "Stop one or more running containers." in text
    assert "  -t SECONDS, --time SECONDS, --timeout SECONDS" in text


def test_defaults_are_not_shared_between_parses():
    p = ours(_spec_exec)
    a = p._parse(["-e", "A=1", "c", "sh"])
    b = p._parse(["c", "sh"])
    assert a.env == ["A=1"] and b.env == []


def test_unsupported_action_is_refused():
    with pytest.raises(ValueError):
        argv.ArgParser("t").add_argument("--x", action="count")
