"""Fused sequence truncation kernels: keep at most ``seq_lens[f]`` entries per row.

Arguments are ``numba.typed.List``\\ s with one entry per feature (plain lists for the twins),
plus per-feature ``seq_lens`` (int64[F]) and ``keep_last`` (bool[F]: True keeps the last
``seq_len`` entries, i.e. truncates on the left). ``weights[f]`` is either empty (no weights; then
``out_weights[f]`` is empty too) or one float32 per value. Output value buffers may be longer
than needed; only the prefix up to the last output offset is written. ``drop_nums[f][r]`` and
``pad_nums[f][r]`` receive how many entries row ``r`` lost and how many it lacks to reach
``seq_len``. Each kernel has a NumPy twin ``<name>_reference`` with the same signature.

>>> from numba.typed import List
>>> out, out_offsets = np.empty(3, np.int64), np.empty(3, np.int64)
>>> drops, pads = np.empty(2, np.int64), np.empty(2, np.int64)
>>> empty = np.empty(0, np.float32)
>>> fused_truncate_rows(List([np.array([1, 2, 3])]), List([np.array([0, 3, 3])]),
...     List([empty]), np.array([2]), np.array([True]), List([out]), List([out_offsets]),
...     List([empty]), List([drops]), List([pads]))
>>> out[:out_offsets[-1]].tolist(), out_offsets.tolist(), drops.tolist(), pads.tolist()
([2, 3], [0, 2, 2], [1, 0], [0, 2])
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def fused_truncate_rows(
    values,
    offsets,
    weights,
    seq_lens,
    keep_last,
    out_values,
    out_offsets,
    out_weights,
    drop_nums,
    pad_nums,
):
    """Keep the first or last ``seq_lens[f]`` values of every row (one offset level)."""
    for f in range(len(values)):
        _truncate_rows(
            values[f],
            offsets[f],
            weights[f],
            seq_lens[f],
            keep_last[f],
            out_values[f],
            out_offsets[f],
            out_weights[f],
            drop_nums[f],
            pad_nums[f],
        )


@numba.njit
def _truncate_rows(
    values, offsets, weights, seq_len, keep_last, out, out_offsets, out_weights, drops, pads
):
    out_offsets[0] = 0
    for row in range(offsets.shape[0] - 1):
        start, length = offsets[row], offsets[row + 1] - offsets[row]
        keep = min(length, seq_len)
        drops[row], pads[row] = length - keep, seq_len - keep
        source = start + length - keep if keep_last else start
        _copy_span(values, weights, source, keep, out, out_weights, out_offsets[row])
        out_offsets[row + 1] = out_offsets[row] + keep


@numba.njit
def _copy_span(values, weights, source, count, out, out_weights, target):
    """Copy ``count`` values (and weights, when there are any) from ``source`` to ``target``."""
    out[target : target + count] = values[source : source + count]
    if out_weights.shape[0] > 0:
        out_weights[target : target + count] = weights[source : source + count]


def fused_truncate_rows_reference(
    values,
    offsets,
    weights,
    seq_lens,
    keep_last,
    out_values,
    out_offsets,
    out_weights,
    drop_nums,
    pad_nums,
):
    """Twin of :func:`fused_truncate_rows`."""
    for f in range(len(values)):
        starts, lengths = offsets[f][:-1], np.diff(offsets[f])
        keep = np.minimum(lengths, seq_lens[f])
        drop_nums[f][:] = lengths - keep
        pad_nums[f][:] = seq_lens[f] - keep
        first = starts + (lengths - keep if keep_last[f] else 0)
        kept = _spans(first, keep)
        out_offsets[f][0] = 0
        np.cumsum(keep, out=out_offsets[f][1:])
        out_values[f][: kept.size] = values[f][kept]
        if len(out_weights[f]):
            out_weights[f][: kept.size] = weights[f][kept]


@numba.njit(cache=True)
def fused_truncate_sequences(
    values,
    outer_offsets,
    inner_offsets,
    weights,
    seq_lens,
    keep_last,
    out_values,
    out_inner_offsets,
    out_weights,
    drop_nums,
    pad_nums,
):
    """Keep the first or last ``seq_lens[f]`` inner rows of every sequence (two offset levels).

    Every output sequence has exactly ``seq_len`` inner rows: the kept rows, then empty rows
    (``out_inner_offsets[f]`` has ``num_sequences · seq_len + 1`` entries). Inner rows are copied
    whole.
    """
    for f in range(len(values)):
        _truncate_sequences(
            values[f],
            outer_offsets[f],
            inner_offsets[f],
            weights[f],
            seq_lens[f],
            keep_last[f],
            out_values[f],
            out_inner_offsets[f],
            out_weights[f],
            drop_nums[f],
            pad_nums[f],
        )


@numba.njit
def _truncate_sequences(
    values, outer, inner, weights, seq_len, keep_last, out, out_inner, out_weights, drops, pads
):
    out_inner[0] = 0
    for sequence in range(outer.shape[0] - 1):
        length = outer[sequence + 1] - outer[sequence]
        keep = min(length, seq_len)
        drops[sequence], pads[sequence] = length - keep, seq_len - keep
        first = outer[sequence] + (length - keep if keep_last else 0)
        base = sequence * seq_len
        for j in range(seq_len):
            size = inner[first + j + 1] - inner[first + j] if j < keep else 0
            out_inner[base + j + 1] = out_inner[base + j] + size
        count = inner[first + keep] - inner[first]
        _copy_span(values, weights, inner[first], count, out, out_weights, out_inner[base])


def fused_truncate_sequences_reference(
    values,
    outer_offsets,
    inner_offsets,
    weights,
    seq_lens,
    keep_last,
    out_values,
    out_inner_offsets,
    out_weights,
    drop_nums,
    pad_nums,
):
    """Twin of :func:`fused_truncate_sequences`."""
    for f in range(len(values)):
        outer, inner, seq_len = outer_offsets[f], inner_offsets[f], seq_lens[f]
        lengths = np.diff(outer)
        keep = np.minimum(lengths, seq_len)
        drop_nums[f][:] = lengths - keep
        pad_nums[f][:] = seq_len - keep
        first_rows = outer[:-1] + (lengths - keep if keep_last[f] else 0)
        rows = _spans(first_rows, keep)
        sizes = np.zeros((len(lengths), seq_len), np.int64)
        sizes[np.arange(seq_len) < keep[:, None]] = np.diff(inner)[rows]
        out_inner_offsets[f][0] = 0
        np.cumsum(sizes.reshape(-1), out=out_inner_offsets[f][1:])
        kept = _spans(inner[rows], inner[rows + 1] - inner[rows])
        out_values[f][: kept.size] = values[f][kept]
        if len(out_weights[f]):
            out_weights[f][: kept.size] = weights[f][kept]


def _spans(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``range(start, start + count)`` over the pairs."""
    ends = np.cumsum(counts)
    return np.arange(ends[-1] if len(ends) else 0) + np.repeat(starts - ends + counts, counts)
