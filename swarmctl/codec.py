"""Models to JSON and back, for the state file and `--format json` (pure).

Missing keys take the field's default, so older state files still load.
"""

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def from_json(cls: type[T], data: dict[str, Any]) -> T:
    return cls(**{name: convert(data[name]) for name, convert in _fields(cls) if name in data})


# Converters are worked out once per type: every read of the state decodes every record,
# and asking `typing` about each value again made up most of an idle supervisor tick.


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _converter(hints[f.name])) for f in dataclasses.fields(cls))


@functools.cache
def _converter(hint: Any) -> Callable[[Any], Any]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _converter(inner)
    if origin is tuple:
        item = _converter(typing.get_args(hint)[0])
        return _none_kept(lambda value: tuple(item(v) for v in value))
    if origin is dict:
        item = _converter(typing.get_args(hint)[1])
        return _none_kept(lambda value: {k: item(v) for k, v in value.items()})
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _none_kept(functools.partial(from_json, hint))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _none_kept(hint)
    return _as_is


def _none_kept(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


def _as_is(value: Any) -> Any:
    return value
