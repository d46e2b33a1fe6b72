"""The training step of a JAX dense model over RecIS embeddings, as a pure function of its state.

``state, metrics = step(state, batch)``: :class:`PureStep` (1) looks the batch's sparse features
up in the engine, padding the batch to a bucket size; (2) runs the jitted dense step — loss,
gradients w.r.t. the dense parameters and the embedding activations, the optax update — on the
:class:`TrainState` pytree, whose buffers it donates; (3) hands the activations' gradients back
to the engine and steps the sparse optimizer. Only (2) is traced, once per bucket size; it is
:attr:`PureStep.dense`, a pure function that ``jax.jit``, ``jax.lax.scan`` and the like take as
they take any. :class:`TrainStep` keeps a state and calls the pure step on it.

**The loss.** One signature across RecIS's JAX front end, the Flax/optax one:
``loss_fn(model, batch) -> per_example_loss`` (``(per_example_loss, aux)`` with ``has_aux``).
``model`` is what is trained: the parameter pytree here, the NNX module of the NNX steps and
the :class:`~recis.backends.jax.trainer.Trainer`, the Linen module bound to its variables in
:func:`~recis.backends.jax.flax.linen_train_step`. ``batch`` holds the activations under the
feature names and the other entries of the input batch, padded to the bucket size. The loss is
per example (no ``.mean()``): the step averages it over the real, unpadded samples; a scalar
loss is an error that says so.

**Why the sparse part is not traced.** The tables are growable hash tables in host (or CuPy)
memory: a lookup inserts ids and reads rows that the previous step's sparse update wrote, so
the sparse part cannot run inside ``jit`` or a ``scan`` body without calling back to the host
at each iteration (giving up zero-copy activations and running the engine on XLA's threads).
``jax.jit(step)`` therefore raises :class:`~recis.backends.jax.misuse.TracedLookupError` with
the fix; scan over the dense part (e.g. several dense updates of looked-up activations) with
``jax.lax.scan(lambda s, x: step.dense(s, *x)[:2], ...)``.

**Data parallelism.** With a communicator of several ranks (by default the embedders', i.e.
the world of ``jax.distributed`` or ``torch.distributed``), each rank trains on its own batches:
the dense step is split in two — gradients, then the optax update — and between them the dense
gradients travel as one flat buffer in one all-reduce per step, which also carries each rank's
loss (the step reports their mean) and whether its gradients are finite (all ranks skip a step
together). The embeddings' gradients go to the ranks owning their rows at the sparse optimizer's
step. Non-trainable model state stays each rank's own. Within a process, ``mesh`` splits each
batch over local devices (:class:`~recis.backends.jax.mesh.DataParallel`).

>>> import numpy as np, optax, jax.numpy as jnp
>>> from recis.backends.jax import Embedder, EmbeddingOption, SparseOptimizer, rules
>>> embedder = Embedder({"f": EmbeddingOption(embedding_dim=2, shared_name="f")})
>>> def loss_fn(params, batch):
...     return (batch["f"] @ params["w"] - batch["y"]) ** 2
>>> step = PureStep(loss_fn, optax.sgd(0.1), SparseOptimizer(embedder, rules.SGD(), 0.1),
...                 [embedder])
>>> state = step.init({"w": jnp.ones(2)})
>>> for batch_size in (4, 4, 3):
...     batch = {"f": np.arange(batch_size)[:, None], "y": np.ones(batch_size, np.float32)}
...     state, metrics = step(state, batch)
>>> round(float(metrics.loss), 4), step.trace_count, [h.table.name for h in state.tables]
(0.6533, 1, ['f'])
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from recis.backends.jax.buckets import BatchBuckets, pad_rows
from recis.backends.jax.embedding import Embedder, LookupContext
from recis.backends.jax.joined_grads import (
    jax_activations,
    joined_runs,
    split,
    with_joined_views,
)
from recis.backends.jax.mesh import DataParallel
from recis.backends.jax.nnx_state import TableHandle
from recis.backends.jax.optim import SparseOptimizer
from recis.backends.jax.precision import DynamicLossScale, Policy, all_finite
from recis.core.padded import Padded
from recis.core.ragged import Ragged
from recis.distributed.communicator import Communicator
from recis.distributed.world import default_communicator


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything a step updates, as one pytree: the dense ``params``, the optax
    ``opt_state``, non-trainable ``model_state`` and the ``loss_scale`` (None without one) are
    its leaves; ``tables`` holds a :class:`~recis.backends.jax.nnx_state.TableHandle` per engine
    table — static data with no leaves, so ``jit`` and donation pass over them."""

    params: Any
    opt_state: Any
    model_state: Any = None
    loss_scale: DynamicLossScale | None = None
    tables: tuple[TableHandle, ...] = dataclasses.field(default=(), metadata={"static": True})

    def replace(self, **changes) -> TrainState:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


