"""RecIS's custom ops as ``torch.ops.recis.*``, over the engine.

Importing this package registers them with ``torch.library``: the schemas of RecIS's C++ ops
(see :mod:`.registry`), one kernel per op for every device, a fake kernel each (so the ops trace
under ``torch.compile``) and a backward where the op is differentiable (``gather``,
``segment_reduce_forward``). ``import recis`` imports it when torch is already loaded, and every
torch module of RecIS imports it.
"""

from recis.backends.torch.ops import (
    blocks,
    columns,
    features,
    hashtable_factory,
    id_slots,
    metrics,
    optimizers,
    ragged_ops,
    samples,
    segments,
    sequences,
)

__all__ = [
    "blocks",
    "columns",
    "features",
    "hashtable_factory",
    "id_slots",
    "metrics",
    "optimizers",
    "ragged_ops",
    "samples",
    "segments",
    "sequences",
]
