"""Admission and eviction bookkeeping on the GPU (``cuda/policies.cu``), on CuPy arrays.

The functions :func:`touch_step`, :func:`touch_count`, :func:`stale` and :func:`lowest` are the GPU
twins of :class:`recis.core.policies.HostBookkeeping` (same signatures), run on a ``"cuda"``
:class:`~recis.core.row_store.RowStore` whose usage slot is an int64 field. :func:`advance_counts`
is the count update of frequency admission.

>>> touch_step.__module__
'recis.core.cuda.policies'
"""

from __future__ import annotations

import numpy as np

from recis.core.cuda import loader
from recis.core.cuda.row_store import block_arguments

SOURCE = "policies.cu"


def touch_step(store, rows, slot: str, step: int) -> None:
    """Set the usage slot of ``rows`` to ``step`` (a last-seen or last-used step)."""
    rows = _rows(rows)
    _run("touch_step", rows.size, (*_slot(store, slot), rows, np.int64(rows.size), np.int64(step)))


def touch_count(store, rows, slot: str, counts) -> None:
    """Add ``counts`` (int64, one per row) to the usage slot of ``rows``; repeated rows add up."""
    cupy = loader.require_cupy("eviction bookkeeping on the GPU")
    rows, counts = _rows(rows), cupy.ascontiguousarray(cupy.asarray(counts), np.int64)
    if counts.shape != rows.shape:
        raise ValueError(f"counts: expected one per row ({rows.size}), got shape {counts.shape}")
    _run("touch_count", rows.size, (*_slot(store, slot), rows, np.int64(rows.size), counts))


def stale(store, rows, slot: str, threshold: int):
    """Positions (int64, ascending) of the ``rows`` whose usage slot is below ``threshold``."""
    cupy = loader.require_cupy("eviction bookkeeping on the GPU")
    rows = _rows(rows)
    flags = cupy.empty(rows.size, np.uint8)
    args = (*_slot(store, slot), rows, np.int64(rows.size), np.int64(threshold), flags)
    _run("select_stale", rows.size, args)
    return cupy.flatnonzero(flags)  # waits for the device: the size of the result


def lowest(store, rows, slot: str, count: int):
    """Positions of the ``count`` rows with the lowest usage slot, ties going to lower rows."""
    cupy = loader.require_cupy("eviction bookkeeping on the GPU")
    rows = _rows(rows)
    scores = store.gather(rows, slot)
    by_row = cupy.argsort(rows)  # stable: the second sort keeps row order among equal scores
    by_score = by_row[cupy.argsort(scores[by_row])]
    return by_score[:count]


def advance_counts(counts, rows, is_new, seen, threshold: int):
    """Frequency admission's count update over distinct keys: ``counts[rows[i]]`` becomes
    ``(0 if is_new[i] else counts[rows[i]]) + seen[i]``; returns the bool mask of the keys whose
    count reached ``threshold``. ``counts`` is updated in place (CuPy int64)."""
    cupy = loader.require_cupy("frequency admission on the GPU")
    if not isinstance(counts, cupy.ndarray) or counts.dtype != np.int64:
        raise TypeError("counts: expected a CuPy int64 array (updated in place)")
    rows = _rows(rows)
    is_new = cupy.ascontiguousarray(cupy.asarray(is_new), np.bool_)
    seen = cupy.ascontiguousarray(cupy.asarray(seen), np.int64)
    admitted = cupy.empty(rows.size, np.bool_)
    args = (counts, rows, is_new, seen, np.int64(threshold), admitted, np.int64(rows.size))
    _run("advance_counts", rows.size, args)
    return admitted


def _slot(store, slot: str) -> tuple:
    blocks, field = store.blocks(slot), store.fields[slot]
    if field.dtype != np.int64 or field.shape != ():
        raise TypeError(f"RowStore {store.name!r}: slot {slot!r} must hold one int64 per row")
    return block_arguments(blocks)


def _rows(rows):
    cupy = loader.require_cupy("eviction bookkeeping on the GPU")
    return cupy.ascontiguousarray(cupy.asarray(rows), np.int64)


def _run(name: str, total: int, args: tuple) -> None:
    if total:
        loader.launch(loader.kernel(SOURCE, name), total, args)
