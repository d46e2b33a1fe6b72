"""Export a torch model to a serving bundle: its tables' rows, feature ops and dense program.

:func:`export_model` takes the model as the README and examples write it — a module holding a
:class:`~recis.features.FeatureEngine` (optional) and an :class:`~recis.nn.EmbeddingEngine`,
and a method computing scores from a batch (``score="logits"``). Nothing has to be rewritten:

* the **sparse part** is every table of the model's ``EmbeddingEngine`` (rows only, see
  :mod:`recis.export`), with each feature's table and combiner;
* the **features** are the ``FeatureEngine``'s op chains, written as JSON
  (:mod:`recis.serving.features`);
* the **dense part** is the score method with the two engines replaced by stand-ins: one hands
  the raw batch through, the other returns embedding activations given as inputs. It is traced
  by ``torch.export`` into ``dense.pt2``, taking ``(dense columns, activations)`` with a dynamic
  batch size. The dense columns are those the method reads, found by running it once.

:func:`start_export_model` holds the caller only while it copies: the rows changed since the
earlier export, the example batch's activations, and the model with its engines stood in
(``copy.deepcopy``: the dense weights of that moment, no table). The copy is traced and the
files are written in the background while training goes on; :func:`export_model` waits for them.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Mapping
from functools import partial

import torch
from torch import nn

from recis.backends.torch.embedding_engine import EmbeddingEngine
from recis.backends.torch.features.engine import FeatureEngine
from recis.backends.torch.features.op import (
    Bucketize,
    FeatureCross,
    Hash,
    IDMultiHash,
    Mod,
    SelectField,
    SelectFields,
    SequenceTruncate,
)
from recis.export import Bundle, PendingExport, start_export
from recis.export.reads import ReadRecorder

PROGRAM_FILE = "dense.pt2"


def export_model(model: nn.Module, path, batch: Mapping, **options) -> Bundle | None:
    """Write a bundle of ``model`` at ``path`` (a delta with ``since``, an earlier bundle):
    :func:`start_export_model`, waiting until it is written."""
    return start_export_model(model, path, batch, **options).result()


def start_export_model(
    model: nn.Module,
    path,
    batch: Mapping,
    *,
    since=None,
    dtype: str = "float32",
    step: int = 0,
    score: str = "logits",
) -> PendingExport:
    """Start writing a bundle of ``model`` at ``path`` (a delta with ``since``: an earlier
    bundle, its path or its :class:`~recis.export.PendingExport`); returns once the changed rows
    and the dense weights are copied, so that training can go on while the dense program is
    traced and the files are written (``.result()`` waits for them).

    ``batch``: an example batch as the trainer gets it (torch tensors and ``RaggedTensor`` s;
    at least 2 rows), to trace the dense program. ``score``: the model's method giving the scores
    of a batch. Sharded tables (several ranks) export collectively: every rank calls this, rank
    0 writes the bundle.
    """
    start = time.perf_counter()
    if not callable(getattr(model, score, None)):
        raise ValueError(f"{type(model).__name__} has no method {score!r}: pass score=")
    features, embeddings = _engines(model)
    activations = _activations(model, features, embeddings, batch)
    with stood_in(model, features, embeddings):
        dense_model = copy.deepcopy(model)  # the dense weights of this moment, engines left out
    example = {k: v.detach().clone() for k, v in batch.items() if isinstance(v, torch.Tensor)}
    entries = {
        "embedding": embedding_entry(embeddings),
        "features": feature_entry(features),
    }
    pending = start_export(
        path,
        embeddings.embedder.tables,
        dtype=dtype,
        since=since,
        step=step,
        entries=entries,
        dense=partial(_dense_export, dense_model, score, example, activations),
        communicator=embeddings.embedder.communicator,
    )
    pending.snapshot_seconds = time.perf_counter() - start
    return pending


def _dense_export(model: nn.Module, score: str, batch: Mapping, activations: Mapping):
    """(manifest entry, file) of the dense program of ``model``, a copy whose engines stand in."""
    dense = _dense_inputs(model, score, batch, activations)
    program = _trace(model, score, dense, activations)
    entry = {"framework": "torch", "file": PROGRAM_FILE, "inputs": sorted(dense)}
    return {"dense": entry}, {PROGRAM_FILE: lambda out: torch.export.save(program, out)}


def embedding_entry(embeddings: EmbeddingEngine) -> dict:
    """Per feature: its logical table, dim, combiner (and tile length), weights, padding id."""
    return {
        feature: {
            "table": option.shared_name,
            "dim": option.embedding_dim,
            "combiner": option.combiner,
            "tile_len": option.tile_len,
            "use_weight": option.use_weight,
            "padding_id": option.padding_id,
        }
        for feature, option in embeddings.options.items()
    }


def feature_entry(features: FeatureEngine | None) -> dict:
    """The feature engine's op chains as JSON (see :mod:`recis.serving.features`)."""
    if features is None:
        return {"features": [], "aliases": {}}
    chains = [
        {"name": f.name, "ops": [_op_entry(f.name, op) for op in f.ops]} for f in features.features
    ]
    return {"features": chains, "aliases": dict(features._aliases)}


