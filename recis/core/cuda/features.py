"""GPU twins of the fused feature kernels (:mod:`recis.core.kernels.feature_ops`,
``feature_cross``, ``feature_truncate``, ``string_hash``) on CuPy arrays.

Each function applies one kind of op to the columns of all features of a group in one launch
per step (``cuda/features.cu``), with results bit-identical to the CPU kernels. The features'
array addresses and parameters travel to the device in one small host-to-device copy per call.
Work is queued on CuPy's current stream; the value-wise ops and the string hashes never wait for
it. The cross and the truncations learn their output sizes on the device: they copy a few int64
totals back, the one host synchronisation of each call.

Value-wise ops write into outputs the caller allocated, as the CPU kernels do. The cross and the
truncations allocate their outputs; a feature's results are views of buffers shared by the group.

>>> SOURCE
'features.cu'
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recis.core.cuda import loader

SOURCE = "features.cu"
_HASH_KERNELS = {"farm": "recis_fused_farm_fingerprint64", "murmur": "recis_fused_murmur_hash64a"}
_BUCKETIZE_KERNELS = {
    np.dtype(np.float32): "recis_fused_bucketize_float32",
    np.dtype(np.float64): "recis_fused_bucketize_float64",
    np.dtype(np.int64): "recis_fused_bucketize_int64",
}
_VALUE_SIZES = (1, 2, 4, 8)  # value bytes the truncation kernels copy

# A ragged column on the device: (values, int64 offsets, float32 weights or None).
Side = tuple


def fused_mod(values: Sequence, divisors, magics, shifts, out: Sequence) -> None:
    """``out[f] = values[f] % divisors[f]`` on uint64 arrays (see ``feature_ops.fused_mod``).

    ``divisors``, ``magics`` and ``shifts`` are host uint64[F] arrays.
    """
    starts = _starts(len(v) for v in values)
    params = _upload(
        starts,
        _addresses(values, np.uint64, "values"),
        _addresses(out, np.uint64, "out"),
        *(np.asarray(p, np.uint64) for p in (divisors, magics, shifts)),
    )
    _run("recis_fused_mod", starts[-1], params[0], _count(values), *params[1:])


def fused_bucketize(values: Sequence, boundaries: Sequence[np.ndarray], out: Sequence) -> None:
    """``out[f][i]`` = how many of the sorted host float64 ``boundaries[f]`` are ≤
    ``values[f][i]`` (int64 out; values of one dtype: float32, float64 or int64)."""
    dtype = np.dtype(values[0].dtype)
    if dtype not in _BUCKETIZE_KERNELS:
        raise TypeError(f"values: expected float32, float64 or int64 arrays, got {dtype}")
    starts = _starts(len(v) for v in values)
    params = _upload(
        starts,
        _addresses(values, dtype, "values"),
        _addresses(out, np.int64, "out"),
        np.concatenate([np.zeros(0), *(np.asarray(b, np.float64) for b in boundaries)]),
        _starts(len(b) for b in boundaries),
    )
    _run(_BUCKETIZE_KERNELS[dtype], starts[-1], params[0], _count(values), *params[1:])


def fused_multi_hash(values: Sequence, multipliers, primes, buckets, out: Sequence) -> None:
    """``out[f][k, i] = ((values[f][i] · multipliers[f, k]) mod primes[f, k]) mod buckets[f, k]``
    for ``k < out[f].shape[0]`` (int64; the parameters are host int64 [F, 4] arrays)."""
    starts = _starts(len(v) for v in values)
    width = np.int64(np.shape(multipliers)[1])
    params = _upload(
        starts,
        _addresses(values, np.int64, "values"),
        _addresses(out, np.int64, "out"),
        np.array([o.shape[0] for o in out], np.int64),
        *(np.asarray(p, np.int64) for p in (multipliers, primes, buckets)),
    )
    head, tail = params[:4], params[4:]
    _run("recis_fused_multi_hash", starts[-1], head[0], _count(values), *head[1:], width, *tail)


def fused_hash_strings(data: Sequence, offsets: Sequence, hash_type: str, out: Sequence) -> None:
    """``out[f][i]`` = the ``hash_type`` hash (``"farm"``: Fingerprint64, ``"murmur"``:
    MurmurHash64A) of ``data[f][offsets[f][i]:offsets[f][i + 1]]`` (uint8 data, int64 offsets,
    uint64 out)."""
    if hash_type not in _HASH_KERNELS:
        raise ValueError(f"hash_type: expected one of {tuple(_HASH_KERNELS)}, got {hash_type!r}")
    starts = _starts(len(o) - 1 for o in offsets)
    params = _upload(
        starts,
        _addresses(data, np.uint8, "data"),
        _addresses(offsets, np.int64, "offsets"),
        _addresses(out, np.uint64, "out"),
    )
    _run(_HASH_KERNELS[hash_type], starts[-1], params[0], _count(offsets), *params[1:])


def fused_feature_cross(pairs: Sequence[tuple[Side, Side]]) -> list[tuple]:
    """The cross of every pair of int64 ragged sides ``(x, y)`` with equal row counts (see
    :mod:`recis.core.features.cross`): per pair, ``(hashes, row_offsets, weights)`` — int64
    MurmurHash64A of the distinct pairs in left-major order, int64 offsets, float32 weights."""
    features = len(pairs)
    if not features:
        return []
    sides = [x for x, _ in pairs] + [y for _, y in pairs]
    item_starts = _starts(len(values) for values, _, _ in sides)
    row_starts = _starts(len(offsets) - 1 for _, offsets, _ in sides)
    device = _upload(
        item_starts,
        row_starts,
        _addresses([s[0] for s in sides], np.int64, "values"),
        _addresses([s[1] for s in sides], np.int64, "offsets"),
        _addresses([s[2] for s in sides], np.float32, "weights"),
        row_starts[:features] + np.arange(features),
    )
    side_args = (np.int64(2 * features), *device[:5])
    unique = _unique_rows(side_args, item_starts[-1], row_starts[-1])
    left_rows = row_starts[features]
    pair_counts = _xp().empty(left_rows, np.int64)
    _run("recis_cross_pair_counts", left_rows, *side_args, unique[2], pair_counts)
    pair_starts = _running_totals(pair_counts)
    offsets = _segment_offsets(device[1], device[5], features, pair_starts)
    bounds = _xp().asnumpy(pair_starts[device[1][: features + 1]])
    hashes = _xp().empty(int(bounds[-1]), np.int64)
    weights = _xp().empty(int(bounds[-1]), np.float32)
    ids, unique_weights, counts = unique
    pair_args = (pair_starts, counts, ids, unique_weights, hashes, weights)
    _run("recis_cross_pairs", hashes.size, *side_args, *pair_args)
    return [
        (
            hashes[bounds[f] : bounds[f + 1]],
            offsets[row_starts[f] + f : row_starts[f + 1] + f + 1],
            weights[bounds[f] : bounds[f + 1]],
        )
        for f in range(features)
    ]


def fused_truncate_rows(columns: Sequence[Side], seq_lens, keep_last) -> list[tuple]:
    """Keep the first or last ``seq_lens[f]`` values of every row of one-level ragged columns
    ``(value bits, offsets, weights or None)``, values of one unsigned dtype; ``keep_last`` is
    True where truncation is on the left. Per column: ``(values, offsets, weights or None,
    drop_nums, pad_nums)``, as ``feature_truncate.fused_truncate_rows`` gives them."""
    if not columns:
        return []
    plan = _TruncationPlan(columns, seq_lens, keep_last)
    rows = plan.row_starts[-1]
    kept, drops, pads = (_xp().empty(rows, np.int64) for _ in range(3))
    _run("recis_truncate_row_sizes", rows, *plan.column_args, kept, drops, pads)
    kept_starts = _running_totals(kept)
    offsets = _segment_offsets(plan.row_args[0], plan.row_args[1], len(columns), kept_starts)
    values, weights = plan.value_outputs()
    kernel = f"recis_truncate_row_values_{plan.value_size}"
    _run(kernel, plan.item_starts[-1], *plan.column_args, kept_starts, values, weights)
    totals = _xp().asnumpy(kept_starts[plan.row_args[0]])
    return plan.results(values, weights, offsets, plan.row_starts, totals, drops, pads)


def fused_truncate_sequences(columns: Sequence[tuple], seq_lens, keep_last) -> list[tuple]:
    """Keep the first or last ``seq_lens[f]`` inner rows of every sequence of two-level ragged
    columns ``(value bits, outer offsets, inner offsets, weights or None)`` and pad every
    sequence with empty rows to ``seq_lens[f]``. Per column: ``(values, inner offsets, weights or
    None, drop_nums, pad_nums)``, as ``feature_truncate.fused_truncate_sequences`` gives them."""
    if not columns:
        return []
    outer = [(values, outer, weights) for values, outer, _, weights in columns]
    inner = [c[2] for c in columns]
    plan = _TruncationPlan(outer, seq_lens, keep_last, inner)
    slots = plan.slot_starts[-1]
    sizes = _xp().empty(slots, np.int64)
    drops, pads = (_xp().empty(plan.row_starts[-1], np.int64) for _ in range(2))
    args = (*plan.column_args, *plan.inner_args)
    _run("recis_truncate_slot_sizes", slots, *args, sizes, drops, pads)
    totals = _running_totals(sizes)
    offsets = _segment_offsets(plan.inner_args[2], plan.slot_shifted, len(columns), totals)
    values, weights = plan.value_outputs()
    kernel = f"recis_truncate_sequence_values_{plan.value_size}"
    _run(kernel, plan.item_starts[-1], *args, totals, values, weights)
    bounds = _xp().asnumpy(totals[plan.inner_args[2]])
    return plan.results(values, weights, offsets, plan.slot_starts, bounds, drops, pads)


class _TruncationPlan:
    """The device arguments shared by a truncation's kernels, and the slicing of its results.

    ``columns`` are ``(value bits, offsets, weights or None)``; ``inner`` (3-D) the inner offsets.
    """

    def __init__(self, columns, seq_lens, keep_last, inner=None) -> None:
        self.value_size = _value_size(columns)
        count = len(columns)
        self.has_weights = [weights is not None for _, _, weights in columns]
        self.item_starts = _starts(len(values) for values, _, _ in columns)
        self.row_starts = _starts(len(offsets) - 1 for _, offsets, _ in columns)
        sections = [
            self.item_starts,
            self.row_starts,
            _addresses([c[0] for c in columns], f"u{self.value_size}", "values"),
            _addresses([c[1] for c in columns], np.int64, "offsets"),
            _addresses([c[2] for c in columns], np.float32, "weights"),
            np.asarray(seq_lens, np.int64),
            np.asarray(keep_last, np.int64),
            self.row_starts[:count] + np.arange(count),
        ]
        if inner is not None:
            rows = np.diff(self.row_starts)
            self.slot_starts = _starts(rows * np.asarray(seq_lens, np.int64))
            sections += [
                _addresses(inner, np.int64, "inner offsets"),
                np.array([len(i) - 1 for i in inner], np.int64),
                self.slot_starts,
                self.slot_starts[:count] + np.arange(count),
            ]
        device = _upload(*sections)
        self.column_args = (np.int64(count), *device[:7])
        self.row_args = (device[1], device[7])  # row starts, shifted row starts
        self.inner_args = tuple(device[8:11])  # inner offsets, inner counts, slot starts
        self.slot_shifted = device[11] if inner is not None else None

    def value_outputs(self):
        """Flat value and weight buffers, as long as the input (weights empty when unused)."""
        xp, size = _xp(), int(self.item_starts[-1])
        values = xp.empty(size, np.dtype(f"u{self.value_size}"))
        weights = xp.empty(size if any(self.has_weights) else 0, np.float32)
        return values, weights

    def results(self, values, weights, offsets, starts, totals, drops, pads) -> list[tuple]:
        """Per column: its slices of the flat outputs (``totals[f]``: running output size at
        segment start ``starts[f]``; offsets hold one extra entry per column)."""
        out = []
        for f, has_weights in enumerate(self.has_weights):
            first, size = self.item_starts[f], int(totals[f + 1] - totals[f])
            rows = slice(self.row_starts[f], self.row_starts[f + 1])
            out.append(
                (
                    values[first : first + size],
                    offsets[starts[f] + f : starts[f + 1] + f + 1],
                    weights[first : first + size] if has_weights else None,
                    drops[rows],
                    pads[rows],
                )
            )
        return out


def _unique_rows(side_args: tuple, elements: int, rows: int) -> tuple:
    """Every side's rows made distinct: flat ids, summed weights and per-row counts."""
    xp = _xp()
    first = xp.empty(elements, np.uint8)
    ids, weights = xp.empty(elements, np.int64), xp.empty(elements, np.float32)
    counts = xp.zeros(rows, np.int64)
    _run("recis_cross_mark_first", elements, *side_args, first)
    _run("recis_cross_unique", elements, *side_args, first, ids, weights, counts)
    return ids, weights, counts


