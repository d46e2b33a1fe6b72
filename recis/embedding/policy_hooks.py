"""RecIS's admission and filter (eviction) hooks: named engine policies for embedding options.

Framework-free: the torch backend re-exports them as ``recis.nn.hashtable_hook`` and the JAX
backend takes them as they are.

``AdmitHook(name, params)`` and ``FilterHook(name, params)`` name an engine policy:

=========================================== ==================================================
``AdmitHook("ReadOnly")``                   never insert; missing ids read zeros, no update
``AdmitHook("Frequency", {"threshold": n})`` insert an id once seen ``n`` times
``FilterHook("GlobalStepFilter",            evict ids not looked up for ``filter_step`` steps
{"filter_step": n})``                       (run by :class:`recis.hooks.HashTableFilterHook`)
``FilterHook("LRU", {"max_size": n})``      keep ``n`` ids, evicting the least recently used
``FilterHook("LFU", {"max_size": n})``      keep ``n`` ids, evicting the least frequently used
=========================================== ==================================================

More can be added with :func:`register_admission` and :func:`register_filter`.

>>> FilterHook("GlobalStepFilter", {"filter_step": 3}).build()
GlobalStepEviction(filter_step=3)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from recis.core.policies import (
    Admission,
    CapacityEviction,
    Eviction,
    FrequencyAdmission,
    GlobalStepEviction,
    ReadOnly,
)

_ADMISSIONS: dict[str, Callable[..., Admission]] = {
    "ReadOnly": ReadOnly,
    "Frequency": FrequencyAdmission,
}
_FILTERS: dict[str, Callable[..., Eviction]] = {
    "GlobalStepFilter": GlobalStepEviction,
    "LRU": lambda max_size: CapacityEviction(max_size=max_size, policy="lru"),
    "LFU": lambda max_size: CapacityEviction(max_size=max_size, policy="lfu"),
}


def register_admission(name: str, factory: Callable[..., Admission]) -> None:
    """Make ``AdmitHook(name, params)`` build ``factory(**params)``."""
    _ADMISSIONS[name] = factory


def register_filter(name: str, factory: Callable[..., Eviction]) -> None:
    """Make ``FilterHook(name, params)`` build ``factory(**params)``."""
    _FILTERS[name] = factory


@dataclass(frozen=True)
class _Hook:
    name: str
    params: dict = field(default_factory=dict)

    def info(self) -> str:
        """Stable JSON text of the hook, part of a table's grouping key."""
        return json.dumps({"name": self.name, "params": self.params}, sort_keys=True)

    def _build(self, registry: dict, kind: str):
        if self.name not in registry:
            raise ValueError(f"unknown {kind} {self.name!r}; known: {sorted(registry)}")
        try:
            return registry[self.name](**self.params)
        except TypeError as error:
            raise ValueError(f"{kind} {self.name!r}: bad params {self.params}: {error}") from None


class AdmitHook(_Hook):
    """Which new ids get rows (see the module docstring)."""

    def build(self) -> Admission:
        return self._build(_ADMISSIONS, "admit hook")


class FilterHook(_Hook):
    """Which ids are evicted (see the module docstring)."""

    def build(self) -> Eviction:
        return self._build(_FILTERS, "filter hook")


def admission_names() -> list[str]:
    """The names ``AdmitHook`` knows."""
    return sorted(_ADMISSIONS)


def filter_names() -> list[str]:
    """The names ``FilterHook`` knows."""
    return sorted(_FILTERS)


def admission_registry() -> Mapping[str, Callable[..., Admission]]:
    """A read-only view of ``{name: factory}`` of the admission hooks."""
    return MappingProxyType(_ADMISSIONS)


def filter_registry() -> Mapping[str, Callable[..., Eviction]]:
    """A read-only view of ``{name: factory}`` of the filter hooks."""
    return MappingProxyType(_FILTERS)