class StepOutput(NamedTuple):
    """A step's metrics: the mean ``loss`` of the real samples, the gradients w.r.t. the
    activations (padded to the bucket; on the CPU, those of features combined in one call are
    read-only NumPy views of one buffer), whether the update was ``applied`` (a step whose loss
    or gradients are not finite is not, dense and sparse alike), and the loss's ``aux`` output
    (None without ``has_aux``)."""

    loss: jax.Array
    embedding_grads: dict[str, jax.Array]
    applied: bool
    aux: Any = None


class ParamsBinding:
    """How a step gives its loss the model: here the parameters themselves. The NNX and Linen
    steps supply their own :meth:`bind` (parameters and state to a model) and
    :meth:`model_state` (the model's state after the loss ran)."""

    def bind(self, params, model_state):
        return params

    def model_state(self, model, model_state):
        return model_state


class PureStep:
    """``state, metrics = step(state, batch)``, see the module docstring.

    Args:
        loss_fn: ``(model, batch) -> per_example_loss``, or ``(per_example_loss, aux)`` with
            ``has_aux``.
        optimizer: an optax transformation of the dense parameters.
        sparse_optimizer: the :class:`SparseOptimizer` of the embedders' tables.
        embedders: the :class:`Embedder` s whose features the batch holds.
        policy: compute-dtype :class:`Policy` of the loss (default float32).
        buckets: the :class:`BatchBuckets` of padded batch sizes (default: adaptive).
        has_aux: ``loss_fn`` returns ``(per_example_loss, aux)``.
        communicator: the ranks the dense gradients are averaged over (default: that of the
            embedders, else :func:`~recis.distributed.world.default_communicator`); one of a
            single rank means one process.
        binding: how ``loss_fn`` gets its model (default :class:`ParamsBinding`: the
            parameters).
        clip_global_norm: scale the dense gradients and the tables' row gradients together
            so that their global L2 norm is at most this (as ``optax.clip_by_global_norm``
            over both); one process, no gradient accumulation.
        mesh: a :class:`~recis.backends.jax.mesh.DataParallel` to split each batch over this
            process's devices (default: the dense step runs on the first local device).
    """

    def __init__(
        self,
        loss_fn: Callable,
        optimizer: optax.GradientTransformation,
        sparse_optimizer: SparseOptimizer,
        embedders: Sequence[Embedder],
        *,
        policy: Policy | None = None,
        buckets: BatchBuckets | None = None,
        has_aux: bool = False,
        communicator: Communicator | None = None,
        binding: ParamsBinding | None = None,
        clip_global_norm: float | None = None,
        mesh: DataParallel | None = None,
    ) -> None:
        # committed to a device like the step's outputs, so that step 2 reuses step 1's program
        self.device = jax.local_devices()[0]
        self.mesh = mesh
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.sparse_optimizer = sparse_optimizer
        self.embedders = list(embedders)
        self.policy = policy if policy is not None else Policy()
        self.buckets = buckets if buckets is not None else BatchBuckets()
        self.has_aux = has_aux
        self.binding = binding if binding is not None else ParamsBinding()
        self.trace_count = 0
        self._features = _disjoint_features(self.embedders)
        self.communicator = _data_parallel_communicator(communicator, self.embedders)
        self.clip_global_norm = _checked_clip(clip_global_norm, sparse_optimizer, self.communicator)
        self.dense = jax.jit(self._dense_impl, donate_argnums=0, static_argnums=4)
        self._gradients_only = jax.jit(self._gradients_impl)
        self._clipped_update = jax.jit(self._clipped_update_impl, donate_argnums=0)
        self._local_step = jax.jit(self._local_step_impl)
        self._update = jax.jit(self._update_impl, donate_argnums=0)

    @property
    def tables(self) -> tuple[TableHandle, ...]:
        """Handles of the embedders' tables, as a :class:`TrainState` holds them."""
        return tuple(TableHandle(t) for e in self.embedders for t in e.tables.values())

    def init(
        self, params, model_state=None, loss_scale: DynamicLossScale | None = None
    ) -> TrainState:
        """A first state: copies of ``params`` and ``model_state`` (the step donates its
        state's buffers, the caller's stay valid), the optimizer's initial state."""
        params, model_state = jax.tree.map(jnp.array, (params, model_state))
        opt_state = self.optimizer.init(params)
        leaves = self.place((params, opt_state, model_state, loss_scale))
        return TrainState(*leaves, tables=self.tables)

    def __call__(self, state: TrainState, batch: Mapping) -> tuple[TrainState, StepOutput]:
        """Train on ``batch`` (sparse features as dense ids, Ragged or Padded, other entries
        as arrays): the next state and the step's metrics."""
        self._check_tables(state)
        num_samples = _batch_size(batch)
        size = self.buckets(num_samples)
        if self.mesh is not None:
            size = self.mesh.padded_size(size)
        values, contexts = self._lookup(batch, size)
        embedded, joined = jax_activations(values, self._joinable(contexts))
        if self.mesh is None and self.device.platform != "cpu":  # host arrays from the engine
            embedded = jax.device_put(embedded, self.device)
        dense = {k: pad_rows(v, size) for k, v in batch.items() if k not in self._features}
        if self.mesh is not None:
            embedded, dense = self.mesh.split_batch((embedded, dense))
        count = jnp.asarray(num_samples, jnp.int32)
        if self.clip_global_norm is not None:
            return self._clipped_step(state, embedded, dense, count, contexts)
        if self.communicator is None:
            state, metrics = self.dense(state, embedded, dense, count, joined)
            metrics = with_joined_views(metrics, joined)
        else:
            state, metrics = self._data_parallel_step(state, embedded, dense, count)
        metrics = metrics._replace(embedding_grads=self._on_host(metrics.embedding_grads))
        applied = bool(metrics.applied)
        for embedder, context in zip(self.embedders, contexts, strict=True):
            if applied:
                embedder.apply_gradients(context, metrics.embedding_grads)
            else:
                embedder.discard(context)
        if applied:
            self.sparse_optimizer.step()
        return state, metrics._replace(applied=applied)

    def place(self, tree):
        """``tree`` on the step's device, or replicated over the mesh's devices."""
        if self.mesh is not None:
            return self.mesh.replicate(tree)
        return jax.device_put(tree, self.device)

    def _on_host(self, grads: dict) -> dict:
        """The activations' gradients as the engine takes them: gathered from the mesh's
        devices (one array each), else as they are."""
        if self.mesh is None:
            return grads
        return {feature: np.asarray(grad) for feature, grad in grads.items()}

    def _check_tables(self, state: TrainState) -> None:
        if state.tables != self.tables:
            names = [handle.table.name for handle in state.tables]
            raise ValueError(
                f"the state holds the tables {names}, not those of this step's embedders "
                f"{[handle.table.name for handle in self.tables]}: build it with step.init"
            )

    def _joinable(self, contexts: list[LookupContext]) -> tuple:
        """The combine calls whose features the dense step takes as one array and returns
        the gradients of as one array: all of them on one host device (:mod:`.joined_grads`),
        none elsewhere."""
        one_host_device = self.mesh is None and self.device.platform == "cpu"
        plain = self.communicator is None and self.clip_global_norm is None
        return joined_runs(contexts) if one_host_device and plain else ()

    def _lookup(self, batch: Mapping, size: int) -> tuple[dict, list[LookupContext]]:
        embedded, contexts = {}, []
        for embedder in self.embedders:
            out, context = embedder.engine_lookup(batch, batch_size=size)
            embedded.update(out)
            contexts.append(context)
        return embedded, contexts

    def _dense_impl(self, state: TrainState, embedded, dense, count, joined=()):
        """The traced part: the next state and the metrics, with the gradients w.r.t. the
        activations ``embedded`` (``count`` real samples lead the padded batch). The features
        of each of the ``joined`` runs come as one array laid out like the run's combined
        output, under the run's first feature, and so do their gradients
        (:mod:`.joined_grads`)."""
        self.trace_count += 1  # runs when jit traces, i.e. once per compilation
        loss, model_state, aux, grads = self._gradients(state, embedded, dense, count, joined)
        finite = all_finite(grads) & jnp.isfinite(loss)
        param_grads, embedding_grads = grads
        state = self._apply(state, model_state, param_grads, finite)
        return state, StepOutput(loss, embedding_grads, finite, aux)

    def _clipped_step(self, state: TrainState, embedded, dense, count, contexts):
        """The step with the dense and the row gradients scaled together to a global norm of
        at most :attr:`clip_global_norm`."""
        loss, model_state, aux, (param_grads, embedding_grads), finite, dense_norm = (
            self._gradients_only(state, embedded, dense, count)
        )
        embedding_grads = self._on_host(embedding_grads)
        applied = bool(finite)
        for embedder, context in zip(self.embedders, contexts, strict=True):
            if applied:
                embedder.apply_gradients(context, embedding_grads)
            else:
                embedder.discard(context)
        factor = 1.0
        if applied:
            norm = math.sqrt(float(dense_norm) ** 2 + self.sparse_optimizer.gradient_sq_norm())
            factor = min(1.0, self.clip_global_norm / norm) if norm > 0 else 1.0
            self.sparse_optimizer.scale_gradients(factor)
        state = self._clipped_update(state, model_state, param_grads, factor, finite)
        if applied:
            self.sparse_optimizer.step()
        return state, StepOutput(loss, embedding_grads, applied, aux)

    def _gradients_impl(self, state: TrainState, embedded, dense, count):
        """Loss, model state, aux, gradients, whether all are finite and the dense gradients'
        global norm."""
        self.trace_count += 1  # runs when jit traces, i.e. once per compilation
        loss, model_state, aux, grads = self._gradients(state, embedded, dense, count)
        finite = all_finite(grads) & jnp.isfinite(loss)
        return loss, model_state, aux, grads, finite, optax.tree.norm(grads[0])

    def _clipped_update_impl(self, state: TrainState, model_state, param_grads, factor, finite):
        scaled = jax.tree.map(lambda g: g * factor.astype(g.dtype), param_grads)
        return self._apply(state, model_state, scaled, finite)

    def _data_parallel_step(self, state: TrainState, embedded, dense, count):
        """:meth:`_dense_impl` with the dense gradients averaged over the ranks."""
        model_state, aux, embedding_grads, packed = self._local_step(state, embedded, dense, count)
        total = self.communicator.all_reduce(
            np.asarray(packed), "sum", "all-reduce of dense gradients"
        )
        state, loss, finite = self._update(state, model_state, total)
        return state, StepOutput(loss, embedding_grads, finite, aux)

    def _local_step_impl(self, state: TrainState, embedded, dense, count):
        """This rank's gradients; the dense ones packed with the loss and a marker that is NaN
        when the embeddings' gradients are not finite, for one all-reduce."""
        self.trace_count += 1  # runs when jit traces, i.e. once per compilation
        loss, model_state, aux, (param_grads, embedding_grads) = self._gradients(
            state, embedded, dense, count
        )
        marker = jnp.where(all_finite(embedding_grads), 0.0, jnp.nan)
        tail = jnp.stack([marker, loss]).astype(jnp.float32)
        packed = jnp.concatenate([ravel_pytree(param_grads)[0].astype(jnp.float32), tail])
        return model_state, aux, embedding_grads, packed

    def _update_impl(self, state: TrainState, model_state, total):
        """The update from the ranks' summed :meth:`_local_step_impl` buffers: the mean
        gradient, the mean loss, and whether every rank's gradients were finite."""
        mean = total / self.communicator.world_size
        finite = jnp.isfinite(total).all()
        param_grads = ravel_pytree(state.params)[1](mean[:-2])
        return self._apply(state, model_state, param_grads, finite), mean[-1], finite

    def _gradients(self, state: TrainState, embedded, dense, count, joined=()):
        """Mean loss, new model state, aux and the gradients w.r.t. (params, activations), the
        ``joined`` runs' activations given as one array each."""
        loss_scale = state.loss_scale

        def objective(params, embedded):
            batch = self.policy.cast_to_compute({**dense, **split(embedded, joined)})
            model = self.binding.bind(self.policy.cast_to_compute(params), state.model_state)
            out = self.loss_fn(model, batch)
            losses, aux = out if self.has_aux else (out, None)
            mean = masked_mean(self.policy.cast_to_output(losses), count)
            scaled = mean if loss_scale is None else loss_scale.scale_loss(mean)
            return scaled, (mean, self.binding.model_state(model, state.model_state), aux)

        grad_fn = jax.value_and_grad(objective, argnums=(0, 1), has_aux=True)
        (_, (loss, model_state, aux)), grads = grad_fn(state.params, embedded)
        if loss_scale is not None:
            grads = loss_scale.unscale(grads)
        return loss, model_state, aux, grads

    def _apply(self, state: TrainState, model_state, param_grads, finite) -> TrainState:
        """``state`` after the optax update; a step whose loss or gradients are not
        ``finite`` keeps the old leaves (and lowers the loss scale)."""
        updates, opt_state = self.optimizer.update(param_grads, state.opt_state, state.params)
        new = (optax.apply_updates(state.params, updates), opt_state, model_state)
        params, opt_state, model_state = _select(
            finite, new, (state.params, state.opt_state, state.model_state)
        )
        loss_scale = state.loss_scale
        if loss_scale is not None:
            loss_scale = loss_scale.adjust(finite)
        return state.replace(
            params=params, opt_state=opt_state, model_state=model_state, loss_scale=loss_scale
        )


