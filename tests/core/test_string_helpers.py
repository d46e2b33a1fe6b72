"""djb2/sdbm string hashes and the decimal text of int64s, against plain-Python references."""

import itertools

import numpy as np
import pytest

from recis.core.classic_string_hash import hash_strings_classic
from recis.core.decimal_strings import int64_to_decimal_bytes

MASK = (1 << 64) - 1


def djb2(data: bytes) -> int:
    h = 5381
    for byte in data:
        h = (h * 33 + byte) & MASK
    return h


def sdbm(data: bytes) -> int:
    h = 0
    for byte in data:
        h = (byte + (h << 6) + (h << 16) - h) & MASK
    return h


@pytest.mark.parametrize(("hash_type", "reference"), [("djb2", djb2), ("sdbm", sdbm)])
def test_classic_hashes_match_their_formula_on_random_strings(hash_type, reference):
    rng = np.random.default_rng(7)
    data = rng.integers(-128, 128, 2000).astype(np.int8)
    offsets = np.sort(np.r_[0, rng.integers(0, 2000, 150), 2000])  # empty strings included
    got = hash_strings_classic(data, offsets, hash_type).view(np.uint64)
    strings = [data[a:b].tobytes() for a, b in itertools.pairwise(offsets)]
    assert got.tolist() == [reference(s) for s in strings]


def test_classic_hash_rejects_an_unknown_type_and_bad_offsets():
    with pytest.raises(ValueError, match="hash_type"):
        hash_strings_classic(np.zeros(2, np.uint8), np.array([0, 2]), "farm")
    with pytest.raises(ValueError, match="offsets"):
        hash_strings_classic(np.zeros(2, np.uint8), np.array([0, 3]), "djb2")


def test_decimal_bytes_of_extreme_and_ordinary_values():
    values = np.array([0, 7, -7, 1234567890, np.iinfo(np.int64).max, np.iinfo(np.int64).min])
    data, offsets = int64_to_decimal_bytes(values)
    texts = [data[a:b].tobytes().decode() for a, b in itertools.pairwise(offsets)]
    assert texts == [str(int(v)) for v in values]
    assert data.dtype == np.int8 and offsets.dtype == np.int64


def test_decimal_bytes_of_no_values():
    data, offsets = int64_to_decimal_bytes(np.zeros(0, np.int64))
    assert len(data) == 0 and offsets.tolist() == [0]
