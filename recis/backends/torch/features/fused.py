"""Fused forms of the feature ops and their registry (RecIS ``FusedOpFactory``).

A fused op is built with ``fused_cls(ops=[])``, receives the ops of one execution step through
``add_op(op)``, and is called with one input per op, returning one output per op — results
identical to calling each op on its input. The built-in fused ops make one engine call for all
their features. A user registers a fused form for an op class with
``FusedOpFactory.register(op_cls, fused_cls)``.

>>> import torch
>>> from recis.backends.torch.features.op import Mod
>>> fused = FusedOpFactory.get_fused_op(Mod(3))(ops=[])
>>> fused.add_op(Mod(3)); fused.add_op(Mod(5))
>>> fused([torch.tensor([7]), torch.tensor([7])])
[tensor([1]), tensor([2])]
"""

from __future__ import annotations

from typing import ClassVar

from recis.backends.torch.features.columns import on_input_device, split_values
from recis.backends.torch.features.op import (
    Bucketize,
    FeatureCross,
    Hash,
    IDMultiHash,
    Mod,
    SequenceTruncate,
    cross_inputs,
    hash_inputs,
)
from recis.core import features as engine


class FusedOpFactory:
    """Registry mapping op classes to their fused forms."""

    _fused_ops: ClassVar[dict[type, type]] = {}

    @staticmethod
    def register(op_class: type, fused_op_class: type) -> None:
        """Fuse ``op_class`` ops with ``fused_op_class``; ``ValueError`` if already registered."""
        if op_class in FusedOpFactory._fused_ops:
            raise ValueError(f"op {op_class.__name__} already has a fused form")
        FusedOpFactory._fused_ops[op_class] = fused_op_class

    @staticmethod
    def contains(op) -> bool:
        """Whether ``op``'s class has a fused form."""
        return type(op) in FusedOpFactory._fused_ops

    @staticmethod
    def get_fused_op(op) -> type:
        """The fused form of ``op``'s class."""
        return FusedOpFactory._fused_ops[type(op)]


class _FusedOP:
    """Base of fused ops: holds the ops added, one per input of :meth:`process`."""

    def __init__(self, ops: list | None = None):
        self._ops = list(ops) if ops else []

    def add_op(self, op) -> None:
        self._ops.append(op)

    def process(self, inputs: list) -> list:
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.process(*args, **kwargs)


class FusedModOP(_FusedOP):
    """All :class:`Mod` ops of a step in one engine call."""

    @on_input_device
    def process(self, inputs: list) -> list:
        columns, backs = _split_all(inputs)
        results = engine.fused_mod(columns, [op.mod_value for op in self._ops])
        return _give_back(backs, results)


class FusedBoundaryOP(_FusedOP):
    """All :class:`Bucketize` ops of a step in one engine call (per value dtype)."""

    @on_input_device
    def process(self, inputs: list) -> list:
        columns, backs = _split_all(inputs)
        results = engine.fused_bucketize(columns, [op.boundaries for op in self._ops])
        return _give_back(backs, results)


class FusedMultiHashOP(_FusedOP):
    """All :class:`IDMultiHash` ops of a step in one engine call."""

    @on_input_device
    def process(self, inputs: list) -> list:
        columns, backs = _split_all(inputs)
        results = engine.fused_id_multi_hash(columns, [op.num_buckets for op in self._ops])
        return [
            op.named([back(r) for r in hashed])
            for op, back, hashed in zip(self._ops, backs, results, strict=True)
        ]


class FusedHashOP(_FusedOP):
    """All :class:`Hash` ops of a step: one engine call per hash type."""

    @on_input_device
    def process(self, inputs: list) -> list:
        strings, weights, backs = zip(*(hash_inputs(x) for x in inputs), strict=True)
        results = engine.fused_hash_column(strings, [op.hash_type for op in self._ops], weights)
        return _give_back(backs, results)


class FusedFeatureCrossOP(_FusedOP):
    """All :class:`FeatureCross` ops of a step in one engine call."""

    @on_input_device
    def process(self, inputs: list) -> list:
        xs, ys, backs = zip(*(cross_inputs(data) for data in inputs), strict=True)
        results = engine.fused_feature_cross(list(zip(xs, ys, strict=True)))
        return _give_back(backs, results)


class FusedCutoffOP(_FusedOP):
    """All truncating :class:`SequenceTruncate` ops of a step in one engine call; as RecIS's
    fused path, it truncates without checking lengths (``check_length`` applies to an op
    called on its own)."""

    @on_input_device
    def process(self, inputs: list) -> list:
        prepared = [
            op.inputs(x) if op.truncate else None for op, x in zip(self._ops, inputs, strict=True)
        ]
        outputs = list(inputs)  # truncate=False passes the input through
        chosen = [i for i, op in enumerate(self._ops) if op.truncate]
        ops = [self._ops[i] for i in chosen]
        results = engine.fused_sequence_truncate(
            [prepared[i][0] for i in chosen],
            [op.seq_len for op in ops],
            [op.truncate_side for op in ops],
            [op.n_dims for op in ops],
            [False] * len(ops),
        )
        for i, result in zip(chosen, results, strict=True):
            outputs[i] = prepared[i][1](result)
        return outputs


def _split_all(inputs: list) -> tuple[list, list]:
    pairs = [split_values(x) for x in inputs]
    return [column for column, _ in pairs], [back for _, back in pairs]


def _give_back(backs, results) -> list:
    return [back(result) for back, result in zip(backs, results, strict=True)]


def _register_built_ins() -> None:
    built_ins = {
        Mod: FusedModOP,
        Bucketize: FusedBoundaryOP,
        IDMultiHash: FusedMultiHashOP,
        Hash: FusedHashOP,
        FeatureCross: FusedFeatureCrossOP,
        SequenceTruncate: FusedCutoffOP,
    }
    for op_class, fused_class in built_ins.items():
        FusedOpFactory.register(op_class, fused_class)


_register_built_ins()
