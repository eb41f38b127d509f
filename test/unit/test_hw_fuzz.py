"""Property tests for issue 14's parsers: any text gives a value or one InvalidArgument/UsageError,
never another exception; what parses round-trips through the record; the client's expansion
never touches the image or the command after it."""

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from tcr.cli import runargs
from tcr.common.errors import InvalidArgument, TcrError
from tcr.containers import runopts
from tcr.containers.runopts import parse_run_args
from tcr.containers.runrecord import RunOptions

ALPHABET = string.ascii_letters + string.digits + ":/=,.*- _\t\n\0[]@"
text = st.text(alphabet=ALPHABET, max_size=40)

PARSERS = [
    lambda s: runopts.parse_device(s),
    lambda s: runopts.parse_cgroup_rule(s),
    lambda s: runopts.parse_group(s),
    lambda s: runopts.parse_add_host(s),
    lambda s: runopts.parse_dns(s),
    lambda s: runopts.parse_ulimit(s),
    lambda s: runopts.parse_label(s),
    lambda s: runopts.parse_sysctl(s),
    lambda s: runopts.parse_volume(s, "/home/u"),
    lambda s: runopts.parse_mount(s, "/home/u"),
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(range(len(PARSERS))), text)
def test_parsers_fail_only_with_invalid_argument(i, s):
    try:
        PARSERS[i](s)
    except InvalidArgument:
        pass


FLAGS = [
    "--device",
    "--device-cgroup-rule",
    "--group-add",
    "--add-host",
    "--dns",
    "--dns-search",
    "--dns-option",
    "--ulimit",
    "--label",
    "--sysctl",
    "--shm-size",
    "-v",
    "--mount",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(FLAGS), text), max_size=4),
    st.lists(st.sampled_from(["--init", "--privileged", "-P"]), max_size=3),
)
def test_run_flags_parse_or_fail_cleanly_and_round_trip(pairs, switches):
    argv = [x for f, v in pairs for x in (f, v)] + switches + ["busybox"]
    try:
        o = parse_run_args(argv, "/home/u", lambda p: "")
    except TcrError:
        return
    assert RunOptions.from_dict(o.to_dict()) == o


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "-e",
                "-d",
                "-it",
                "--env",
                "-v",
                "-p",
                "--name",
                "-eX",
                "--env=Y",
                "-de",
                "--label-file",
                "--rm",
            ]
        )
        | text,
        max_size=8,
    ),
    st.lists(text, max_size=4),
)
def test_client_expansion_keeps_image_and_command(opts, command):
    env = {"X": "1", "Y": "2"}
    argv = opts + ["--", "img"] + command
    try:
        out = runargs.expand(argv, env, "/", lambda p: "A=1\n")
    except TcrError:
        return
    assert out[-len(command) - 1 :] == ["img"] + command if command else out[-1] == "img"
