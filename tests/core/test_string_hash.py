"""String and pair hashes: exact values, the farmhash library as oracle, kernels against twins."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recis.core.kernels import string_hash as kernels
from recis.core.string_hash import (
    HASH_TYPES,
    INT64_MAX,
    clear_sign_bit,
    hash_bytes,
    hash_strings,
    murmur_pair,
)

STRING_KERNELS = {
    "farm": (kernels.farm_fingerprint64, kernels.farm_fingerprint64_reference),
    "murmur": (kernels.murmur_hash64a, kernels.murmur_hash64a_reference),
}
BRANCH_BOUNDARIES = (0, 1, 3, 4, 7, 8, 15, 16, 17, 32, 33, 64, 65, 128, 129)
int64s = st.integers(-(2**63), 2**63 - 1)
byte_strings = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(BRANCH_BOUNDARIES).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
)


def pack(strings: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The flat ``uint8`` buffer and int64 offsets of a list of byte strings."""
    offsets = np.zeros(len(strings) + 1, np.int64)
    np.cumsum([len(s) for s in strings], out=offsets[1:])
    return np.frombuffer(b"".join(strings), np.uint8), offsets


def as_signed(unsigned: int) -> int:
    return unsigned - 2**64 if unsigned > INT64_MAX else unsigned


@pytest.mark.parametrize(
    ("hash_type", "expected"),
    [
        ("farm", [-7736835464683084646, -5546720800891377920]),
        ("murmur", [-4003751876240412087, -1042754718167355375]),
    ],
)
def test_known_hashes(hash_type, expected):
    data, offsets = pack([bytes([0, 1, 2]), bytes([1, 2, 3])])
    np.testing.assert_array_equal(hash_strings(data, offsets, hash_type), expected)
    assert [hash_bytes(bytes(s), hash_type) for s in ([0, 1, 2], [1, 2, 3])] == expected


def test_empty_strings():
    data, offsets = pack([b"", b""])
    np.testing.assert_array_equal(hash_strings(data, offsets, "farm"), [-7286425919675154353] * 2)
    np.testing.assert_array_equal(hash_strings(data, offsets, "murmur"), [0, 0])
    assert hash_strings(data, np.array([0]), "farm").shape == (0,)


def test_farm_matches_the_farmhash_library_for_every_length_up_to_300():
    farmhash = pytest.importorskip("farmhash", reason="the pyfarmhash package is not installed")
    rng = np.random.default_rng(7)
    strings = [rng.bytes(n) for n in range(301)] + [b""]
    data, offsets = pack(strings)
    expected = [as_signed(farmhash.fingerprint64(s)) for s in strings]
    np.testing.assert_array_equal(hash_strings(data, offsets, "farm"), expected)
    assert hash_bytes(b"", "farm") == as_signed(farmhash.fingerprint64(b""))


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(HASH_TYPES), st.lists(byte_strings, max_size=20))
def test_string_kernels_match_twins(hash_type, strings):
    kernel, reference = STRING_KERNELS[hash_type]
    data, offsets = pack(strings)
    out, twin = np.empty(len(strings), np.uint64), np.empty(len(strings), np.uint64)
    kernel(data, offsets, out)
    reference(data, offsets, twin)
    np.testing.assert_array_equal(out, twin)


@pytest.mark.parametrize("hash_type", HASH_TYPES)
def test_string_kernels_match_twins_on_many_strings_at_unaligned_positions(hash_type):
    kernel, reference = STRING_KERNELS[hash_type]
    rng = np.random.default_rng(11)
    lengths = rng.integers(0, 80, 3000)
    data = rng.integers(0, 256, lengths.sum() + 3, dtype=np.uint8)[3:]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    out, twin = np.empty(len(lengths), np.uint64), np.empty(len(lengths), np.uint64)
    kernel(data, offsets, out)
    reference(data, offsets, twin)
    np.testing.assert_array_equal(out, twin)


@pytest.mark.parametrize("hash_type", HASH_TYPES)
def test_int8_data_hashes_like_uint8(hash_type):
    data, offsets = pack([b"\xff\x80abc", b"", b"\x7f" * 70])
    np.testing.assert_array_equal(
        hash_strings(data.view(np.int8), offsets, hash_type), hash_strings(data, offsets, hash_type)
    )


