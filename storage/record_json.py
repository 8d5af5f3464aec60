"""Records as JSON and back: the shape of each line of an export file.

A record's JSON is its dataclass (storage/models.py) field by field: bytes in base64, enums as
their value, nested records as objects. Reading checks every field's type and names the one that
is wrong, so a damaged file is refused with a line and field, never half-loaded.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import types
from enum import Enum
from typing import Any, Union, get_args, get_origin, get_type_hints


def to_json(value: Any) -> Any:
    """A record (or one of its fields) as JSON values: bytes in base64, enums as their value."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    return value


_FIELDS: dict[type[Any], tuple[dict[str, Any], frozenset[str]]] = {}


def _fields(cls: type[Any]) -> tuple[dict[str, Any], frozenset[str]]:
    if cls not in _FIELDS:
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        _FIELDS[cls] = get_type_hints(cls), frozenset(required)
    return _FIELDS[cls]


def from_json(hint: Any, value: Any, where: str) -> Any:
    """Rebuild a value of type `hint` from JSON; ValueError names the field of the wrong shape."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        return from_json(hint, value, where)
    if hint is Any:
        return value
    if origin is dict:  # a JSON object kept as it is (e.g. a payload)
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be an object")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{where} must be a list")
        return tuple(from_json(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass(hint, value, where)
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            raise ValueError(f"{where} is not a known {hint.__name__}: {value!r}") from None
    if hint is bytes:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise ValueError(f"{where} must be base64") from None
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ValueError(f"{where} must be {hint.__name__}, not {type(value).__name__}")
    return value


def _dataclass(cls: type[Any], value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object")
    hints, required = _fields(cls)
    if unknown := set(value) - set(hints):
        raise ValueError(f"{where} has unknown fields {sorted(unknown)}")
    if missing := required - set(value):
        raise ValueError(f"{where} lacks {sorted(missing)}")
    values = {name: from_json(hints[name], v, f"{where}.{name}") for name, v in value.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None