class TrainStep:
    """Trains ``params`` with ``optimizer`` and the embedders' tables with ``sparse_optimizer``:
    a :class:`PureStep` and its current :attr:`train_state`; ``step(batch)`` returns the
    :class:`StepOutput`.

    Args:
        loss_fn: ``(params, batch) -> per_example_loss`` (module docstring).
        params: the dense parameters (a pytree).
        optimizer, sparse_optimizer, embedders, policy, buckets, has_aux, communicator, binding:
            as :class:`PureStep`.
        state: non-trainable model state, for a ``binding`` that uses it.
        loss_scale: a :class:`DynamicLossScale` (for float16 compute), or None.
    """

    def __init__(
        self,
        loss_fn: Callable,
        params: Any,
        optimizer: optax.GradientTransformation,
        sparse_optimizer: SparseOptimizer,
        embedders: Sequence[Embedder],
        *,
        state: Any = None,
        loss_scale: DynamicLossScale | None = None,
        **kwargs,
    ) -> None:
        self.pure = PureStep(loss_fn, optimizer, sparse_optimizer, embedders, **kwargs)
        self.train_state = self.pure.init(params, state, loss_scale)

    def __call__(self, batch: Mapping) -> StepOutput:
        """Train on ``batch`` (see :meth:`PureStep.__call__`)."""
        self.train_state, metrics = self.pure(self.train_state, batch)
        return metrics

    def __getattr__(self, name: str):
        if name in _PURE_STEP_ATTRIBUTES:  # the pure step's settings, e.g. ``step.buckets``
            return getattr(self.pure, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def params(self):
        """The dense parameters."""
        return self.train_state.params

    @params.setter
    def params(self, value) -> None:
        self.train_state = self.train_state.replace(params=value)

    @property
    def state(self):
        """The non-trainable model state."""
        return self.train_state.model_state

    @state.setter
    def state(self, value) -> None:
        self.train_state = self.train_state.replace(model_state=value)

    @property
    def opt_state(self):
        """The dense optimizer's state."""
        return self.train_state.opt_state

    @opt_state.setter
    def opt_state(self, value) -> None:
        self.train_state = self.train_state.replace(opt_state=value)

    @property
    def loss_scale(self) -> DynamicLossScale | None:
        return self.train_state.loss_scale

    @loss_scale.setter
    def loss_scale(self, value) -> None:
        self.train_state = self.train_state.replace(loss_scale=value)


_PURE_STEP_ATTRIBUTES = {
    "binding", "buckets", "communicator", "dense", "device", "embedders", "has_aux", "loss_fn",
    "mesh", "optimizer", "place", "policy", "sparse_optimizer", "trace_count",
}  # fmt: skip


def _checked_clip(clip, sparse_optimizer, communicator) -> float | None:
    if clip is None:
        return None
    if not clip > 0:
        raise ValueError(f"clip_global_norm must be > 0, got {clip}")
    if communicator is not None or sparse_optimizer.accumulation_steps != 1:
        raise ValueError(
            "clip_global_norm serves one process without gradient accumulation; clip each "
            "part apart there (optax.clip_by_global_norm in the dense optimizer and in a "
            "sparse optax transformation)"
        )
    return float(clip)


def masked_mean(losses: jax.Array, count: jax.Array) -> jax.Array:
    """Mean of per-example ``losses`` (batch first, any trailing dims averaged) over the first
    ``count`` examples."""
    if jnp.ndim(losses) == 0:
        raise ValueError(
            "loss_fn returned a scalar: return the per-example losses (e.g. without .mean()); "
            "the step pads batches to bucket sizes and averages over the real samples"
        )
    per_example = losses.reshape(losses.shape[0], -1).mean(axis=1)
    mask = jnp.arange(per_example.shape[0]) < count
    return jnp.where(mask, per_example, 0.0).sum() / count


def _select(condition: jax.Array, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), on_true, on_false)


def _data_parallel_communicator(
    communicator: Communicator | None, embedders: Sequence[Embedder]
) -> Communicator | None:
    """``communicator``, else the embedders' or the default one; None for a single rank."""
    candidates = (communicator, *(e.communicator for e in embedders), default_communicator())
    chosen = next((c for c in candidates if c is not None), None)
    return chosen if chosen is not None and chosen.world_size > 1 else None


def _disjoint_features(embedders: Sequence[Embedder]) -> set[str]:
    features: set[str] = set()
    for embedder in embedders:
        shared = features.intersection(embedder.features)
        if shared:
            raise ValueError(f"features {sorted(shared)} are embedded by two embedders")
        features.update(embedder.features)
    return features


def _batch_size(batch: Mapping) -> int:
    """Samples in ``batch``: the leading dimension of its entries (all must agree)."""
    sizes = {key: _rows(value) for key, value in batch.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"batch entries have different numbers of rows: {sizes}")
    return next(iter(sizes.values()))


def _rows(value) -> int:
    if isinstance(value, Ragged):
        return value.num_rows
    if isinstance(value, Padded):
        return value.shape[0]
    return int(np.shape(value)[0])
