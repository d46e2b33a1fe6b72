"""Engine feature ops against plain-Python references, exact RecIS values, and errors."""

from __future__ import annotations

import bisect
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recis.core import features as ops
from recis.core.ragged import Ragged
from recis.core.string_hash import hash_bytes

INT64 = st.integers(-(2**63), 2**63 - 1)
IDS = st.one_of(st.integers(-5, 5), INT64)
WEIGHTS = st.floats(-4, 4, width=32)


def wrap64(value: int) -> int:
    return (value + 2**63) % 2**64 - 2**63


def ragged(rows, weights=None, dtype=np.int64) -> Ragged:
    values = np.array([v for row in rows for v in row], dtype=dtype)
    offsets = np.cumsum([0] + [len(row) for row in rows]).astype(np.int64)
    flat_weights = None
    if weights is not None:
        flat_weights = np.array([w for row in weights for w in row], np.float32)
    return Ragged(values, offsets, flat_weights)


def rows_of(column: Ragged, level_values=None) -> list[list]:
    values = column.values if level_values is None else level_values
    offsets = column.offsets[-1]
    return [values[offsets[r] : offsets[r + 1]].tolist() for r in range(len(offsets) - 1)]


@st.composite
def weighted_rows(draw, elements=IDS, max_rows=8, max_length=6):
    rows = draw(st.lists(st.lists(elements, max_size=max_length), max_size=max_rows))
    if not draw(st.booleans()):
        return rows, None
    return rows, [[draw(WEIGHTS) for _ in row] for row in rows]


# ---------------------------------------------------------------------------------------------
# value-wise ops


@settings(max_examples=80, deadline=None)
@given(weighted_rows(), st.integers(1, 2**64 - 1), st.integers(1, 1000))
def test_mod_matches_reference_and_keeps_structure(data, big_mod, small_mod):
    rows, weights = data
    column = ragged(rows, weights)
    for m in (big_mod, small_mod):
        result = ops.mod(column, m)
        expected = [[wrap64((v % 2**64) % m) for v in row] for row in rows]
        assert rows_of(result) == expected
        assert result.offsets[0] is column.offsets[0] and result.weights is column.weights


def test_mod_on_dense_keeps_shape():
    dense = np.array([[-1, 7], [2**63 - 1, 0]])
    np.testing.assert_array_equal(ops.mod(dense, 10), [[5, 7], [7, 0]])


def compared(boundaries, dtype) -> list[float]:
    if np.dtype(dtype) in (np.float16, np.float32):
        return [float(np.float32(b)) for b in boundaries]
    return [float(b) for b in boundaries]


def bucket_reference(value, edges) -> int:
    return len(edges) if np.isnan(value) else bisect.bisect_right(edges, float(value))


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.floats(-100, 100, width=32) | st.just(float("nan")), max_size=30),
    st.lists(st.floats(-100, 100, width=32), max_size=8),
    st.sampled_from(["float32", "float64", "int64", "int32", "float16"]),
)
def test_bucketize_matches_upper_bound(values, boundaries, dtype):
    boundaries = sorted(boundaries)
    if np.dtype(dtype).kind == "i":
        values = [int(v) for v in values if not np.isnan(v)]
    array = np.array(values, dtype=dtype)
    edges = compared(boundaries, dtype)
    expected = [bucket_reference(v, edges) for v in array.tolist()]
    assert ops.bucketize(array, boundaries).tolist() == expected


def test_bucketize_follows_the_value_precision():
    # 0.1 as float32 equals the float32 boundary; 0.1 as float64 equals the float64 boundary
    assert ops.bucketize(np.array([0.1], np.float32), [0.1]).tolist() == [1]
    assert ops.bucketize(np.array([0.1]), [0.1]).tolist() == [1]
    assert ops.bucketize(np.array([0.7], np.float32), [0.7]).tolist() == [1]
    assert ops.bucketize(np.array([0.09999999]), [0.1]).tolist() == [0]


