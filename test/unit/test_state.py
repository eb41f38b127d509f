"""StateStore: versioned atomic records; damaged files are reported and moved aside."""

import json
import os

import pytest

from tcr.common.errors import InvalidArgument
from tcr.daemon.state import StateStore


def test_round_trip_and_delete(tmp_path):
    st = StateStore(str(tmp_path))
    st.save("images", "abcd1234abcd1234", {"x": 1, "s": "é"})
    st.save("images", "other", {"y": [1, 2]})
    recs, errs = st.load_all("images")
    assert recs == {"abcd1234abcd1234": {"x": 1, "s": "é"}, "other": {"y": [1, 2]}}
    assert errs == []
    with open(tmp_path / "images" / "other.json") as f:
        assert json.load(f) == {"version": 1, "kind": "images", "data": {"y": [1, 2]}}
    st.delete("images", "other")
    st.delete("images", "other")  # idempotent
    assert list(st.load_all("images")[0]) == ["abcd1234abcd1234"]


def test_missing_kind_is_empty(tmp_path):
    assert StateStore(str(tmp_path)).load_all("nothing") == ({}, [])


@pytest.mark.parametrize("content", [
    b"{not json", b"[]", b'{"version": 1, "kind": "images"}',
    b'{"version": 1, "kind": "networks", "data": {}}',
    b'{"version": "1", "kind": "images", "data": {}}', b"\xff\xfe", b"",
])
def test_damaged_file_is_reported_and_moved_aside(tmp_path, content):
    st = StateStore(str(tmp_path))
    st.save("images", "good", {"ok": True})
    bad = tmp_path / "images" / "bad.json"
    bad.write_bytes(content)
    recs, errs = st.load_all("images")
    assert recs == {"good": {"ok": True}}
    assert len(errs) == 1 and "\n" not in errs[0]
    assert str(bad) in errs[0] and "damaged" in errs[0]
    assert not bad.exists() and (tmp_path / "images" / "bad.json.corrupt").read_bytes() == content
    assert st.load_all("images") == ({"good": {"ok": True}}, [])  # reported once


def test_newer_version_is_left_alone(tmp_path):
    st = StateStore(str(tmp_path))
    p = tmp_path / "images" / "future.json"
    os.makedirs(p.parent)
    p.write_text('{"version": 2, "kind": "images", "data": {}}')
    recs, errs = st.load_all("images")
    assert recs == {} and "newer tcr" in errs[0]
    assert p.exists()


def test_interrupted_write_leftover_is_removed(tmp_path):
    st = StateStore(str(tmp_path))
    st.save("images", "k", {"v": 1})
    tmp = tmp_path / "images" / ".k.json.tmp123"
    tmp.write_text("{half")
    assert st.load_all("images") == ({"k": {"v": 1}}, [])
    assert not tmp.exists()


@pytest.mark.parametrize("key", ["../x", "a/b", "", ".hidden", "x" * 200])
def test_bad_keys_are_refused(tmp_path, key):
    with pytest.raises(InvalidArgument):
        StateStore(str(tmp_path)).save("images", key, {})


def test_move_aside(tmp_path):
    st = StateStore(str(tmp_path))
    st.save("images", "k", {"v": 1})
    st.move_aside("images", "k")
    assert st.load_all("images") == ({}, [])
    assert (tmp_path / "images" / "k.json.corrupt").exists()


def _thing(d):
    if not isinstance(d.get("id"), str):
        raise ValueError("no id")
    return ("thing", d["id"])


@pytest.mark.parametrize("aside", [False, True])
def test_load_records_makes_objects_and_reports_what_it_cannot(tmp_path, aside):
    st = StateStore(str(tmp_path))
    st.save("things", "a", {"id": "a"})
    st.save("things", "b", {"id": 5})  # from_dict refuses it
    st.save("things", "c", {"id": "x"})  # not its file name
    (tmp_path / "things" / "d.json").write_bytes(b"{cut")  # damaged: always moved aside
    objs, problems = st.load_records("things", _thing, "thing", key_of=lambda t: t[1], aside=aside)
    assert objs == {"a": ("thing", "a")}
    assert len(problems) == 3, problems
    assert any(p.startswith("thing record b: no id; ") for p in problems), problems
    assert any(p.startswith("thing record c: record id x does not match its file name") for p in problems)
    assert os.path.exists(tmp_path / "things" / "d.json.corrupt")
    for key in "bc":
        assert os.path.exists(tmp_path / "things" / f"{key}.json") is not aside
        assert os.path.exists(tmp_path / "things" / f"{key}.json.corrupt") is aside
