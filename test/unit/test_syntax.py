"""tcr.common.syntax (and the checks built on it) against the regular expressions they replace.

tcrd no longer imports `re` (docs/profile.md); each function must accept exactly what its pattern
accepted, on ASCII text (where a pattern had \\d, the new checks take 0-9 only, on purpose).
"""

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tcr.check import parse_crun_version
from tcr.common import syntax
from tcr.containers import resources, runopts
from tcr.kernel import mountinfo

# the characters the patterns care about, plus a few they do not
ALPHABET = "aAbBcCkKmMgGtTiIzZvV019_.-+:=/[]$* \\\n\0é"
text = st.text(alphabet=ALPHABET, max_size=40)


def same(pattern: str, fn, flags: int = 0):
    rx = re.compile(pattern, flags)

    @settings(max_examples=400, deadline=None)
    @given(text)
    def check(s):
        assert fn(s) == bool(rx.fullmatch(s)), s

    check()


def test_names_ids_and_tags():
    same(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", syntax.name)
    same(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,3}", lambda s: syntax.name(s, 4))
    same(r"[0-9a-f]{16}", syntax.hex_id)
    same(r"[0-9a-f]{1,3}", lambda s: syntax.hex_id(s, 1, 3))
    same(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", syntax.tag)
    same(r"[0-7]{1,4}", syntax.octal_mode)
    same(r"[0-9]+", syntax.number)
    same(r"[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})", runopts.valid_hostname)
    same(r"[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,31}\$?", runopts.valid_user_part)
    same(r"[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+", runopts._sysctl_key)
    same(r"[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*", lambda s: syntax.path_of(s, syntax.ALNUM + "._-"))


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet="ab09.+_-:", max_size=12), st.text(alphabet="aZ9=_-:", min_size=30, max_size=34))
@example("sha256", "a" * 32)
@example("a..b", "a" * 32)
def test_digest(algo, encoded):
    s = algo + ":" + encoded
    rx = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")
    assert syntax.digest(s) == bool(rx.fullmatch(s)), s
    assert syntax.digest(algo) == bool(rx.fullmatch(algo))


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="ab09._-", max_size=14))
@example("a__b")
@example("a---b")
@example("a_-b")
def test_repository_components(s):
    assert syntax.repo_component(s) == bool(re.fullmatch(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*", s)), s


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="0123456789.-x ", max_size=14))
def test_leading_ints(s):
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", s)
    got = syntax.leading_ints(s, 3)
    assert (tuple(got) if len(got) >= 2 else None) == (
        tuple(int(x) for x in m.groups() if x is not None) if m else None), s
    m = re.search(r"crun version (\d+(?:\.\d+)*)", "crun version " + s)
    assert parse_crun_version("crun version " + s) == (
        tuple(int(x) for x in m.group(1).split(".")) if m else None), s


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet="0123456789. bBkKmMgGtTiIxX\t", max_size=12))
@example("1.5 GiB")
@example("64mb")
@example("1.")
def test_sizes(s):
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$", s, re.IGNORECASE)
    assert resources._split_size(s) == ((m.group(1), m.group(2).lower().strip("b")) if m else None), s


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="abc *0123456789:rwmx", max_size=16))
@example("c 189:* rwm")
def test_cgroup_rules(s):
    m = re.fullmatch(r"([abc]) (\*|\d+):(\*|\d+) ([rwm]{1,3})", s)
    assert runopts._cgroup_rule_parts(s) == (m.groups() if m else ("", "", "", "")), s


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="a \\0123478", max_size=16))
@example("a\\040b\\134c\\\\011")
def test_mountinfo_unescape(s):
    assert mountinfo.unescape(s) == re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s), s


# ---- tcr.common.jsonc on _json: the standard json's output, byte for byte ----------------------

import json  # noqa: E402

from tcr.common import jsonc  # noqa: E402

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(values)
def test_jsonc_writes_what_json_writes(v):
    assert jsonc.dumps(v) == json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    assert jsonc.dumps(v, sort_keys=True, ascii=True) == json.dumps(v, separators=(",", ":"), sort_keys=True)
    assert jsonc.dumps_pretty(v) == json.dumps(v, indent=2, sort_keys=True) + "\n"
    back = jsonc.loads(jsonc.dumps(v).encode())
    assert json.dumps(back, sort_keys=True) == json.dumps(json.loads(json.dumps(v)), sort_keys=True)


def test_jsonc_pretty_converts_keys_as_json_does():
    for v in ({1: "a", 2: "b"}, {2.5: [], 1.0: {}}, {True: 1, False: 2}, {"x": {3: [1, {"y": None}]}}):
        assert jsonc.dumps_pretty(v) == json.dumps(v, indent=2, sort_keys=True) + "\n"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=' {}[]",:0123456789.eE+-tfnrulsaNI\\\t\n', max_size=20))
def test_jsonc_decodes_as_json_does(s):
    try:
        want = json.loads(s)
    except ValueError:
        try:
            jsonc.loads(s)
        except ValueError:
            return
        raise AssertionError(f"jsonc accepted {s!r}")
    except RecursionError:
        return
    got = jsonc.loads(s)
    assert json.dumps(got) == json.dumps(want), s


def test_jsonc_errors_are_one_line_value_errors():
    for bad in ('{"a" 1}', '"unterminated', "[1,]", "1 2", "[" * 100000, "\ufeff{}", '"\x01"'):
        try:
            jsonc.loads(bad)
        except ValueError as exc:
            assert "\n" not in str(exc)
        else:
            raise AssertionError(bad)
