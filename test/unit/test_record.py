"""tcr.common.record: the dataclass replacement behaves like dataclasses for what records use."""

import copy
import pickle

import pytest

from tcr.common.record import FrozenInstanceError, dataclass, field, fields, replace


@dataclass(frozen=True)
class Point:
    x: int
    y: int = 0
    tags: tuple = field(default_factory=tuple)

    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)


@dataclass
class Box:
    items: list = field(default_factory=list)
    checked: int = 0

    def __post_init__(self) -> None:
        if self.checked < 0:
            raise ValueError("negative")


@dataclass(frozen=True)
class Point3(Point):
    z: int = 0


def test_init_defaults_and_factories():
    p = Point(1)
    assert (p.x, p.y, p.tags) == (1, 0, ())
    assert Point(1, 2, ("a",)) == Point(x=1, y=2, tags=("a",))
    a, b = Box(), Box()
    a.items.append(1)
    assert b.items == []


def test_argument_errors():
    with pytest.raises(TypeError, match="missing argument 'x'"):
        Point()
    with pytest.raises(TypeError, match="unexpected"):
        Point(1, bogus=2)
    with pytest.raises(TypeError, match="multiple values"):
        Point(1, x=2)
    with pytest.raises(TypeError, match="takes 3 arguments"):
        Point(1, 2, (), 4)


def test_frozen_eq_hash_repr_slots():
    p = Point(1, 2)
    with pytest.raises(FrozenInstanceError):
        p.x = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.y  # type: ignore[misc]
    assert p == Point(1, 2) and p != Point(2, 1) and p != (1, 2, ())
    assert hash(p) == hash(Point(1, 2))
    assert repr(p) == "Point(x=1, y=2, tags=())"
    assert not hasattr(p, "__dict__")
    assert p.norm1() == 3
    b = Box()
    b.checked = 3  # not frozen: assignable, and unhashable like a dataclass with eq
    with pytest.raises(TypeError):
        hash(b)


def test_post_init_runs_on_init_and_replace():
    with pytest.raises(ValueError):
        Box(checked=-1)
    b = Box(items=[1])
    with pytest.raises(ValueError):
        replace(b, checked=-1)
    assert replace(b, checked=2) == Box(items=[1], checked=2)
    with pytest.raises(TypeError):
        replace(b, nope=1)


def test_inheritance_copy_pickle_and_fields():
    p = Point3(1, 2, (), 3)
    assert fields(p) == ("x", "y", "tags", "z")
    assert replace(p, z=4).z == 4
    assert copy.copy(p) == p and copy.deepcopy(p) == p
    assert pickle.loads(pickle.dumps(p)) == p


def test_field_without_default_after_default_is_refused():
    with pytest.raises(TypeError, match="without a default"):
        @dataclass
        class Bad:
            a: int = 0
            b: int  # type: ignore[misc]
