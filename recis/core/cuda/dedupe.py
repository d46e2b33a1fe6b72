"""GPU twin of the deduplication kernel (:mod:`recis.core.kernels.dedupe`) on CuPy arrays.

:func:`unique_inverse` has the signature and the results of its CPU namesake: a zeroed scratch
table gets one slot per distinct (key, tag) in one probe pass (``cuda/dedupe.cu``), holding the
pair's first position; a prefix sum then ranks the first occurrences. Work is queued on CuPy's
current stream and nothing waits for it: the unique count comes back as a device array.
"""

from __future__ import annotations

import numpy as np

from recis.core.cuda import id_map, loader

SOURCE = "dedupe.cu"


def unique_inverse(keys, tags, tag_stride, scratch, shift, regions, unique, inverse):
    """Fill ``unique`` with the positions of first occurrences (in order) and ``inverse``; return
    the unique count as a 0-d device array (``unique`` past it is left as it was).
    ``scratch`` is a zeroed ``int64[capacity, 2]``, ``capacity = 2**(64 -
    shift)`` larger than ``len(keys)``; ``regions`` is ignored."""
    n = keys.size
    mask = np.int64(scratch.shape[0] - 1)
    shift, stride, count = np.int32(shift), np.int64(tag_stride), np.int64(n)
    _run("dedupe_claim", n, (scratch, mask, shift, keys, tags, stride, count, inverse))
    _run("dedupe_first_positions", n, (scratch, inverse, count))
    return id_map.rank_first_occurrences(inverse, unique)


def occurrence_counts(index, size: int, weights=None):
    """How often each of ``size`` distinct keys occurs, given each occurrence's ``index`` among
    them (CuPy int64 in ``[0, size)``), as int64 on the device — or, given int64 ``weights``
    (one per occurrence), their sum per key; unlike ``cupy.bincount`` this reads nothing back."""
    cupy = loader.require_cupy("counting occurrences on the GPU")
    counts = cupy.zeros(size, np.int64)
    index = cupy.ascontiguousarray(index, np.int64)
    n, size = np.int64(index.size), np.int64(size)
    if weights is None:
        _run("dedupe_count_occurrences", index.size, (index, n, size, counts))
    else:
        weights = cupy.ascontiguousarray(weights, np.int64)
        _run("dedupe_sum_weights", index.size, (index, weights, n, size, counts))
    return counts


def _run(name: str, n: int, args: tuple) -> None:
    loader.launch(loader.kernel(SOURCE, name), n, args)
