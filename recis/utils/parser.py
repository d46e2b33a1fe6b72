"""``ArgumentParser``: command-line options from dataclasses (RecIS's ``recis.utils.parser``).

Each field of a dataclass registered with :meth:`ArgumentParser.add_arguments` becomes an option
``--field_name`` of the field's type; :meth:`~ArgumentParser.parse_args` builds the dataclass
instance and stores it under ``dest``.

>>> from dataclasses import dataclass
>>> @dataclass
... class Options:
...     steps: int = 10
...     lr: float = 0.1
...     name: str | None = None
...     shuffle: bool = False
>>> parser = ArgumentParser()
>>> parser.add_arguments(Options, dest="options")
>>> parser.parse_args(["--steps", "3", "--shuffle", "true"]).options
Options(steps=3, lr=0.1, name=None, shuffle=True)

Fields typed ``list`` or ``dict`` (without element types) take JSON; ``list[int]`` takes
comma-separated values.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse.ArgumentParser`` that also accepts dataclasses of options."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._dataclasses: dict[str, tuple[type, object]] = {}

    def add_arguments(self, dataclass_type: type, dest: str, default=None) -> None:
        """Add an option per field of ``dataclass_type``; the parsed instance goes to ``dest``."""
        if not dataclasses.is_dataclass(dataclass_type):
            raise TypeError(f"{dataclass_type!r} is not a dataclass")
        base = default if default is not None else None
        hints = typing.get_type_hints(dataclass_type)
        group = self.add_argument_group(dataclass_type.__name__)
        for field in dataclasses.fields(dataclass_type):
            if not field.init:
                continue
            value = getattr(base, field.name) if base is not None else _field_default(field)
            group.add_argument(
                f"--{field.name}",
                dest=f"{dest}.{field.name}",
                type=_converter(hints[field.name], field.name),
                default=value,
                help=f"(default: {value!r})",
            )
        self._dataclasses[dest] = (dataclass_type, base)

    def parse_known_args(self, args=None, namespace=None):
        namespace, rest = super().parse_known_args(args, namespace)
        for dest, (dataclass_type, _) in self._dataclasses.items():
            prefix = f"{dest}."
            values = {
                k[len(prefix) :]: v for k, v in vars(namespace).items() if k.startswith(prefix)
            }
            for key in values:
                delattr(namespace, prefix + key)
            setattr(namespace, dest, dataclass_type(**values))
        return namespace, rest


def _field_default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _converter(hint, name: str):
    """A string → value function for a field type (``X | None`` also accepts ``none``)."""
    arguments = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in arguments:
        inner = _converter(next(a for a in arguments if a is not type(None)), name)
        return lambda text: None if text.lower() == "none" else inner(text)
    if hint in (list, dict) or typing.get_origin(hint) is dict or arguments[:1] == (dict,):
        return json.loads  # e.g. a model bank: a JSON list of dicts
    if typing.get_origin(hint) is list:
        element = _converter(arguments[0] if arguments else str, name)
        return lambda text: [element(item) for item in text.split(",") if item]
    if hint is bool:
        return _boolean
    if hint in (int, float, str):
        return hint
    raise TypeError(f"field {name!r}: unsupported option type {hint!r}")


def _boolean(text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {text!r}")
