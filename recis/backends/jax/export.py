"""Export a Flax NNX model to a serving bundle: its tables' rows and a ``jax.export`` program.

:func:`export_model` takes the model as the examples write it: NNX layers of
:class:`~recis.backends.jax.flax.SparseEmbedding` and a method computing scores from a batch
(``score="logits"``). Its ``SparseEmbedding`` layers return activations they are given as they
are, so the dense program is the score method over ``{**dense columns, **activations}``,
``jax.jit``-ed with the current weights as constants and serialized by ``jax.export`` with a
symbolic batch size. JAX models prepare their batches in the data pipeline, so ``features``
names, per embedded feature, the raw column it reads (or a list of op entries, see
:mod:`recis.serving.features`); by default each feature reads the column of its own name.

:func:`start_export_model` holds the caller only while it copies the changed rows, the example
batch's activations and the dense weights (the model's state without its tables); the model is
rebuilt from that copy, exported and written in the background.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from recis.backends.jax.flax import sparse_layers
from recis.backends.jax.nnx_state import SparseTable
from recis.export import Bundle, PendingExport, start_export
from recis.export.reads import ReadRecorder

PROGRAM_FILE = "dense.jax"
PLATFORMS = ("cpu", "cuda")  # the program runs beside a CPU or a GPU Predictor


def export_model(model: nnx.Module, path, batch: Mapping, **options) -> Bundle | None:
    """Write a bundle of ``model`` at ``path`` (a delta with ``since``, an earlier bundle):
    :func:`start_export_model`, waiting until it is written."""
    return start_export_model(model, path, batch, **options).result()


def start_export_model(
    model: nnx.Module,
    path,
    batch: Mapping,
    *,
    features: Mapping | None = None,
    since=None,
    dtype: str = "float32",
    step: int = 0,
    score: str = "logits",
) -> PendingExport:
    """Start writing a bundle of ``model`` at ``path`` (a delta with ``since``: an earlier
    bundle, its path or its :class:`~recis.export.PendingExport`); returns once the changed rows
    and a copy of the dense weights are taken, while ``jax.export`` and the files run in the
    background (``.result()`` waits for them).

    ``batch``: an example batch as the trainer gets it (NumPy arrays and ``Ragged`` s).
    """
    start = time.perf_counter()
    layers = sparse_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no SparseEmbedding layer to export")
    if not callable(getattr(model, score, None)):
        raise ValueError(f"{type(model).__name__} has no method {score!r}: pass score=")
    options = {f: o for layer in layers for f, o in layer.options.items()}
    activations = {}
    for layer in layers:
        activations |= layer.lookup({f: batch[f] for f in layer.features}, train=False)[0]
    graphdef, tables, weights = nnx.split(model, SparseTable, ...)
    weights = jax.tree.map(lambda a: jnp.array(a, copy=True), weights)  # this moment's values
    example = {k: np.array(v) for k, v in batch.items() if isinstance(v, np.ndarray | jax.Array)}
    entries = {
        "embedding": _embedding_entry(options),
        "features": _feature_entry(options, features or {}),
    }
    pending = start_export(
        path,
        {name: table for layer in layers for name, table in layer.tables.items()},
        dtype=dtype,
        since=since,
        step=step,
        entries=entries,
        dense=partial(_dense_export, (graphdef, tables, weights), score, example, activations),
        communicator=layers[0].embedder.communicator,
    )
    pending.snapshot_seconds = time.perf_counter() - start
    return pending


def _dense_export(split, score: str, batch: Mapping, activations: Mapping):
    """(manifest entry, file) of the dense program of the model ``split`` (graph, states)."""
    method = getattr(nnx.merge(*split), score)
    dense = _dense_inputs(method, batch, activations)
    program = _export(method, dense, activations)
    entry = {"framework": "jax", "file": PROGRAM_FILE, "inputs": sorted(dense)}
    return {"dense": entry}, {PROGRAM_FILE: lambda out: out.write(program.serialize())}


def _embedding_entry(options: Mapping) -> dict:
    return {
        feature: {
            "table": option.shared_name,
            "dim": option.embedding_dim,
            "combiner": option.combiner,
            "tile_len": option.tile_len,
            "use_weight": option.use_weight,
            "padding_id": option.padding_id,
        }
        for feature, option in options.items()
    }


def _feature_entry(options: Mapping, features: Mapping) -> dict:
    unknown = sorted(set(features) - set(options))
    if unknown:
        raise ValueError(f"features {unknown} are not embedded by the model")
    chains = []
    for feature in options:
        ops = features.get(feature, feature)
        ops = [{"op": "select", "column": ops}] if isinstance(ops, str) else list(ops)
        chains.append({"name": feature, "ops": ops})
    return {"features": chains, "aliases": {}}


def _dense_inputs(method, batch: Mapping, activations: Mapping) -> dict:
    candidates = {
        k: v
        for k, v in batch.items()
        if isinstance(v, np.ndarray | jax.Array) and k not in activations
    }
    recording = ReadRecorder({**candidates, **activations})
    method(recording)
    return {k: np.asarray(candidates[k]) for k in sorted(recording.read) if k in candidates}


def _export(method, dense: Mapping, activations: Mapping):
    (size,) = jax.export.symbolic_shape("batch")

    def spec(array):
        return jax.ShapeDtypeStruct((size, *array.shape[1:]), array.dtype)

    def program(dense, activations):
        return method({**dense, **activations})

    args = ({k: spec(v) for k, v in dense.items()}, {k: spec(v) for k, v in activations.items()})
    return jax.export.export(jax.jit(program), platforms=PLATFORMS)(*args)
