"""``SingletonMeta``: a metaclass whose classes have one instance per process.

The first call of such a class builds the instance; later calls return it, ignoring their
arguments. Instances are kept in :attr:`SingletonMeta._instances` by class, so a test may
isolate them (patch that dict, or pop a class from it to get a fresh instance next call).

>>> class Registry(metaclass=SingletonMeta):
...     def __init__(self):
...         self.names = []
>>> Registry() is Registry()
True
>>> _ = SingletonMeta._instances.pop(Registry)
>>> Registry().names
[]
"""

from __future__ import annotations

from typing import ClassVar


class SingletonMeta(type):
    """Metaclass of one-instance classes (see the module docstring)."""

    _instances: ClassVar[dict[type, object]] = {}

    def __call__(cls, *args, **kwargs):
        if cls not in SingletonMeta._instances:
            SingletonMeta._instances[cls] = super().__call__(*args, **kwargs)
        return SingletonMeta._instances[cls]
