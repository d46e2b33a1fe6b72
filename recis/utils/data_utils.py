"""RecIS's ``recis.utils.data_utils``: moving nested batches to a device, and comparison codes.

>>> class Box:
...     def to(self, device):
...         return f"box on {device}"
>>> copy_data_to_device({"a": [Box(), 3]}, "cuda")
{'a': ['box on cuda', 3]}
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from enum import IntEnum, auto


class CompareOp(IntEnum):
    """Comparison codes (less, less-or-equal, greater, greater-or-equal, equal)."""

    LT = auto()
    LE = auto()
    GT = auto()
    GE = auto()
    EQ = auto()


def copy_data_to_device(data, device, *args, **kwargs):
    """``data`` with everything that has a ``.to`` method moved to ``device``.

    Lists, tuples, named tuples, dicts (``defaultdict`` included) and dataclasses keep their
    type and are copied recursively; other values are returned as they are. ``args`` and
    ``kwargs`` go to every ``.to`` call.
    """
    copy = lambda item: copy_data_to_device(item, device, *args, **kwargs)  # noqa: E731
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(copy(item) for item in data))
    if isinstance(data, list | tuple):
        return type(data)(copy(item) for item in data)
    if isinstance(data, collections.defaultdict):
        return type(data)(data.default_factory, {k: copy(v) for k, v in data.items()})
    if isinstance(data, Mapping):
        return type(data)({k: copy(v) for k, v in data.items()})
    if hasattr(data, "to"):
        return data.to(device, *args, **kwargs)
    if is_dataclass(data) and not isinstance(data, type):
        return _copy_dataclass(data, copy)
    return data


def _copy_dataclass(data, copy):
    result = type(data)(**{f.name: copy(getattr(data, f.name)) for f in fields(data) if f.init})
    for f in fields(data):
        if not f.init:
            setattr(result, f.name, copy(getattr(data, f.name)))
    return result
