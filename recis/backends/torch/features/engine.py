"""``FeatureEngine``: run many features at once, fusing same-kind ops across features.

1. Features that compute the same (equal op chains, see ``Feature.get_ops_hash``) run once; the
   others become aliases of the first. Two different features may not share a name.
2. Step ``k`` holds the ``k``-th op of every feature. Within a step, the ops of a class that has a
   fused form (:class:`FusedOpFactory`) run as one fused call over
   all their features; the rest run one by one. ``fuse=False`` runs every op on its own.
3. ``forward(data, remain_no_use_data=True)`` returns ``{feature name: result}``; a dict result
   (``IDMultiHash``) is flattened to ``{f"{name}_{key}": value}``. With ``remain_no_use_data``,
   input fields that no feature selects are passed through.

Like the other torch front ends, ``forward`` runs the engine's kernels on
``recis.core.threads.framework_kernel_threads()`` threads (every core unless
``RECIS_ENGINE_THREADS`` says otherwise), whose pool sleeps while torch computes.

An op error names the feature and op (for a fused call, the ops are re-run one by one to find
the failing feature).

>>> import torch
>>> from recis.backends.torch.features.feature import Feature
>>> from recis.backends.torch.features.op import Mod, SelectField
>>> engine = FeatureEngine([
...     Feature("a").add_op(SelectField("x")).add_op(Mod(10)),
...     Feature("b").add_op(SelectField("x")).add_op(Mod(7)),
... ])
>>> engine({"x": torch.tensor([15, 16]), "label": torch.tensor([1, 0])})
{'a': tensor([5, 6]), 'b': tensor([1, 2]), 'label': tensor([1, 0])}
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from recis.backends.torch.features.errors import WRAPPED_ERRORS, call_op, with_context
from recis.backends.torch.features.feature import Feature
from recis.backends.torch.features.fused import FusedOpFactory
from recis.core.threads import beside_framework


class RunContext:
    """The input data and every feature's latest result during one forward pass."""

    def __init__(self, input_data: Mapping, remain_no_use_data: bool = True):
        self._data_buffer: dict = {}
        self._input_data = input_data
        self._remain_no_use_data = remain_no_use_data

    def get(self, key: str):
        """The latest result of feature ``key``; the input data before its first op."""
        return self._data_buffer.get(key, self._input_data)

    def set(self, key: str, value) -> None:
        self._data_buffer[key] = value

    @property
    def results(self) -> dict:
        return self._data_buffer


class FuseExecutionGroup:
    """Ops of one class in one step, run as a single fused call."""

    def __init__(self, op):
        self._feature_names: list[str] = []
        self._ops: list = []
        self._fused_op = FusedOpFactory.get_fused_op(op)(ops=[])

    def add_op(self, feature_name: str, op) -> None:
        self._feature_names.append(feature_name)
        self._ops.append(op)
        self._fused_op.add_op(op)

    def run(self, data: RunContext) -> RunContext:
        inputs = [data.get(name) for name in self._feature_names]
        try:
            outputs = self._fused_op(inputs)
        except WRAPPED_ERRORS as error:
            self._raise_named(inputs, error)
        for name, output in zip(self._feature_names, outputs, strict=True):
            data.set(name, output)
        return data

    def _raise_named(self, inputs: list, error: Exception):
        """Re-run the ops one by one so that the failing feature's error names it."""
        for name, op, x in zip(self._feature_names, self._ops, inputs, strict=True):
            call_op(name, op, x)
        if type(error) not in WRAPPED_ERRORS:
            raise error
        context = f"features {self._feature_names}, fused {type(self._fused_op).__name__}"
        raise with_context(error, context) from error


class NonFuseExecutionGroup:
    """Ops of one step that run one at a time."""

    def __init__(self):
        self._ops: list = []
        self._feature_names: list[str] = []

    def add_op(self, feature_name: str, op) -> None:
        self._ops.append(op)
        self._feature_names.append(feature_name)

    def run(self, data: RunContext) -> RunContext:
        for op, name in zip(self._ops, self._feature_names, strict=True):
            data.set(name, call_op(name, op, data.get(name)))
        return data