def test_fused_bucketize_mixes_dtypes_and_structures():
    columns = [np.array([1.5, 30.0], np.float32), ragged([[5], [40, 7]]), np.array([[np.nan]])]
    results = ops.fused_bucketize(columns, [[1, 10], [6, 10, 50], [0]])
    assert results[0].tolist() == [1, 2]
    assert rows_of(results[1]) == [[0], [2, 1]]
    assert results[2].tolist() == [[1]]


def largest_prime_by_trial_division(n: int) -> int:
    while any(n % d == 0 for d in range(2, int(n**0.5) + 1)):
        n -= 1
    return n


@settings(max_examples=60, deadline=None)
@given(weighted_rows(), st.lists(st.integers(1, 3000), min_size=1, max_size=4))
def test_id_multi_hash_matches_reference(data, buckets):
    rows, weights = data
    column = ragged(rows, weights)
    results = ops.id_multi_hash(column, buckets)
    for k, (result, bucket) in enumerate(zip(results, buckets, strict=True)):
        prime = largest_prime_by_trial_division((29, 47, 67, 83)[k] * bucket)
        multiplier = (1, 3, 5, 7)[k]
        expected = [[wrap64(v * multiplier) % prime % bucket for v in row] for row in rows]
        assert rows_of(result) == expected
        assert result.weights is column.weights


def test_id_multi_hash_exact_values():
    results = ops.id_multi_hash(np.array([1001, 1002, 1003]), [1000] * 4)
    assert [r.tolist() for r in results] == [[1, 2, 3], [3, 6, 9], [5, 10, 15], [7, 14, 21]]


# ---------------------------------------------------------------------------------------------
# string hashing


def strings_column(strings: list[list[bytes]], dtype=np.int8) -> Ragged:
    flat = [s for row in strings for s in row]
    data = np.frombuffer(b"".join(flat), np.uint8).view(dtype)
    string_offsets = np.cumsum([0] + [len(s) for s in flat]).astype(np.int64)
    row_offsets = np.cumsum([0] + [len(row) for row in strings]).astype(np.int64)
    return Ragged(data, (row_offsets, string_offsets))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.binary(max_size=80), max_size=4), max_size=6),
    st.sampled_from(["farm", "murmur"]),
    st.sampled_from([np.int8, np.uint8]),
)
def test_hash_column_matches_hash_bytes(strings, hash_type, dtype):
    column = strings_column(strings, dtype)
    result = ops.hash_column(column, hash_type)
    assert rows_of(result) == [[hash_bytes(s, hash_type) for s in row] for row in strings]
    np.testing.assert_array_equal(result.offsets[0], column.offsets[0])


def test_hash_exact_values_and_string_weights():
    column = strings_column([[bytes([0, 1, 2])], [bytes([1, 2, 3])]])
    farm = ops.hash_column(column, "farm", string_weights=np.array([0.5, 2], np.float32))
    assert farm.values.tolist() == [-7736835464683084646, -5546720800891377920]
    assert farm.weights.tolist() == [0.5, 2.0]
    murmur = ops.hash_column(column, "murmur")
    assert murmur.values.tolist() == [-4003751876240412087, -1042754718167355375]


def test_hash_of_one_level_is_dense_and_fused_groups_by_type():
    one_level = Ragged(np.array([0, 1, 2, 1, 2, 3], np.uint8), np.array([0, 3, 6]))
    two_level = strings_column([[bytes([1, 2, 3]), b""], []])
    farm, murmur, farm_again = ops.fused_hash_column(
        [one_level, two_level, two_level], ["farm", "murmur", "farm"]
    )
    assert isinstance(farm, np.ndarray)
    assert farm.tolist() == [-7736835464683084646, -5546720800891377920]
    assert rows_of(murmur) == [[-1042754718167355375, hash_bytes(b"", "murmur")], []]
    assert rows_of(farm_again) == [[-5546720800891377920, hash_bytes(b"", "farm")], []]