def test_pair_hash_known_values():
    hashes = murmur_pair(np.array([1001, 1002, 1003]), np.array([1, 2, 3]))
    np.testing.assert_array_equal(
        hashes, [-7808879811642834040, -4967483181219983279, 1752425377096056168]
    )


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.integers(-3, 3), int64s), int64s), max_size=50))
def test_pair_kernel_matches_twin_and_string_hash(pairs):
    x = np.array([p[0] for p in pairs], np.int64)
    y = np.array([p[1] for p in pairs], np.int64)
    twin = np.empty(len(pairs), np.uint64)
    kernels.murmur_pair_reference(x, y, twin)
    hashes = murmur_pair(x, y)
    np.testing.assert_array_equal(hashes, twin.view(np.int64))
    for (a, b), h in zip(pairs, hashes, strict=True):
        as_bytes = a.to_bytes(8, "little", signed=True) + b.to_bytes(8, "little", signed=True)
        assert hash_bytes(as_bytes, "murmur") == h


def test_pair_hash_keeps_the_shape():
    x = np.arange(6, dtype=np.int64).reshape(2, 3)
    hashes = murmur_pair(x, -x)
    assert hashes.shape == (2, 3)
    np.testing.assert_array_equal(hashes.ravel(), murmur_pair(x.ravel(), -x.ravel()))


@pytest.mark.parametrize("hash_type", HASH_TYPES)
@pytest.mark.parametrize("bucket", [1, 7, 1000, 2**40 + 3, INT64_MAX])
def test_bucket_is_the_unsigned_hash_modulo_bucket(hash_type, bucket):
    rng = np.random.default_rng(bucket % 1000)
    data, offsets = pack([rng.bytes(n) for n in rng.integers(0, 100, 200)])
    signed = hash_strings(data, offsets, hash_type)
    assert (signed < 0).any()
    expected = [(h % 2**64) % bucket for h in signed.tolist()]
    np.testing.assert_array_equal(hash_strings(data, offsets, hash_type, bucket=bucket), expected)


def test_clear_sign_bit():
    values = np.array([-(2**63), -1, 0, 5, INT64_MAX, -7736835464683084646])
    expected = [0, INT64_MAX, 0, 5, INT64_MAX, -7736835464683084646 + 2**63]
    np.testing.assert_array_equal(clear_sign_bit(values), expected)


@pytest.mark.parametrize(
    ("offsets", "error", "message"),
    [
        (np.array([1, 3]), ValueError, "offsets: offsets must start with 0"),
        (np.array([0, 3, 2, 3]), ValueError, "offsets: offsets must be non-decreasing"),
        (np.array([0, 2]), ValueError, r"offsets: last offset 2 must equal the number of bytes"),
        (np.array([], np.int64), ValueError, "offsets: offsets must start with 0"),
        (np.array([[0, 3]]), TypeError, "offsets: expected a 1-D integer"),
        (np.array([0.0, 3.0]), TypeError, "offsets: expected a 1-D integer"),
    ],
)
def test_hash_strings_rejects_bad_offsets(offsets, error, message):
    with pytest.raises(error, match=message):
        hash_strings(np.zeros(3, np.uint8), offsets, "farm")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"hash_type": "md5"}, ValueError, r"hash_type: expected one of \('farm', 'murmur'\)"),
        ({"data": np.zeros(3, np.int32)}, TypeError, "data: expected a 1-D uint8 or int8"),
        ({"data": np.zeros((1, 3), np.uint8)}, TypeError, "data: expected a 1-D uint8 or int8"),
        ({"bucket": -1}, ValueError, r"bucket: must lie in \[0, 2\*\*63 - 1\]"),
        ({"bucket": 2**63}, ValueError, r"bucket: must lie in \[0, 2\*\*63 - 1\]"),
        ({"bucket": 2.0}, TypeError, "bucket: expected an integer"),
        ({"bucket": True}, TypeError, "bucket: expected an integer"),
    ],
)
def test_hash_strings_rejects_bad_arguments(kwargs, error, message):
    arguments = {"data": np.zeros(3, np.uint8), "offsets": np.array([0, 3]), "hash_type": "farm"}
    with pytest.raises(error, match=message):
        hash_strings(**{**arguments, **kwargs})


def test_other_functions_reject_bad_arguments():
    with pytest.raises(TypeError, match="value: expected bytes, got str"):
        hash_bytes("abc", "farm")
    with pytest.raises(ValueError, match="hash_type: expected one of"):
        hash_bytes(b"abc", "Farm")
    with pytest.raises(ValueError, match=r"x and y: shapes differ, \(2,\) and \(3,\)"):
        murmur_pair(np.zeros(2, np.int64), np.zeros(3, np.int64))
    with pytest.raises(TypeError, match="y: expected an int64 NumPy array"):
        murmur_pair(np.zeros(2, np.int64), np.zeros(2, np.int32))
    with pytest.raises(TypeError, match="values: expected an int64 NumPy array"):
        clear_sign_bit([1, 2])
