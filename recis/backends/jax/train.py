"""``TrainStep``: one training step of a JAX dense model over RecIS embeddings.

A step (1) looks the batch's sparse features up in the engine, padding the batch to a bucket
size; (2) runs the jitted dense step: loss, gradients w.r.t. the dense parameters and the
embedding activations, and the optax update; (3) hands the activations' gradients back to the
engine and steps the sparse optimizer. Only (2) is jitted, once per bucket size.

The loss is ``loss_fn(params, state, batch) -> (per_example_loss, state)``: ``batch`` holds the
activations under the feature names and the other entries of the input batch, padded to the
bucket size; ``state`` is non-trainable model state (``None`` if the model has none). The step
minimises the mean loss over the real (unpadded) samples. With ``has_aux=True`` the loss returns
``((per_example_loss, aux), state)``, and ``aux`` (e.g. predictions, padded like the batch) comes
back in :attr:`StepOutput.aux`.

**Data parallelism.** With a communicator of several ranks (by default the embedders', i.e.
the world of ``jax.distributed`` or ``torch.distributed``), each rank trains on its own batches:
the jitted step is split in two — gradients, then the optax update — and between them the dense
gradients travel as one flat buffer in one all-reduce per step, which also carries each rank's
loss (the step reports their mean) and whether its gradients are finite (all ranks skip a step
together). The embeddings' gradients go to the ranks owning their rows at the sparse optimizer's
step. Non-trainable model state stays each rank's own. Within a process, ``mesh`` splits each
batch over local devices (:class:`~recis.backends.jax.mesh.DataParallel`).

>>> import numpy as np, optax, jax.numpy as jnp
>>> from recis.backends.jax import Embedder, EmbeddingOption, SparseOptimizer, rules
>>> embedder = Embedder({"f": EmbeddingOption(embedding_dim=2, shared_name="f")})
>>> def loss_fn(params, state, batch):
...     return (batch["f"] @ params["w"] - batch["y"]) ** 2, state
>>> step = TrainStep(loss_fn, {"w": jnp.ones(2)}, optax.sgd(0.1),
...                  SparseOptimizer(embedder, rules.SGD(), 0.1), [embedder])
>>> for batch_size in (4, 4, 3):
...     out = step({"f": np.arange(batch_size)[:, None], "y": np.ones(batch_size, np.float32)})
>>> round(float(out.loss), 4), step.trace_count
(0.6533, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from recis.backends.jax.buckets import BatchBuckets, pad_rows
from recis.backends.jax.embedding import Embedder, LookupContext
from recis.backends.jax.mesh import DataParallel
from recis.backends.jax.optim import SparseOptimizer
from recis.backends.jax.precision import DynamicLossScale, Policy, all_finite
from recis.core.padded import Padded
from recis.core.ragged import Ragged
from recis.distributed.communicator import Communicator
from recis.distributed.world import default_communicator


class StepOutput(NamedTuple):
    """What a step returns: the mean ``loss`` of the real samples, the gradients w.r.t. the
    activations (padded to the bucket), whether the update was ``applied`` (a step whose loss
    or gradients are not finite is not, dense and sparse alike), and the loss's ``aux`` output
    (None without ``has_aux``)."""

    loss: jax.Array
    embedding_grads: dict[str, jax.Array]
    applied: bool
    aux: Any = None


class TrainStep:
    """Trains ``params`` with ``optimizer`` and the embedders' tables with ``sparse_optimizer``.

    Args:
        loss_fn: ``(params, state, batch) -> (per_example_loss, state)``, see the module doc.
        params: the dense parameters (a pytree).
        optimizer: an optax transformation for ``params``.
        sparse_optimizer: the :class:`SparseOptimizer` of the embedders' tables.
        embedders: the :class:`Embedder` s whose features the batch holds.
        state: non-trainable model state passed through ``loss_fn``.
        policy: compute-dtype :class:`Policy` of the loss (default float32).
        loss_scale: a :class:`DynamicLossScale` (for float16 compute), or None.
        buckets: the :class:`BatchBuckets` of padded batch sizes (default: adaptive).
        has_aux: ``loss_fn`` returns ``((per_example_loss, aux), state)`` (module docstring).
        communicator: the ranks the dense gradients are averaged over (default: that of the
            embedders, else :func:`~recis.distributed.world.default_communicator`); one of a
            single rank means one process.
        mesh: a :class:`~recis.backends.jax.mesh.DataParallel` to split each batch over this
            process's devices (default: the dense step runs on the first local device).
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
        policy: Policy | None = None,
        loss_scale: DynamicLossScale | None = None,
        buckets: BatchBuckets | None = None,
        has_aux: bool = False,
        communicator: Communicator | None = None,
        mesh: DataParallel | None = None,
    ) -> None:
        # committed to a device like the step's outputs, so that step 2 reuses step 1's program
        self.device = jax.local_devices()[0]
        self.mesh = mesh
        place = mesh.replicate if mesh is not None else partial(jax.device_put, device=self.device)
        self.loss_fn = loss_fn
        self.params, self.state = place((params, state))
        self.optimizer = optimizer
        self.opt_state = place(optimizer.init(self.params))
        self.sparse_optimizer = sparse_optimizer
        self.embedders = list(embedders)
        self.policy = policy if policy is not None else Policy()
        self.loss_scale = place(loss_scale)
        self.buckets = buckets if buckets is not None else BatchBuckets()
        self.has_aux = has_aux
        self.trace_count = 0
        self._features = _disjoint_features(self.embedders)
        self.communicator = _data_parallel_communicator(communicator, self.embedders)
        self._dense_step = jax.jit(self._dense_step_impl)
        self._local_step = jax.jit(self._local_step_impl)
        self._update = jax.jit(self._update_impl)

    def __call__(self, batch: Mapping) -> StepOutput:
        """Train on ``batch`` (sparse features as dense ids or Ragged, other entries as arrays)."""
        num_samples = _batch_size(batch)
        size = self.buckets(num_samples)
        if self.mesh is not None:
            size = self.mesh.padded_size(size)
        embedded, contexts = self._lookup(batch, size)
        if self.mesh is None and self.device.platform != "cpu":  # host arrays from the engine
            embedded = jax.device_put(embedded, self.device)
        dense = {k: pad_rows(v, size) for k, v in batch.items() if k not in self._features}
        if self.mesh is not None:
            embedded, dense = self.mesh.split_batch((embedded, dense))
        dense_step = self._dense_step if self.communicator is None else self._data_parallel_step
        out = dense_step(
            self.params, self.state, self.opt_state, self.loss_scale, embedded, dense,
            jnp.asarray(num_samples, jnp.int32),
        )  # fmt: skip
        self.params, self.state, self.opt_state, self.loss_scale, loss, grads, finite, aux = out
        applied = bool(finite)
        if self.mesh is not None:  # gathered from the devices for the engine
            grads = {feature: np.asarray(grad) for feature, grad in grads.items()}
        for embedder, context in zip(self.embedders, contexts, strict=True):
            if applied:
                embedder.apply_gradients(context, grads)
            else:
                embedder.discard(context)
        if applied:
            self.sparse_optimizer.step()
        return StepOutput(loss, grads, applied, aux)

    def _lookup(self, batch: Mapping, size: int) -> tuple[dict, list[LookupContext]]:
        embedded, contexts = {}, []
        for embedder in self.embedders:
            out, context = embedder.lookup(batch, batch_size=size)
            embedded.update(out)
            contexts.append(context)
        return embedded, contexts

    def _dense_step_impl(self, params, state, opt_state, loss_scale, embedded, dense, count):
        self.trace_count += 1  # runs when jit traces, i.e. once per compilation
        loss, new_state, aux, grads = self._gradients(
            params, state, loss_scale, embedded, dense, count
        )
        finite = all_finite(grads) & jnp.isfinite(loss)
        param_grads, embedding_grads = grads
        new = self._apply(params, state, opt_state, loss_scale, new_state, param_grads, finite)
        return (*new, loss, embedding_grads, finite, aux)

    def _data_parallel_step(self, params, state, opt_state, loss_scale, embedded, dense, count):
        """:meth:`_dense_step_impl` with the dense gradients averaged over the ranks."""
        new_state, aux, embedding_grads, packed = self._local_step(
            params, state, loss_scale, embedded, dense, count
        )
        total = self.communicator.all_reduce(
            np.asarray(packed), "sum", "all-reduce of dense gradients"
        )
        out = self._update(params, state, opt_state, loss_scale, new_state, total)
        *new, loss, finite = out
        return (*new, loss, embedding_grads, finite, aux)

    def _local_step_impl(self, params, state, loss_scale, embedded, dense, count):
        """This rank's gradients; the dense ones packed with the loss and a marker that is NaN
        when the embeddings' gradients are not finite, for one all-reduce."""
        self.trace_count += 1  # runs when jit traces, i.e. once per compilation
        loss, new_state, aux, (param_grads, embedding_grads) = self._gradients(
            params, state, loss_scale, embedded, dense, count
        )
        marker = jnp.where(all_finite(embedding_grads), 0.0, jnp.nan)
        tail = jnp.stack([marker, loss]).astype(jnp.float32)
        packed = jnp.concatenate([ravel_pytree(param_grads)[0].astype(jnp.float32), tail])
        return new_state, aux, embedding_grads, packed

    def _update_impl(self, params, state, opt_state, loss_scale, new_state, total):
        """The update from the ranks' summed :meth:`_local_step_impl` buffers: the mean gradient,
        the mean loss, and whether every rank's gradients were finite."""
        mean = total / self.communicator.world_size
        finite = jnp.isfinite(total).all()
        param_grads = ravel_pytree(params)[1](mean[:-2])
        new = self._apply(params, state, opt_state, loss_scale, new_state, param_grads, finite)
        return (*new, mean[-1], finite)

    def _gradients(self, params, state, loss_scale, embedded, dense, count):
        """Mean loss, new state, aux and the gradients w.r.t. (params, activations)."""

        def objective(params, embedded):
            batch = self.policy.cast_to_compute({**dense, **embedded})
            out, new_state = self.loss_fn(self.policy.cast_to_compute(params), state, batch)
            losses, aux = out if self.has_aux else (out, None)
            mean = masked_mean(self.policy.cast_to_output(losses), count)
            scaled = mean if loss_scale is None else loss_scale.scale_loss(mean)
            return scaled, (mean, new_state, aux)

        grad_fn = jax.value_and_grad(objective, argnums=(0, 1), has_aux=True)
        (_, (loss, new_state, aux)), grads = grad_fn(params, embedded)
        if loss_scale is not None:
            grads = loss_scale.unscale(grads)
        return loss, new_state, aux, grads

    def _apply(self, params, state, opt_state, loss_scale, new_state, param_grads, finite):
        """(params, state, opt_state, loss_scale) after the optax update; a step whose loss or
        gradients are not ``finite`` keeps the old ones (and lowers the loss scale)."""
        updates, new_opt_state = self.optimizer.update(param_grads, opt_state, params)
        new = (optax.apply_updates(params, updates), new_state, new_opt_state)
        new = _select(finite, new, (params, state, opt_state))
        if loss_scale is not None:
            loss_scale = loss_scale.adjust(finite)
        return (*new, loss_scale)


def masked_mean(losses: jax.Array, count: jax.Array) -> jax.Array:
    """Mean of per-example ``losses`` (batch first, any trailing dims averaged) over the first
    ``count`` examples."""
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
