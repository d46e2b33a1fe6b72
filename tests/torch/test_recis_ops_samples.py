"""The sampler ops of torch.ops.recis (tile / combine by sample counts, sample-id timestamps):
values against a plain Python reference, RecIS's errors, and opcheck of schemas and fake
kernels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import recis.backends.torch.ops  # noqa: F401
from recis.core.sample_ids import newest_timestamp, timestamp_of
from recis.nn.functional.array_ops import parse_sample_id

OPS = torch.ops.recis


def _tile_reference(rows, counts):
    return [row for row, count in zip(rows, counts, strict=True) for _ in range(count + 1)]


def _combine_reference(origin, counts, sampled):
    out, taken = [], 0
    for row, count in zip(origin, counts, strict=True):
        out.append(row)
        out.extend(sampled[taken : taken + count])
        taken += count
    return out


@pytest.mark.parametrize("dtype", [torch.int64, torch.float32, torch.int8])
@pytest.mark.parametrize("counts_dtype", [torch.int32, torch.int64])
def test_tile_repeats_each_row_one_plus_its_count(dtype, counts_dtype):
    generator = np.random.default_rng(3)
    rows = torch.from_numpy(generator.integers(-50, 50, (7, 2, 3))).to(dtype)
    counts = torch.tensor(generator.integers(0, 4, 7), dtype=counts_dtype)
    out = OPS.tile_with_sample_counts(rows, counts)
    expected = _tile_reference(rows.tolist(), counts.tolist())
    assert out.dtype == dtype and out.shape == (len(expected), 2, 3)
    assert out.tolist() == expected


def test_combine_interleaves_rows_with_their_samples():
    generator = np.random.default_rng(5)
    origin = torch.from_numpy(generator.normal(size=(6, 4))).float()
    counts = torch.tensor([0, 3, 1, 0, 2, 1])
    sampled = torch.from_numpy(generator.normal(size=(7, 4))).float()
    out = OPS.combine_vector_with_sample_counts(origin, counts, sampled)
    expected = _combine_reference(origin.tolist(), counts.tolist(), sampled.tolist())
    assert out.tolist() == expected


def test_combine_takes_samples_of_the_same_row_size_in_another_shape():
    origin = torch.tensor([[1, 2], [3, 4]])
    out = OPS.combine_vector_with_sample_counts(
        origin, torch.tensor([1, 0]), torch.tensor([[9, 8]]).reshape(1, 2, 1)
    )
    assert out.tolist() == [[1, 2], [9, 8], [3, 4]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((torch.ones(3), torch.tensor([1, 1])), "2 entries for 3 rows"),
        ((torch.ones(2), torch.tensor([1, -1])), ">= 0"),
        ((torch.ones(2), torch.tensor([1.0, 1.0])), "must be integers"),
    ],
)
def test_tile_rejects_counts_that_do_not_fit(args, message):
    with pytest.raises((ValueError, TypeError), match=message):
        OPS.tile_with_sample_counts(*args)


def test_combine_rejects_a_sampled_tensor_of_the_wrong_size():
    with pytest.raises(ValueError, match="sampled has 2 rows, sample counts sum to 3"):
        OPS.combine_vector_with_sample_counts(torch.ones(2), torch.tensor([1, 2]), torch.ones(2))
    with pytest.raises(ValueError, match="differ in size"):
        OPS.combine_vector_with_sample_counts(
            torch.ones(2, 2), torch.tensor([1, 0]), torch.ones(1, 3)
        )


def test_parse_sample_id_reads_the_timestamp_after_the_last_caret():
    ids = ["u7^i3^1700000123", "u8^1700000456", " 1700000001xyz"]
    assert OPS.parse_sample_id(ids, True) == 1700000456
    assert OPS.parse_sample_id(ids, False) == 1700000001
    assert parse_sample_id(np.array(ids).reshape(3, 1)) == 1700000456
    assert parse_sample_id([b"a^-5", b"b^3"], is_max=False) == -5
    assert timestamp_of("x^+42") == 42
    with pytest.raises(ValueError, match="'u1\\^abc'"):
        newest_timestamp(["u1^abc"])
    with pytest.raises(ValueError, match="at least one"):
        newest_timestamp([])


def test_schemas_are_recis_positional_ones():
    assert str(OPS.tile_with_sample_counts.default._schema) == (
        "recis::tile_with_sample_counts(Tensor _0, Tensor _1) -> Tensor"
    )
    assert str(OPS.parse_sample_id.default._schema) == (
        "recis::parse_sample_id(str[] _0, bool _1) -> int"
    )


@pytest.mark.parametrize(
    ("op", "args"),
    [
        ("tile_with_sample_counts", (torch.arange(6.0).reshape(3, 2), torch.tensor([2, 0, 1]))),
        (
            "combine_vector_with_sample_counts",
            (torch.arange(3), torch.tensor([1, 0, 2]), torch.tensor([7, 8, 9])),
        ),
        ("parse_sample_id", (["a^3", "b^9"], True)),
    ],
)
def test_opcheck(op, args):
    torch.library.opcheck(getattr(OPS, op).default, args)


def test_combine_traces_under_torch_compile():
    def combined(origin, counts, sampled):
        return OPS.combine_vector_with_sample_counts(origin, counts, sampled) * 2

    compiled = torch.compile(combined, backend="aot_eager", fullgraph=True)
    args = (torch.arange(3.0), torch.tensor([1, 0, 2]), torch.tensor([7.0, 8.0, 9.0]))
    assert torch.equal(compiled(*args), combined(*args))