def _segment_offsets(starts, shifted, segments: int, totals):
    """Every segment's offsets (its running totals less its first), one extra entry each."""
    size = int(totals.size - 1 + segments)
    out = _xp().empty(size, np.int64)
    _run("recis_segment_offsets", size, starts, shifted, np.int64(segments), totals, out)
    return out


def _running_totals(counts):
    """``[0, counts[0], counts[0] + counts[1], ...]`` (int64, one entry more than ``counts``)."""
    totals = _xp().empty(counts.size + 1, np.int64)
    totals[:1] = 0
    if counts.size:
        _xp().cumsum(counts, out=totals[1:])
    return totals


def _value_size(columns) -> int:
    sizes = {np.dtype(values.dtype).itemsize for values, _, _ in columns}
    if len(sizes) != 1 or not sizes <= set(_VALUE_SIZES):
        raise TypeError(f"values: expected one value size among {_VALUE_SIZES}, got {sizes}")
    return sizes.pop()


def _starts(sizes) -> np.ndarray:
    """int64 ``[0, s0, s0 + s1, ...]``: the first flat item of every feature, then the total."""
    sizes = np.fromiter(sizes, np.int64)
    starts = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=starts[1:])
    return starts


def _count(arrays: Sequence) -> np.int64:
    return np.int64(len(arrays))


