"""image-info.json v1: strict reading, round trip, the C tool's format, hostile input."""

import copy
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcr.common import jsonc
from tcr.common.errors import InvalidArgument
from tcr.formats.image_info import ImageInfo
from tcr.formats.xxh64 import image_id, xxh64

DIGEST = "sha256:" + "ab" * 32
GOOD = {
    "version": 1,
    "image": {
        "id": image_id(DIGEST),
        "registry": "docker.io",
        "repository": "library/alpine",
        "tag": "latest",
        "digest": DIGEST,
        "arch": "amd64",
    },
    "bundlePath": "bundle",
    "created": 1739500800,
}


def test_round_trip():
    info = ImageInfo.from_dict(GOOD)
    assert info.to_dict() == GOOD
    assert ImageInfo.from_json(info.to_json().encode()) == info
    assert info.reference == "docker.io/library/alpine:latest"


def test_c_tool_format_without_id_gets_derived_id():
    d = copy.deepcopy(GOOD)
    del d["image"]["id"]
    info = ImageInfo.from_dict(d)
    assert info.id == GOOD["image"]["id"]
    assert len(info.id) == 16


def test_unknown_keys_ignored():
    d = copy.deepcopy(GOOD)
    d["future"] = {"x": 1}
    d["image"]["labels"] = {}
    assert ImageInfo.from_dict(d).id == GOOD["image"]["id"]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("version"),
        lambda d: d.__setitem__("version", 2),
        lambda d: d.__setitem__("version", "1"),
        lambda d: d.__setitem__("version", True),
        lambda d: d.pop("image"),
        lambda d: d["image"].__setitem__("digest", 5),
        lambda d: d["image"].__setitem__("digest", "nodigest"),
        lambda d: d["image"].__setitem__("arch", "x86 64"),
        lambda d: d["image"].__setitem__("id", "ABCDEF0123456789"),
        lambda d: d["image"].__setitem__("tag", "bad tag"),
        lambda d: d["image"].__setitem__("repository", ""),
        lambda d: d["image"].__setitem__("repository", "a" * 600),
        lambda d: d.__setitem__("bundlePath", "../escape"),
        lambda d: d.__setitem__("bundlePath", "/abs"),
        lambda d: d.__setitem__("bundlePath", "bundle/../.."),
        lambda d: d.__setitem__("created", -1),
        lambda d: d.__setitem__("created", 10**30),
        lambda d: d.__setitem__("created", 1.5),
    ],
)
def test_strict_validation(mutate):
    d = copy.deepcopy(GOOD)
    mutate(d)
    with pytest.raises(InvalidArgument) as ei:
        ImageInfo.from_dict(d)
    assert str(ei.value).startswith("invalid image-info.json: ")


def test_oversized_and_garbage():
    with pytest.raises(InvalidArgument):
        ImageInfo.from_json(b" " * 70000)
    with pytest.raises(InvalidArgument):
        ImageInfo.from_json(b"\xff{")
    with pytest.raises(InvalidArgument):
        ImageInfo.from_json(b"[1,2]")


@settings(max_examples=300)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                    max_leaves=20))
def test_fuzz_only_invalid_argument(value):
    try:
        ImageInfo.from_json(jsonc.dumps(value).encode())
    except InvalidArgument:
        pass


def test_xxh64_matches_reference_package():
    xxhash = pytest.importorskip("xxhash")
    for n in list(range(0, 70)) + [1000]:
        data = os.urandom(n)
        assert xxh64(data) == xxhash.xxh64_intdigest(data)
    assert image_id(DIGEST) == xxhash.xxh64_hexdigest(DIGEST.encode())


@pytest.mark.parametrize("field", ["registry", "repository", "tag", "arch", "digest"])
def test_fields_ending_in_a_newline_are_refused(field):
    """Matched whole (re.fullmatch): '$' in re.match also accepts a trailing newline."""
    d = copy.deepcopy(GOOD)
    d["image"][field] += "\n"
    if field == "digest":
        del d["image"]["id"]
    with pytest.raises(InvalidArgument):
        ImageInfo.from_dict(d)
    d = copy.deepcopy(GOOD)
    d["bundlePath"] = "bundle\n"
    with pytest.raises(InvalidArgument):
        ImageInfo.from_dict(d)
