"""Fused feature kernels against their NumPy twins on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba.typed import List

from recis.core.kernels import feature_cross, feature_ops, feature_truncate

SEEDS = st.integers(0, 2**32 - 1)
FEATURES = st.integers(1, 5)


def random_offsets(rng, rows: int, max_length: int) -> np.ndarray:
    lengths = rng.integers(0, max_length + 1, rows)
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def random_ids(rng, n: int) -> np.ndarray:
    """int64 ids mixing small repeats, negatives and extremes."""
    small = rng.integers(-5, 6, n)
    wide = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, n, dtype=np.int64)
    return np.where(rng.random(n) < 0.6, small, wide)


def run_both(kernel, twin, inputs: list, outputs: list) -> tuple[list, list]:
    """Call the kernel on typed Lists and the twin on copies; return both outputs."""
    twin_outputs = [[a.copy() for a in o] if isinstance(o, list) else o.copy() for o in outputs]
    kernel(*(List(a) if isinstance(a, list) else a for a in inputs + outputs))
    twin(*inputs, *twin_outputs)
    return outputs, twin_outputs


def assert_same(outputs, twin_outputs, lengths=None):
    for k, (out, twin) in enumerate(zip(outputs, twin_outputs, strict=True)):
        for f, (a, b) in enumerate(zip(out, twin, strict=True)):
            n = None if lengths is None or lengths[k] is None else lengths[k][f]
            np.testing.assert_array_equal(a[:n], b[:n], err_msg=f"output {k}, feature {f}")


EDGE_DIVISORS = [
    1,
    2,
    3,
    7,
    10,
    1024,
    10**6 + 3,
    2**32 - 1,
    2**32 + 1,
    2**62 + 1,
    2**63,
    2**63 + 5,
    2**64 - 2,
    2**64 - 1,
]


def mod_inputs(divisors, rng):
    values = [random_ids(rng, int(rng.integers(0, 50))).view(np.uint64) for _ in divisors]
    values[0] = np.concatenate(
        [values[0], np.array([0, 1, 2**63 - 1, 2**63, 2**64 - 1], np.uint64)]
    )
    magic = [feature_ops.modulo_magic(d) if d > 1 else (0, 0) for d in divisors]
    params = [
        np.array(p, np.uint64) for p in (divisors, [m for m, _ in magic], [s for _, s in magic])
    ]
    return [values, *params], [[np.zeros_like(v) for v in values]]


@settings(max_examples=60, deadline=None)
@given(SEEDS, FEATURES)
def test_fused_mod_matches_twin(seed, features):
    rng = np.random.default_rng(seed)
    divisors = rng.integers(1, 2**64 - 1, features, dtype=np.uint64, endpoint=True).tolist()
    divisors[0] = int(rng.integers(1, 20))
    out, twin = run_both(
        feature_ops.fused_mod, feature_ops.fused_mod_reference, *mod_inputs(divisors, rng)
    )
    assert_same(out, twin)


def test_fused_mod_on_edge_divisors():
    inputs, outputs = mod_inputs(EDGE_DIVISORS, np.random.default_rng(0))
    out, twin = run_both(feature_ops.fused_mod, feature_ops.fused_mod_reference, inputs, outputs)
    assert_same(out, twin)
    assert out[0][0][-5:].tolist() == [0, 0, 0, 0, 0]  # divisor 1


@settings(max_examples=60, deadline=None)
@given(SEEDS, FEATURES, st.sampled_from(["float32", "float64", "int64"]))
def test_fused_bucketize_matches_twin(seed, features, dtype):
    rng = np.random.default_rng(seed)
    values = [(rng.normal(0, 10, rng.integers(0, 50))).astype(dtype) for _ in range(features)]
    if dtype != "int64":
        values[0][: min(2, len(values[0]))] = np.nan
    edges = [np.sort(rng.normal(0, 10, rng.integers(0, 8))) for _ in range(features)]
    edges = [np.concatenate([e, e[:1]]) if len(e) else e for e in edges]  # repeated boundaries
    edges = [np.sort(e) for e in edges]
    outs = [np.full(len(v), -1, np.int64) for v in values]
    out, twin = run_both(
        feature_ops.fused_bucketize, feature_ops.fused_bucketize_reference, [values, edges], [outs]
    )
    assert_same(out, twin)


@settings(max_examples=60, deadline=None)
@given(SEEDS, FEATURES)
def test_fused_multi_hash_matches_twin(seed, features):
    rng = np.random.default_rng(seed)
    values = [random_ids(rng, rng.integers(0, 40)) for _ in range(features)]
    hashes = rng.integers(1, 5, features)
    multipliers = np.tile(np.array([1, 3, 5, 7], np.int64), (features, 1))
    primes = rng.integers(2, 10**12, (features, 4))
    buckets = rng.integers(1, 10**6, (features, 4))
    outs = [np.zeros((k, len(v)), np.int64) for k, v in zip(hashes, values, strict=True)]
    out, twin = run_both(
        feature_ops.fused_multi_hash,
        feature_ops.fused_multi_hash_reference,
        [values, multipliers, primes, buckets],
        [outs],
    )
    assert_same(out, twin)
    assert all(
        (o >= 0).all() and (o < buckets[f, : len(o), None]).all() for f, o in enumerate(out[0])
    )


def truncate_inputs(rng, features, weighted):
    offsets = [random_offsets(rng, rng.integers(0, 8), 6) for _ in range(features)]
    values = [random_ids(rng, o[-1]).view(np.uint64) for o in offsets]
    weights = [
        rng.normal(size=len(v)).astype(np.float32) if weighted else np.empty(0, np.float32)
        for v in values
    ]
    return offsets, values, weights


@settings(max_examples=60, deadline=None)
@given(SEEDS, FEATURES, st.booleans())
def test_fused_truncate_rows_matches_twin(seed, features, weighted):
    rng = np.random.default_rng(seed)
    offsets, values, weights = truncate_inputs(rng, features, weighted)
    seq_lens = rng.integers(1, 5, features)
    keep_last = rng.random(features) < 0.5
    rows = [len(o) - 1 for o in offsets]
    outs = [
        [np.zeros_like(v) for v in values],
        [np.zeros(r + 1, np.int64) for r in rows],
        [np.zeros_like(w) for w in weights],
        [np.zeros(r, np.int64) for r in rows],
        [np.zeros(r, np.int64) for r in rows],
    ]
    out, twin = run_both(
        feature_truncate.fused_truncate_rows,
        feature_truncate.fused_truncate_rows_reference,
        [values, offsets, weights, seq_lens, keep_last],
        outs,
    )
    written = [o[-1] for o in out[1]]
    assert_same(out, twin, lengths=[written, None, written if weighted else None, None, None])


@settings(max_examples=60, deadline=None)
@given(SEEDS, FEATURES, st.booleans())
def test_fused_truncate_sequences_matches_twin(seed, features, weighted):
    rng = np.random.default_rng(seed)
    outer = [random_offsets(rng, rng.integers(0, 6), 5) for _ in range(features)]
    inner = [random_offsets(rng, o[-1], 4) for o in outer]
    values = [random_ids(rng, i[-1]).view(np.uint64) for i in inner]
    weights = [
        rng.normal(size=len(v)).astype(np.float32) if weighted else np.empty(0, np.float32)
        for v in values
    ]
    seq_lens = rng.integers(1, 5, features)
    keep_last = rng.random(features) < 0.5
    sequences = [len(o) - 1 for o in outer]
    outs = [
        [np.zeros_like(v) for v in values],
        [np.zeros(s * n + 1, np.int64) for s, n in zip(sequences, seq_lens, strict=True)],
        [np.zeros_like(w) for w in weights],
        [np.zeros(s, np.int64) for s in sequences],
        [np.zeros(s, np.int64) for s in sequences],
    ]
    out, twin = run_both(
        feature_truncate.fused_truncate_sequences,
        feature_truncate.fused_truncate_sequences_reference,
        [values, outer, inner, weights, seq_lens, keep_last],
        outs,
    )
    written = [o[-1] for o in out[1]]
    assert_same(out, twin, lengths=[written, None, written if weighted else None, None, None])


@pytest.mark.parametrize("max_length", [6, 200])  # the scan and the sort path
@pytest.mark.parametrize("weighted", [False, True])
def test_fused_unique_rows_matches_twin(max_length, weighted):
    rng = np.random.default_rng(max_length + weighted)
    offsets = [random_offsets(rng, rng.integers(0, 12), max_length) for _ in range(4)]
    values = [random_ids(rng, o[-1]) for o in offsets]
    weights = [
        rng.normal(size=len(v)).astype(np.float32) if weighted else np.empty(0, np.float32)
        for v in values
    ]
    outs = [
        [np.zeros_like(v) for v in values],
        [np.zeros_like(o) for o in offsets],
        [np.zeros(len(v), np.float32) for v in values],
    ]
    out, twin = run_both(
        feature_cross.fused_unique_rows,
        feature_cross.fused_unique_rows_reference,
        [values, offsets, weights],
        outs,
    )
    written = [o[-1] for o in out[1]]
    assert_same(out, twin, lengths=[written, None, written])
    longest = max(np.diff(o).max(initial=0) for o in offsets)
    assert (longest > feature_cross.SMALL_ROW) == (max_length > feature_cross.SMALL_ROW)


@settings(max_examples=60, deadline=None)
@given(SEEDS, FEATURES)
def test_fused_cross_kernels_match_twins(seed, features):
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 6, features)
    left_offsets = [random_offsets(rng, r, 4) for r in rows]
    right_offsets = [random_offsets(rng, r, 4) for r in rows]
    cross = [np.zeros(r + 1, np.int64) for r in rows]
    out, twin = run_both(
        feature_cross.fused_cross_offsets,
        feature_cross.fused_cross_offsets_reference,
        [left_offsets, right_offsets],
        [cross],
    )
    assert_same(out, twin)
    cross = out[0]
    bases = np.cumsum([0] + [c[-1] for c in cross])
    sides = []
    for offsets in (left_offsets, right_offsets):
        sides += [
            [random_ids(rng, o[-1]) for o in offsets],
            offsets,
            [rng.normal(size=o[-1]).astype(np.float32) for o in offsets],
        ]
    flat = [
        np.zeros(bases[-1], np.int64),
        np.zeros(bases[-1], np.int64),
        np.zeros(bases[-1], np.float32),
    ]
    out, twin = run_both(
        feature_cross.fused_cross_rows,
        feature_cross.fused_cross_rows_reference,
        [*sides, cross, bases],
        flat,
    )
    for a, b in zip(out, twin, strict=True):
        np.testing.assert_array_equal(a, b)