# ---------------------------------------------------------------------------------------------
# feature cross


def cross_reference(x_rows, x_weights, y_rows, y_weights):
    def distinct(row, weights):
        sums: dict[int, np.float32] = {}
        for i, v in enumerate(row):
            w = np.float32(1) if weights is None else np.float32(weights[i])
            sums[v] = sums.get(v, np.float32(0)) + w
        return sums

    rows, row_weights = [], []
    for r, (x, y) in enumerate(zip(x_rows, y_rows, strict=True)):
        xs = distinct(x, None if x_weights is None else x_weights[r])
        ys = distinct(y, None if y_weights is None else y_weights[r])
        pairs = [(a, b) for a in xs for b in ys]
        rows.append([hash_bytes(struct.pack("<qq", a, b), "murmur") for a, b in pairs])
        row_weights.append([np.float32(xs[a] * ys[b]) for a, b in pairs])
    return rows, row_weights


@st.composite
def cross_inputs(draw):
    num_rows = draw(st.integers(0, 6))
    sides = []
    for _ in range(2):
        rows = draw(st.lists(st.lists(IDS, max_size=5), min_size=num_rows, max_size=num_rows))
        weights = None
        if draw(st.booleans()):
            weights = [[draw(WEIGHTS) for _ in row] for row in rows]
        sides.append((rows, weights))
    return sides


@settings(max_examples=80, deadline=None)
@given(cross_inputs())
def test_feature_cross_matches_reference(sides):
    (x_rows, x_weights), (y_rows, y_weights) = sides
    result = ops.feature_cross(ragged(x_rows, x_weights), ragged(y_rows, y_weights))
    rows, weights = cross_reference(x_rows, x_weights, y_rows, y_weights)
    assert rows_of(result) == rows
    np.testing.assert_array_equal(
        result.weights, np.array([w for row in weights for w in row], np.float32)
    )


def test_feature_cross_exact_values_and_two_levels():
    x = ragged([[1001], [1002], [1003]], [[1.0], [2.0], [3.0]])
    y = ragged([[1], [2], [3]], [[0.5], [0.5], [2.0]])
    crossed = ops.feature_cross(x, y)
    assert crossed.values.tolist() == [
        -7808879811642834040,
        -4967483181219983279,
        1752425377096056168,
    ]
    assert crossed.weights.tolist() == [0.5, 1.0, 6.0]
    outer = np.array([0, 2, 3])
    nested = ops.feature_cross(
        Ragged(x.values, (outer, x.offsets[0])), Ragged(y.values, (outer, y.offsets[0]))
    )
    np.testing.assert_array_equal(nested.offsets[0], outer)
    np.testing.assert_array_equal(nested.values, crossed.values)


def test_feature_cross_long_rows_use_first_occurrence_order():
    rng = np.random.default_rng(7)
    x_row = rng.integers(-50, 50, 300).tolist()  # longer than the linear-scan limit
    result = ops.feature_cross(ragged([x_row]), ragged([[9]]))
    expected, weights = cross_reference([x_row], None, [[9]], None)
    assert rows_of(result) == expected
    assert result.weights.tolist() == [float(w) for w in weights[0]]


def test_feature_cross_rejects_mismatched_rows():
    with pytest.raises(ValueError, match="row counts differ"):
        ops.feature_cross(ragged([[1], [2]]), ragged([[1]]))
    with pytest.raises(TypeError, match=r"columns\[1\]: expected int64"):
        ops.feature_cross(ragged([[1]]), ragged([[1]], dtype=np.int32))


# ---------------------------------------------------------------------------------------------
# sequence truncation


def truncate_reference(rows, seq_len, left):
    kept = [row[max(len(row) - seq_len, 0) :] if left else row[:seq_len] for row in rows]
    drops = [len(row) - len(k) for row, k in zip(rows, kept, strict=True)]
    return kept, drops, [seq_len - len(k) for k in kept]


