"""RecIS's ``HashtableHookFactory``: one registry of admission and filter hooks, per process.

Hook names are those of :mod:`recis.embedding.policy_hooks` (``ReadOnly``, ``Frequency``;
``GlobalStepFilter``, ``LRU``, ``LFU``). :meth:`~HashtableHookFactory.regist_admit` and
:meth:`~HashtableHookFactory.regist_filter` add a name: ``AdmitHook(name, params)`` and
``FilterHook(name, params)`` then build ``cls(**params)``, which must be an engine
:class:`~recis.core.policies.Admission` or :class:`~recis.core.policies.Eviction`. The factory
remembers the hooks it creates, per hook name and table; ``_registed_admit`` and
``_registed_filter`` are the names it knows with what each builds (read-only views).

>>> from recis.embedding.policy_hooks import FilterHook
>>> factory = HashtableHookFactory()
>>> factory is HashtableHookFactory()
True
>>> factory.create_filter_hook("table_a", FilterHook("LRU", {"max_size": 8})).max_size
8
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from recis.core.singleton import SingletonMeta
from recis.embedding.policy_hooks import (
    AdmitHook,
    FilterHook,
    admission_names,
    admission_registry,
    filter_names,
    filter_registry,
    register_admission,
    register_filter,
)


class HashtableHookFactory(metaclass=SingletonMeta):
    """The process's hook registry (a singleton: every call returns the same instance)."""

    def __init__(self) -> None:
        self._filters: defaultdict[str, dict] = defaultdict(dict)
        self._admits: defaultdict[str, dict] = defaultdict(dict)

    @property
    def _registed_filter(self) -> Mapping:
        """``{name: factory}`` of the filter hooks ``FilterHook`` can build."""
        return filter_registry()

    @property
    def _registed_admit(self) -> Mapping:
        """``{name: factory}`` of the admission hooks ``AdmitHook`` can build."""
        return admission_registry()

    def get_filters(self) -> dict:
        """Created filter hooks: ``{hook name: {table: hook}}``."""
        return self._filters

    def get_admits(self) -> dict:
        """Created admission hooks: ``{hook name: {table: hook}}``."""
        return self._admits

    def create_filter_hook(self, ht, hook: FilterHook):
        """The eviction policy of ``hook`` for table ``ht``; a second one for the same table and
        name is a ``ValueError``."""
        if ht in self._filters[hook.name]:
            raise ValueError(f"Duplicate '{hook.name}' hooks for hashtable: {ht}")
        self._filters[hook.name][ht] = hook.build()
        return self._filters[hook.name][ht]

    def create_admit_hook(self, ht, hook: AdmitHook):
        """The admission policy of ``hook`` for table ``ht`` (created once, then reused)."""
        if ht not in self._admits[hook.name]:
            self._admits[hook.name][ht] = hook.build()
        return self._admits[hook.name][ht]

    def regist_filter(self, name: str, filter_hook_impl) -> None:
        """Make ``FilterHook(name, params)`` build ``filter_hook_impl(**params)``."""
        if name in filter_names():
            raise ValueError(f"Filter hook {name} has been registered!")
        register_filter(name, filter_hook_impl)

    def regist_admit(self, name: str, admit_hook_impl) -> None:
        """Make ``AdmitHook(name, params)`` build ``admit_hook_impl(**params)``."""
        if name in admission_names():
            raise ValueError(f"Admit hook {name} has been registered!")
        register_admission(name, admit_hook_impl)
