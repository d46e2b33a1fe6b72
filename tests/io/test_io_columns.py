"""Arrow columns to dense arrays and Ragged: every layout, hashing, defaults, bad content."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pytest

from recis.core.ragged import Ragged
from recis.io.columns import ColumnSpec, check_type, convert_column, type_signature
from recis.io.errors import ColumnError

INT64_MAX = np.iinfo(np.int64).max
KNOWN_HASHES = {  # the bytes [0, 1, 2] and [1, 2, 3], as signed int64
    "farm": [-7736835464683084646, -5546720800891377920],
    "murmur": [-4003751876240412087, -1042754718167355375],
}
KNOWN_STRINGS = [bytes([0, 1, 2]), bytes([1, 2, 3])]


def convert(spec: ColumnSpec, array, float_dtype=np.float32):
    check_type(spec, array.type)
    return convert_column(spec, array, float_dtype)


def as_unsigned(values) -> np.ndarray:
    return np.array(values, np.int64).view(np.uint64)


@pytest.mark.parametrize("hash_type", ["farm", "murmur"])
@pytest.mark.parametrize("large", [False, True])
def test_scalar_strings_hash_to_the_known_values_with_the_sign_bit_cleared(hash_type, large):
    array = pa.array(KNOWN_STRINGS, pa.large_binary() if large else pa.binary())
    result = convert(ColumnSpec.varlen("s", hash_type), array)
    np.testing.assert_array_equal(result, np.array(KNOWN_HASHES[hash_type]) & INT64_MAX)


@pytest.mark.parametrize("hash_type", ["farm", "murmur"])
def test_list_of_strings_hashes_into_buckets_of_the_unsigned_hash(hash_type):
    array = pa.array([[KNOWN_STRINGS[1]], [], [KNOWN_STRINGS[0], KNOWN_STRINGS[1]]]).slice(0)
    result = convert(ColumnSpec.varlen("s", hash_type, hash_bucket=1000), array)
    unsigned = as_unsigned(KNOWN_HASHES[hash_type])
    np.testing.assert_array_equal(result.values, unsigned[[1, 0, 1]] % 1000)
    np.testing.assert_array_equal(result.offsets[0], [0, 1, 1, 3])


def test_sliced_string_arrays_hash_only_their_own_strings():
    array = pa.array(["zz", *(s.decode("latin-1") for s in KNOWN_STRINGS)]).slice(1)
    bytes_array = pa.array(KNOWN_STRINGS)
    spec = ColumnSpec.varlen("s", "farm")
    np.testing.assert_array_equal(convert(spec, array), convert(spec, bytes_array))


def test_trans_int8_keeps_string_bytes_under_one_more_offset_level():
    array = pa.array([["ab", ""], ["c"]])
    result = convert(ColumnSpec.varlen("s", trans_int8=True), array)
    assert result.values.dtype == np.int8
    np.testing.assert_array_equal(result.values, [97, 98, 99])
    np.testing.assert_array_equal(result.offsets[0], [0, 2, 3])
    np.testing.assert_array_equal(result.offsets[1], [0, 2, 2, 3])


def test_scalar_strings_without_hashing_pass_through_as_objects():
    result = convert(ColumnSpec.varlen("s"), pa.array(["a", "bc"]))
    assert result.tolist() == ["a", "bc"]


def test_numeric_scalars_are_dense_and_floats_take_the_dataset_dtype():
    np.testing.assert_array_equal(convert(ColumnSpec.varlen("x"), pa.array([3, 4])), [3, 4])
    result = convert(ColumnSpec.varlen("x"), pa.array([0.5, 1.5]), np.float16)
    assert result.dtype == np.float16
    np.testing.assert_array_equal(result, [0.5, 1.5])


@pytest.mark.parametrize("list_type", [pa.list_, pa.large_list])
def test_lists_become_ragged_and_null_lists_are_empty_rows(list_type):
    array = pa.array([[9], [1, 2], None, [3]], list_type(pa.int32())).slice(1)
    result = convert(ColumnSpec.varlen("x"), array)
    assert isinstance(result, Ragged)
    assert result.values.dtype == np.int32
    np.testing.assert_array_equal(result.values, [1, 2, 3])
    np.testing.assert_array_equal(result.offsets[0], [0, 2, 2, 3])


def test_nested_lists_give_two_offset_levels():
    array = pa.array([[[1], [2, 3]], None, [[], [4]]])
    result = convert(ColumnSpec.varlen("x"), array)
    np.testing.assert_array_equal(result.values, [1, 2, 3, 4])
    np.testing.assert_array_equal(result.offsets[0], [0, 2, 2, 4])
    np.testing.assert_array_equal(result.offsets[1], [0, 1, 3, 3, 4])


def test_list_of_struct_gives_ids_with_float32_weights():
    kv = pa.struct([("id", pa.int64()), ("w", pa.float64())])
    array = pa.array(
        [[{"id": 5, "w": 0.5}, {"id": 6, "w": 2.0}], [], [{"id": 7, "w": 1.0}]], pa.list_(kv)
    )
    result = convert(ColumnSpec.varlen("x"), array)
    np.testing.assert_array_equal(result.values, [5, 6, 7])
    assert result.weights.dtype == np.float32
    np.testing.assert_array_equal(result.weights, [0.5, 2.0, 1.0])
    np.testing.assert_array_equal(result.offsets[0], [0, 2, 2, 3])


def test_list_of_struct_with_string_ids_hashes_them():
    kv = pa.struct([("k", pa.binary()), ("v", pa.int32())])
    array = pa.array([[{"k": KNOWN_STRINGS[0], "v": 3}]], pa.list_(kv))
    result = convert(ColumnSpec.varlen("x", "murmur"), array)
    np.testing.assert_array_equal(result.values, [KNOWN_HASHES["murmur"][0] & INT64_MAX])
    np.testing.assert_array_equal(result.weights, [3.0])


def test_fixedlen_rows_that_are_empty_or_null_get_the_default():
    array = pa.array([[1.0, 2.0], [], None, [3.0, 4.0]])
    result = convert(ColumnSpec.fixedlen("x", [7, 8]), array)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, [[1, 2], [7, 8], [7, 8], [3, 4]])


def test_fixedlen_scalar_column_is_one_wide_with_nulls_set_to_the_default():
    result = convert(ColumnSpec.fixedlen("x", 9), pa.array([1, None, 3]))
    assert result.dtype == np.int64
    np.testing.assert_array_equal(result, [[1], [9], [3]])


def test_fixedlen_fixed_size_lists_with_nulls():
    array = pa.array([[1, 2], None, [5, 6]], pa.list_(pa.int64(), 2)).slice(1)
    np.testing.assert_array_equal(
        convert(ColumnSpec.fixedlen("x", [0, 0]), array), [[0, 0], [5, 6]]
    )


def test_dictionary_columns_are_decoded():
    array = pa.array(["a", "b", "a"]).dictionary_encode()
    result = convert(ColumnSpec.varlen("s", "farm"), array)
    assert result[0] == result[2] != result[1]


@pytest.mark.parametrize(
    ("spec", "array", "message"),
    [
        (ColumnSpec.varlen("x"), pa.array([[1, None]]), "column 'x': null values inside lists"),
        (ColumnSpec.varlen("x"), pa.array([1, None]), "column 'x': null values"),
        (
            ColumnSpec.fixedlen("x", [0, 0]),
            pa.array([[1, 2], [3]]),
            "row 1 has 1 values, expected 2",
        ),
        (ColumnSpec.varlen("x"), pa.array([[{"k": 1, "v": None}, {"k": 2, "v": 0.5}]]), "null"),
        (ColumnSpec.varlen("x"), pa.array([[{"k": 1, "v": 1.5}, None]]), "null values inside"),
    ],
)
def test_bad_content_names_the_column(spec, array, message):
    with pytest.raises(ColumnError, match=message):
        convert(spec, array)


@pytest.mark.parametrize(
    ("spec", "type_", "message"),
    [
        (ColumnSpec.varlen("x"), pa.list_(pa.string()), "needs hash_type or trans_int8"),
        (ColumnSpec.varlen("x", "farm"), pa.list_(pa.int64()), "apply to strings"),
        (ColumnSpec.fixedlen("x", [0.0]), pa.string(), "needs numbers"),
        (ColumnSpec.fixedlen("x", [0.0, 0.0]), pa.float64(), "dim 1, but default_value has 2"),
        (ColumnSpec.fixedlen("x", [0.0]), pa.list_(pa.list_(pa.int64())), "needs numbers"),
        (ColumnSpec.fixedlen("x", [0.0]), pa.list_(pa.int64(), 2), "dim 1"),
        (
            ColumnSpec.varlen("x"),
            pa.struct([("k", pa.int64()), ("v", pa.float32())]),
            "list<struct",
        ),
        (ColumnSpec.varlen("x"), pa.list_(pa.struct([("k", pa.int64())])), "list<struct"),
        (ColumnSpec.varlen("x"), pa.timestamp("s"), "unsupported type"),
    ],
)
def test_unreadable_types_name_the_column(spec, type_, message):
    with pytest.raises(ColumnError, match=f"column 'x'.*{message}"):
        check_type(spec, type_)


@pytest.mark.parametrize(
    ("factory", "args", "message"),
    [
        (ColumnSpec.varlen, ("x", "sha1"), "hash_type must be one of"),
        (ColumnSpec.varlen, ("x", "farm", -1), "hash_bucket must be >= 0"),
        (ColumnSpec.varlen, ("x", "farm", 0, True), "either hash_type or trans_int8"),
        (ColumnSpec.fixedlen, ("x", []), "default_value must be"),
        (ColumnSpec.fixedlen, ("x", ["a"]), "default_value must be"),
        (ColumnSpec.varlen, ("",), "non-empty string"),
    ],
)
def test_bad_declarations_are_rejected(factory, args, message):
    with pytest.raises(ValueError, match=message):
        factory(*args)


def test_a_bucket_without_hash_type_is_unused_and_logged(caplog):
    with caplog.at_level(logging.INFO, logger="recis.io"):
        spec = ColumnSpec.varlen("ids", None, 100)
    assert spec == ColumnSpec.varlen("ids")
    assert [r.getMessage() for r in caplog.records] == [
        "ids: hash_bucket=100 is unused without a hash_type"
    ]
    column = convert_column(spec, pa.array([[123456, 7]]), np.float32)
    assert column.values.tolist() == [123456, 7]


def test_type_signature_ignores_offset_width_and_field_names():
    kv = pa.struct([("a", pa.int64()), ("b", pa.float32())])
    other = pa.struct([("k", pa.int64()), ("v", pa.float32())])
    assert type_signature(pa.list_(kv)) == type_signature(pa.large_list(other))
    assert type_signature(pa.list_(pa.int64())) != type_signature(pa.list_(pa.int32()))
