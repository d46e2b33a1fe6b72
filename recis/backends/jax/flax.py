"""Flax layers for RecIS embeddings, and train steps for Flax models.

:class:`SparseEmbedding` (NNX) and :class:`SparseFeatures` (Linen) put an
:class:`~recis.backends.jax.Embedder` inside a Flax model. They hold no Flax parameters: the
rows live in the engine's tables. Called on a batch whose sparse features are already
activations — as inside a train step, which looks them up outside ``jit`` — they return those
activations; called eagerly on raw ids, they look them up without inserting (evaluation).

>>> import numpy as np, optax
>>> from flax import nnx
>>> from recis.backends.jax import EmbeddingOption, SparseOptimizer, rules
>>> class Model(nnx.Module):
...     def __init__(self, rngs):
...         option = EmbeddingOption(embedding_dim=4, shared_name="f")
...         self.embedding = SparseEmbedding({"f": option})
...         self.linear = nnx.Linear(4, 1, rngs=rngs)
...     def __call__(self, batch):
...         return self.linear(self.embedding(batch)["f"])[:, 0]
>>> model = Model(nnx.Rngs(0))
>>> def loss_fn(model, batch):
...     return optax.sigmoid_binary_cross_entropy(model(batch), batch["label"])
>>> step = nnx_train_step(model, loss_fn, optax.adam(1e-2),
...                       SparseOptimizer(model.embedding, rules.Adagrad(), 0.1))
>>> out = step({"f": np.array([3, 4]), "label": np.array([1.0, 0.0], np.float32)})
>>> out.applied, out.embedding_grads["f"].shape, len(model.embedding.tables["f"])
(True, (2, 4), 2)
>>> model({"f": np.array([3, 9])}).shape  # eager, raw ids: an evaluation lookup
(2,)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import optax
from flax import linen, nnx

from recis.backends.jax.embedding import Embedder, LookupContext
from recis.backends.jax.mesh import DataParallel
from recis.backends.jax.nnx_state import SparseTable, TableHandle
from recis.backends.jax.optim import SparseOptimizer
from recis.backends.jax.options import EmbeddingOption
from recis.backends.jax.train import ParamsBinding, StepOutput, TrainStep
from recis.core.padded import Padded
from recis.core.ragged import Ragged
from recis.core.table import EmbeddingTable


class SparseEmbedding(nnx.Module):
    """An NNX layer embedding the features of ``options`` (see the module docstring).

    Its engine tables are NNX state: one :class:`~recis.backends.jax.nnx_state.SparseTable`
    per physical table in ``table_state``, so ``nnx.state``, ``nnx.split``/``merge``,
    ``nnx.clone`` (which copies the tables) and ``nnx.display`` see them. With ``mesh`` (a
    :class:`~recis.backends.jax.mesh.DataParallel`), each table's rows are sharded over the
    mesh's devices (see :class:`~recis.backends.jax.Embedder`).
    """

    def __init__(
        self, options: Mapping[str, EmbeddingOption], mesh: DataParallel | None = None
    ) -> None:
        self.options = dict(options)
        embedder = Embedder(self.options, mesh=mesh)
        makers = embedder.table_makers()
        self.table_state = nnx.data(
            {n: SparseTable(TableHandle(t, makers[n])) for n, t in embedder.tables.items()}
        )
        self._embedder = embedder

    @property
    def features(self) -> list[str]:
        return list(self.options)

    @property
    def tables(self) -> dict[str, EmbeddingTable]:
        """The engine tables, by name."""
        return {name: variable.table for name, variable in self.table_state.items()}

    @property
    def embedder(self) -> Embedder:
        """The :class:`Embedder` over this layer's tables (rebuilt when the variables hold
        other tables, e.g. in a clone)."""
        tables = self.tables
        if any(self._embedder.tables[n] is not t for n, t in tables.items()):
            self._embedder = Embedder(
                self.options, make_table=lambda o, n, c: tables[n], mesh=self._embedder.mesh
            )
        return self._embedder

    def lookup(self, batch: Mapping, **kwargs) -> tuple[dict[str, jax.Array], LookupContext]:
        """:meth:`Embedder.lookup` of ``batch`` (outside JAX transformations)."""
        return self.embedder.lookup(batch, **kwargs)

    def apply_gradients(self, context: LookupContext, grads: Mapping, **kwargs) -> None:
        """:meth:`Embedder.apply_gradients`: the activations' gradients back to the tables."""
        self.embedder.apply_gradients(context, grads, **kwargs)

    def __call__(self, batch: Mapping) -> dict[str, jax.Array]:
        """The activations of this layer's features in ``batch``."""
        values = {f: batch[f] for f in self.features}
        if not any(_is_ids(v) for v in values.values()):
            return values
        return self.lookup(values, train=False)[0]