class ExecutionStep:
    """The ``k``-th op of every feature, grouped for fused execution."""

    _non_fuseable_tag = "_non_fuseable_tag"

    def __init__(self, fuse: bool = True):
        self._fuse = fuse
        self.execution_groups: dict = {}

    def add_op(self, feature_name: str, op) -> ExecutionStep:
        if self._fuse and FusedOpFactory.contains(op):
            key = type(op)
            if key not in self.execution_groups:
                self.execution_groups[key] = FuseExecutionGroup(op)
        else:
            key = self._non_fuseable_tag
            self.execution_groups.setdefault(key, NonFuseExecutionGroup())
        self.execution_groups[key].add_op(feature_name, op)
        return self

    def run(self, data: RunContext) -> RunContext:
        for group in self.execution_groups.values():
            data = group.run(data)
        return data


class FeatureEngine(nn.Module):
    """Runs a list of :class:`Feature`\\ s on a dict of inputs (see the module docstring)."""

    def __init__(self, feature_list: list[Feature], fuse: bool = True):
        super().__init__()
        primaries, self._aliases = _deduplicate(feature_list)
        for feature in {id(f): f for f in feature_list}.values():
            _check_compiled(feature)
        self._features = nn.ModuleList(primaries)
        self._selected = set().union(*(f.selected_fields() for f in primaries))
        self.execution_steps = _compile(primaries, fuse)

    @property
    def features(self) -> list[Feature]:
        """The features that run (duplicates excluded)."""
        return list(self._features)

    @beside_framework
    def forward(self, data: Mapping, remain_no_use_data: bool = True) -> dict:
        if not isinstance(data, Mapping):
            raise TypeError(f"FeatureEngine: expected a dict of inputs, got {type(data).__name__}")
        context = RunContext(data, remain_no_use_data)
        for step in self.execution_steps:
            context = step.run(context)
        results = _flatten(context.results)
        for alias, primary in self._aliases.items():
            results.update(_flatten({alias: context.results[primary]}))
        if remain_no_use_data:
            for key, value in data.items():
                if key not in self._selected and key not in results:
                    results[key] = value
        return results


def _deduplicate(features: list[Feature]) -> tuple[list[Feature], dict[str, str]]:
    """Features to run, and ``{alias name: name of the feature computing the same}``."""
    by_name: dict[str, Feature] = {}
    by_ops: dict[int, Feature] = {}
    aliases: dict[str, str] = {}
    for feature in features:
        if not feature.ops:
            raise ValueError(f"feature {feature.name!r} has no ops")
        ops_hash = feature.get_ops_hash()
        if feature.name in by_name:
            if by_name[feature.name].get_ops_hash() != ops_hash:
                raise ValueError(f"Duplicate feature name: {feature.name}")
            continue
        by_name[feature.name] = feature
        if ops_hash in by_ops:
            aliases[feature.name] = by_ops[ops_hash].name
        else:
            by_ops[ops_hash] = feature
    return list(by_ops.values()), aliases


def _check_compiled(feature: Feature) -> None:
    if feature.compiled:
        raise ValueError(f"feature {feature.name} has been compiled")
    feature.compiled_(True)


def _compile(features: list[Feature], fuse: bool) -> list[ExecutionStep]:
    steps = []
    for k in range(max((len(f.ops) for f in features), default=0)):
        step = ExecutionStep(fuse)
        for feature in features:
            if k < len(feature.ops):
                step.add_op(feature.name, feature.ops[k])
        steps.append(step)
    return steps


def _flatten(results: dict) -> dict:
    flat = {}
    for name, value in results.items():
        if isinstance(value, dict):
            flat.update({f"{name}_{key}": item for key, item in value.items()})
        else:
            flat[name] = value
    return flat
