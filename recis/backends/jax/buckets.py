"""Batch-size buckets: pad batches to a few fixed sizes so that ``jit`` compiles once per size.

>>> buckets = BatchBuckets()
>>> [buckets(n) for n in (512, 512, 100, 600, 512)]  # a new, larger size becomes a bucket
[512, 512, 512, 600, 512]
>>> BatchBuckets([64, 256])(65)
256
>>> pad_rows(np.array([[1, 2]]), 3).tolist()
[[1, 2], [0, 0], [0, 0]]
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from recis.core import arrays as interop
from recis.core.ragged import Ragged


class BatchBuckets:
    """The padded batch size of a batch of ``n`` samples.

    With ``sizes``, the smallest size ≥ ``n`` (a larger batch is a ``ValueError``). Without, the
    sizes seen so far are the buckets: a batch fits the smallest one that holds it, and a larger
    batch makes a new bucket of its own size. Training with a fixed batch size thus compiles one
    step, its short last batch included.
    """

    def __init__(self, sizes: Sequence[int] | None = None) -> None:
        self.fixed = sizes is not None
        self.sizes = sorted({int(s) for s in sizes}) if sizes is not None else []
        if any(s < 1 for s in self.sizes):
            raise ValueError(f"sizes: bucket sizes must be positive, got {list(sizes)}")

    def __call__(self, n: int) -> int:
        position = bisect.bisect_left(self.sizes, n)
        if position < len(self.sizes):
            return self.sizes[position]
        if self.fixed:
            raise ValueError(f"a batch of {n} samples exceeds the largest bucket {self.sizes[-1]}")
        self.sizes.append(n)
        return n

    def __repr__(self) -> str:
        return f"BatchBuckets({self.sizes})"


def pad_rows(value, size: int):
    """``value`` (NumPy, JAX or a :class:`Ragged`, densified) padded with zero rows to
    ``size``."""
    if isinstance(value, Ragged):
        value = value.to_dense()
    rows = value.shape[0]
    if rows == size:
        return value
    if rows > size:
        raise ValueError(f"{rows} rows do not fit the padded size {size}")
    if isinstance(value, np.ndarray):
        out = interop.zeros((size, *value.shape[1:]), value.dtype)
        out[:rows] = value
        return out
    padding = [(0, size - rows)] + [(0, 0)] * (value.ndim - 1)
    return _jnp().pad(value, padding)


def _jnp():
    import jax.numpy

    return jax.numpy