class SparseFeatures(linen.Module):
    """A Linen layer returning the activations of ``embedder``'s features (module docstring)."""

    embedder: Embedder

    def __call__(self, batch: Mapping) -> dict[str, jax.Array]:
        return activations(self.embedder, batch)


def activations(embedder: Embedder, batch: Mapping) -> dict[str, jax.Array]:
    """``batch``'s activations of ``embedder``'s features; raw ids are looked up for evaluation
    (outside JAX transformations only: inside one, the lookup raises
    :class:`~recis.backends.jax.misuse.TracedLookupError`)."""
    values = {f: batch[f] for f in embedder.features}
    if not any(_is_ids(v) for v in values.values()):
        return values
    return embedder.lookup(values, train=False)[0]


def _is_ids(value) -> bool:
    if isinstance(value, Ragged | Padded):
        return True
    dtype = getattr(value, "dtype", None)
    return dtype is not None and dtype.kind in "iu"


class NnxBinding(ParamsBinding):
    """Binds parameters and state to an NNX model of ``graphdef`` (inside the traced step)."""

    def __init__(self, graphdef) -> None:
        self.graphdef = graphdef

    def bind(self, params, model_state):
        return nnx.merge(self.graphdef, params, model_state, copy=True)

    def model_state(self, model, model_state):
        return nnx.split(model, nnx.Param, ...)[2]


class LinenBinding(ParamsBinding):
    """Binds ``params`` and the state collections to a Linen ``module``; the collections other
    than ``"params"`` are mutable."""

    def __init__(self, module: linen.Module) -> None:
        self.module = module

    def bind(self, params, model_state):
        return self.module.bind({"params": params, **model_state}, mutable=list(model_state))

    def model_state(self, model, model_state):
        return {name: model.variables[name] for name in model_state}


class NnxTrainStep(TrainStep):
    """A :class:`TrainStep` of an NNX ``model``: each step trains the model's current
    variables (edits made to the model between steps count) and updates them in the model.
    ``loss_fn(model, batch)`` returns per-example losses (and ``aux`` with ``has_aux``)."""

    def __init__(
        self,
        model: nnx.Module,
        loss_fn: Callable,
        optimizer: optax.GradientTransformation,
        sparse_optimizer: SparseOptimizer,
        **kwargs,
    ) -> None:
        graphdef, params, state = nnx.split(model, nnx.Param, ...)
        embedders = [layer.embedder for layer in sparse_layers(model)]
        super().__init__(
            loss_fn, params, optimizer, sparse_optimizer, embedders, state=state,
            binding=NnxBinding(graphdef), **kwargs,
        )  # fmt: skip
        self.model = model

    def __call__(self, batch: Mapping) -> StepOutput:
        params, state = self.place(nnx.split(self.model, nnx.Param, ...)[1:])
        self.train_state = self.train_state.replace(params=params, model_state=state)
        out = super().__call__(batch)
        nnx.update(self.model, self.params, self.state)
        return out


def nnx_train_step(
    model: nnx.Module,
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    sparse_optimizer: SparseOptimizer,
    **kwargs,
) -> NnxTrainStep:
    """A train step of an NNX model holding :class:`SparseEmbedding` layers; ``kwargs`` as
    :class:`TrainStep` (policy, loss_scale, buckets, has_aux)."""
    return NnxTrainStep(model, loss_fn, optimizer, sparse_optimizer, **kwargs)


def linen_train_step(
    module: linen.Module,
    variables: Mapping,
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    sparse_optimizer: SparseOptimizer,
    embedders: list[Embedder],
    **kwargs,
) -> TrainStep:
    """A train step of a Linen ``module`` with ``variables``; ``loss_fn(model, batch)`` gets
    the module bound to its variables (call ``model(batch)``) and returns per-example losses.
    Collections other than ``"params"`` are mutable state."""
    state = {k: v for k, v in variables.items() if k != "params"}
    return TrainStep(
        loss_fn, variables["params"], optimizer, sparse_optimizer, embedders, state=state,
        binding=LinenBinding(module), **kwargs,
    )  # fmt: skip


def sparse_layers(model: nnx.Module) -> list[SparseEmbedding]:
    """The :class:`SparseEmbedding` layers of an NNX ``model``."""
    return [node for _, node in nnx.iter_graph(model) if isinstance(node, SparseEmbedding)]