def _addresses(arrays: Sequence, dtype, name: str) -> np.ndarray:
    """uint64 device addresses of contiguous ``dtype`` arrays (0 for None)."""
    dtype = np.dtype(dtype)
    for array in arrays:
        if array is None:
            continue
        if np.dtype(array.dtype) != dtype or not array.flags.c_contiguous:
            raise TypeError(f"{name}: expected contiguous {dtype} arrays, got {array.dtype}")
    return np.array([0 if a is None else _address(a) for a in arrays], np.uint64)


def _upload(*sections: np.ndarray) -> list:
    """Copy host arrays of 8-byte items to the device in one transfer; one device view each."""
    host = [np.ascontiguousarray(s).reshape(-1).view(np.int64) for s in sections]
    device = _xp().asarray(np.concatenate(host))
    bounds = _starts(len(h) for h in host)
    return [device[bounds[k] : bounds[k + 1]] for k in range(len(host))]


def _run(name: str, n, *args) -> None:
    """Launch kernel ``name`` over ``n`` items with arguments ``(n, *args)``."""
    n = int(n)
    _launch(_kernel(name), n, (np.int64(n), *args))


def _xp():
    return loader.require_cupy("GPU feature ops")


def _kernel(name: str):
    return loader.kernel(SOURCE, name)


def _launch(kernel, n: int, args: tuple) -> None:
    loader.launch(kernel, n, args)


def _address(array) -> int:
    return array.data.ptr