def _op_entry(feature: str, op) -> dict:
    if isinstance(op, SelectField):
        if not op.from_dict:
            raise ValueError(f"feature {feature!r}: SelectField(from_dict=False) cannot be served")
        return {"op": "select", "column": op.name}
    if isinstance(op, SelectFields):
        return {
            "op": "select_many",
            "columns": [_op_entry(feature, s)["column"] for s in op.input_list],
        }
    if isinstance(op, Mod):
        return {"op": "mod", "value": int(op.mod_value)}
    if isinstance(op, Bucketize):
        return {"op": "bucketize", "boundaries": op.boundaries.tolist()}
    if isinstance(op, Hash):
        return {"op": "hash", "hash_type": op.hash_type}
    if isinstance(op, FeatureCross):
        return {"op": "cross"}
    if isinstance(op, IDMultiHash):
        return {"op": "multi_hash", "num_buckets": op.num_buckets, "prefix": op.prefix}
    if isinstance(op, SequenceTruncate) and op.truncate:
        return {
            "op": "truncate",
            "seq_len": op.seq_len,
            "truncate_side": op.truncate_side,
            "n_dims": op.n_dims,
        }
    raise ValueError(f"feature {feature!r}: op {type(op).__name__} cannot be exported for serving")


def _engines(model: nn.Module) -> tuple[FeatureEngine | None, EmbeddingEngine]:
    found = {
        kind: [m for m in model.modules() if isinstance(m, kind)]
        for kind in (FeatureEngine, EmbeddingEngine)
    }
    if len(found[EmbeddingEngine]) != 1 or len(found[FeatureEngine]) > 1:
        raise ValueError(
            f"{type(model).__name__}: export needs one EmbeddingEngine and at most one "
            f"FeatureEngine in the model, found {len(found[EmbeddingEngine])} and "
            f"{len(found[FeatureEngine])}"
        )
    return (found[FeatureEngine] or [None])[0], found[EmbeddingEngine][0]


def _activations(model, features, embeddings, batch) -> dict[str, torch.Tensor]:
    with _evaluation(model):
        inputs = features(batch) if features is not None else batch
        out = embeddings(inputs)
    return {f: out[f].detach() for f in embeddings.options if f in out}


class _PassBatch(nn.Module):
    """Stands in for the feature engine: the batch goes through unchanged."""

    def forward(self, batch, *args, **kwargs):
        return batch


_GIVEN = threading.local()  # .stack: this thread's DenseProgram calls' activations, innermost last


class _GivenActivations(nn.Module):
    """Stands in for the embedding engine: the activations given, then the batch's entries."""

    def forward(self, batch, *args, **kwargs):
        return _Layered(_GIVEN.stack[-1], batch)


class _Layered(Mapping):
    """``first``'s entries, then ``second``'s (a read-only view)."""

    def __init__(self, first: Mapping, second: Mapping) -> None:
        self.first, self.second = first, second

    def __getitem__(self, key):
        return self.first[key] if key in self.first else self.second[key]

    def __iter__(self):
        yield from self.first
        yield from (k for k in self.second if k not in self.first)

    def __len__(self) -> int:
        return len(set(self.first) | set(self.second))


class DenseProgram(nn.Module):
    """The model's score method over (dense columns, activations), for a model whose engines
    stand in (see :func:`stood_in`)."""

    def __init__(self, model: nn.Module, score: str) -> None:
        super().__init__()
        self.model, self.score = model, score

    def forward(self, dense: dict, activations: dict) -> torch.Tensor:
        stack = _GIVEN.__dict__.setdefault("stack", [])
        stack.append(activations)
        try:
            return getattr(self.model, self.score)(dense)
        finally:
            stack.pop()


@contextlib.contextmanager
def stood_in(model: nn.Module, features, embeddings):
    """``model`` in evaluation mode with its feature engine handing the batch through and its
    embedding engine giving :class:`DenseProgram`'s activations."""
    with (
        _evaluation(model),
        _replaced(model, features, _PassBatch()),
        _replaced(model, embeddings, _GivenActivations()),
    ):
        yield


def _dense_inputs(model, score, batch, activations) -> dict:
    """The tensors of ``batch`` that ``model`` (engines stood in) reads for its scores."""
    candidates = ReadRecorder({k: v for k, v in batch.items() if k not in activations})
    with torch.no_grad():
        DenseProgram(model, score)(candidates, activations)
    return {k: batch[k] for k in sorted(candidates.read)}


def _trace(model, score, dense, activations):
    batch = torch.export.Dim.AUTO
    shapes = ({k: {0: batch} for k in dense}, {k: {0: batch} for k in activations})
    program = DenseProgram(model, score)
    return torch.export.export(program, (dense, activations), dynamic_shapes=shapes, strict=False)


class _evaluation:
    """The model in evaluation mode inside, its earlier mode after."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.training = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.training)


class _replaced:
    """``old`` (a submodule of ``model``; None passes) swapped for ``new`` inside."""

    def __init__(self, model: nn.Module, old, new) -> None:
        self.places = [] if old is None else _places(model, old)
        self.old, self.new = old, new

    def __enter__(self):
        for parent, name in self.places:
            parent._modules[name] = self.new

    def __exit__(self, *exc):
        for parent, name in self.places:
            parent._modules[name] = self.old


def _places(model: nn.Module, target: nn.Module) -> list[tuple[nn.Module, str]]:
    return [
        (parent, name)
        for parent in model.modules()
        for name, child in parent._modules.items()
        if child is target
    ]
