"""Record classes without the dataclasses module: @dataclass(frozen=...), field(), replace().

dataclasses costs tcrd ~1.6 MB resident: it imports inspect (ast, dis, tokenize, ...) and every
class generates its methods with exec() at import (docs/profile.md). Records here are declared the
same way (annotated fields, defaults, field(default_factory=...), __post_init__) and get:
__slots__ (no per-instance dict), one shared __init__/__repr__/__eq__ (and __hash__ when frozen),
no code generation. Each record still has its explicit to_dict()/from_dict(), round-trip tested.
Only the names of the annotations are read, never their values (annotations stay strings).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs tcrd ~0.6 MB resident: annotations only (docs/profile.md)
if TYPE_CHECKING:
    from typing import Any, Dict, Tuple, TypeVar

    from typing_extensions import dataclass_transform

    T = TypeVar("T")
else:
    def dataclass_transform(**_kw):
        return lambda fn: fn


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record (dataclasses' error of the same name)."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Field:
    __slots__ = ("default", "default_factory")

    def __init__(self, default: Any, default_factory: Any) -> None:
        self.default = default
        self.default_factory = default_factory


def field(*, default: Any = MISSING, default_factory: Any = MISSING) -> Any:
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("field() takes a default or a default_factory, not both")
    return Field(default, default_factory)


def _init(self: Any, *args: Any, **kw: Any) -> None:
    spec = self._record_fields  # ((name, default, factory), ...)
    if len(args) > len(spec):
        raise TypeError(f"{type(self).__name__}() takes {len(spec)} arguments, {len(args)} given")
    setter = object.__setattr__
    for i, (name, default, factory) in enumerate(spec):
        if i < len(args):
            if name in kw:
                raise TypeError(f"{type(self).__name__}() got multiple values for {name!r}")
            value = args[i]
        elif name in kw:
            value = kw.pop(name)
        elif factory is not MISSING:
            value = factory()
        elif default is not MISSING:
            value = default
        else:
            raise TypeError(f"{type(self).__name__}() missing argument {name!r}")
        setter(self, name, value)
    if kw:
        raise TypeError(f"{type(self).__name__}() got unexpected arguments {sorted(kw)}")
    post = getattr(self, "__post_init__", None)
    if post is not None:
        post()


def _values(self: Any) -> Tuple[Any, ...]:
    return tuple(getattr(self, f[0]) for f in self._record_fields)


def _repr(self: Any) -> str:
    inner = ", ".join(f"{f[0]}={getattr(self, f[0])!r}" for f in self._record_fields)
    return f"{type(self).__qualname__}({inner})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    return hash(_values(self))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self: Any) -> Tuple[Any, ...]:
    return _values(self)


def _setstate(self: Any, state: Tuple[Any, ...]) -> None:
    for f, v in zip(self._record_fields, state):
        object.__setattr__(self, f[0], v)


def _make(cls: type, frozen: bool) -> type:
    inherited = [f for b in reversed(cls.__mro__[1:]) for f in b.__dict__.get("_record_fields", ())]
    fields = []
    ns: Dict[str, Any] = {}
    for name in cls.__dict__.get("__annotations__", {}):
        if name.startswith("__"):
            continue
        value = cls.__dict__.get(name, MISSING)
        if isinstance(value, Field):
            fields.append((name, value.default, value.default_factory))
        else:
            fields.append((name, value, MISSING))
    own = [f[0] for f in fields]
    fields = [f for f in inherited if f[0] not in own] + fields
    seen_default = False
    for name, default, factory in fields:
        if default is MISSING and factory is MISSING:
            if seen_default:
                raise TypeError(f"{cls.__name__}: field {name!r} without a default after one with a default")
        else:
            seen_default = True
    ns.update({k: v for k, v in cls.__dict__.items()
               if k not in ("__dict__", "__weakref__") and k not in own})
    ns["__slots__"] = tuple(own)
    ns["__qualname__"] = cls.__qualname__
    ns["_record_fields"] = tuple(fields)
    ns["__init__"] = _init
    ns.setdefault("__repr__", _repr)
    ns["__eq__"] = _eq
    ns["__hash__"] = _hash if frozen else None
    ns["__getstate__"] = _getstate
    ns["__setstate__"] = _setstate
    if frozen:
        ns["__setattr__"] = _frozen_setattr
        ns["__delattr__"] = _frozen_delattr
    return type(cls)(cls.__name__, cls.__bases__, ns)


@dataclass_transform(field_specifiers=(field,))
def dataclass(cls: Any = None, *, frozen: bool = False) -> Any:
    """@dataclass or @dataclass(frozen=True) on a class of annotated fields."""
    if cls is None:
        return lambda c: _make(c, frozen)
    return _make(cls, frozen)


def replace(obj: T, **changes: Any) -> T:
    """A copy of a record with some fields changed (runs __init__, so __post_init__ checks too)."""
    values = {f[0]: getattr(obj, f[0]) for f in obj._record_fields}  # type: ignore[attr-defined]
    unknown = set(changes) - set(values)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no fields {sorted(unknown)}")
    values.update(changes)
    return type(obj)(**values)


def fields(obj: Any) -> Tuple[str, ...]:
    """The field names of a record (class or instance), in declaration order."""
    return tuple(f[0] for f in obj._record_fields)


def is_record(obj: Any) -> bool:
    return hasattr(type(obj) if not isinstance(obj, type) else obj, "_record_fields")