@settings(max_examples=80, deadline=None)
@given(weighted_rows(max_length=10), st.integers(1, 6), st.sampled_from(["left", "right"]))
def test_truncate_2d_matches_reference(data, seq_len, side):
    rows, weights = data
    result = ops.sequence_truncate(ragged(rows, weights), seq_len, side)
    kept, drops, pads = truncate_reference(rows, seq_len, side == "left")
    assert rows_of(result.ragged) == kept
    assert result.drop_nums.tolist() == drops and result.pad_nums.tolist() == pads
    if weights is not None:
        kept_weights, _, _ = truncate_reference(weights, seq_len, side == "left")
        assert rows_of(result.ragged, result.ragged.weights) == [
            [float(np.float32(w)) for w in row] for row in kept_weights
        ]


@st.composite
def sequences(draw):
    seqs = draw(st.lists(st.lists(st.lists(IDS, max_size=3), max_size=6), max_size=5))
    return seqs


@settings(max_examples=80, deadline=None)
@given(sequences(), st.integers(1, 4), st.sampled_from(["left", "right"]))
def test_truncate_3d_matches_reference(seqs, seq_len, side):
    lists = [inner for seq in seqs for inner in seq]
    inner = ragged(lists)
    outer = np.cumsum([0] + [len(seq) for seq in seqs]).astype(np.int64)
    column = Ragged(inner.values, (outer, inner.offsets[0]))
    result = ops.sequence_truncate(column, seq_len, side, n_dims=3)
    kept, drops, pads = truncate_reference(seqs, seq_len, side == "left")
    padded = [seq + [[]] * (seq_len - len(seq)) for seq in kept]
    np.testing.assert_array_equal(result.ragged.offsets[0], np.arange(len(seqs) + 1) * seq_len)
    assert rows_of(result.ragged) == [inner for seq in padded for inner in seq]
    assert result.drop_nums.tolist() == drops and result.pad_nums.tolist() == pads


def test_truncate_keeps_dtype_and_checks_length():
    column = Ragged(np.array([1.5, 2.5, 3.5], np.float32), np.array([0, 3]))
    result = ops.sequence_truncate(column, 2, "left")
    assert result.ragged.values.dtype == np.float32 and result.ragged.values.tolist() == [2.5, 3.5]
    with pytest.raises(ValueError, match="a row holds 3 entries, more than seq_len=2"):
        ops.sequence_truncate(column, 2, check_length=True)
    with pytest.raises(ValueError, match="n_dims=3 needs 2 offset level"):
        ops.sequence_truncate(column, 2, n_dims=3)


# ---------------------------------------------------------------------------------------------
# errors


def test_errors_name_the_column_and_argument():
    with pytest.raises(TypeError, match="column: expected int64 values, got float32"):
        ops.mod(np.zeros(2, np.float32), 3)
    with pytest.raises(ValueError, match=r"mod_value: must lie in \[1, 2\*\*64 - 1\]"):
        ops.mod(np.zeros(2, np.int64), 0)
    with pytest.raises(ValueError, match="hash_type: expected one of"):
        ops.hash_column(strings_column([[b"a"]]), "sha1")
    with pytest.raises(TypeError, match="strings: expected int8 or uint8 bytes"):
        ops.hash_column(ragged([[1]]), "farm")
    with pytest.raises(ValueError, match="boundaries of column: must be sorted"):
        ops.bucketize(np.zeros(1), [2, 1])
    with pytest.raises(TypeError, match=r"columns\[1\]: expected integer or float values"):
        ops.fused_bucketize([np.zeros(1), np.zeros(1, bool)], [[1], [1]])
    with pytest.raises(ValueError, match="num_buckets: expected 1 to 4 entries"):
        ops.id_multi_hash(np.zeros(1, np.int64), [10] * 5)
