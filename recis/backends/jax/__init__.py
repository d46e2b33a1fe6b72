"""RecIS embeddings for JAX: growable hash-table embeddings beside jitted dense models.

The sparse work runs in the engine, outside ``jit``: :class:`Embedder` looks features up and
returns their activations as ``jax.Array`` s sharing the engine's memory; the jitted dense step
returns gradients w.r.t. them; :meth:`Embedder.apply_gradients` and a :class:`SparseOptimizer`
update the rows. :class:`TrainStep` (and :mod:`recis.backends.jax.flax` for Flax models) runs the
whole step, with padded batch sizes and mixed precision.

Variable-length features come as :class:`~recis.core.ragged.Ragged`, or as dense ids with a
mask (:class:`Padded`) or with a ``padding_id`` declared in their ``EmbeddingOption``.

64-bit ids given as JAX arrays need ``jax_enable_x64``; NumPy ids and
:class:`~recis.core.ragged.Ragged` inputs always keep their 64 bits.
"""

from recis.backends.jax import sparse_optax
from recis.backends.jax.buckets import BatchBuckets, pad_rows
from recis.backends.jax.embedding import Embedder, LookupContext
from recis.backends.jax.mesh import DataParallel
from recis.backends.jax.optim import SparseOptimizer, rules
from recis.backends.jax.options import EmbeddingOption
from recis.backends.jax.precision import DynamicLossScale, Policy
from recis.backends.jax.train import PureStep, StepOutput, TrainState, TrainStep
from recis.core.padded import Padded

__all__ = [
    "BatchBuckets",
    "DataParallel",
    "DynamicLossScale",
    "Embedder",
    "EmbeddingOption",
    "LookupContext",
    "Padded",
    "Policy",
    "PureStep",
    "SparseOptimizer",
    "StepOutput",
    "TrainState",
    "TrainStep",
    "pad_rows",
    "rules",
    "sparse_optax",
]
