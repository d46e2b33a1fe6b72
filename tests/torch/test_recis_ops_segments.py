"""torch.ops.recis segment and ragged ops with real values, against plain torch."""

from __future__ import annotations

import pytest
import torch

import recis.backends.torch.ops  # noqa: F401


def reference(rows, weight, index, offsets, mode):
    picked = rows[index] * weight.reshape(-1, 1)
    if mode == "tile":
        return picked
    segments = torch.repeat_interleave(torch.arange(len(offsets) - 1), torch.diff(offsets))
    out = torch.zeros(len(offsets) - 1, rows.shape[1]).index_add_(0, segments, picked)
    if mode == "mean":
        total = torch.zeros(len(offsets) - 1).index_add_(0, segments, weight)
        out = out / total.reshape(-1, 1)
    return out


@pytest.mark.parametrize("mode", ["sum", "mean", "tile"])
def test_segment_reduce_forward_and_backward_match_torch(mode):
    torch.manual_seed(1)
    rows = torch.randn(4, 3)
    index, offsets = torch.tensor([0, 3, 3, 1, 2, 0]), torch.tensor([0, 2, 3, 6])
    weight = torch.rand(6) + 0.5
    ours = rows.clone().requires_grad_()
    out = torch.ops.recis.segment_reduce_forward(ours, weight, index, offsets, mode)
    theirs = rows.clone().requires_grad_()
    want = reference(theirs, weight, index, offsets, mode)
    torch.testing.assert_close(out, want)
    grad = torch.randn_like(want)
    out.backward(grad)
    want.backward(grad)
    torch.testing.assert_close(ours.grad, theirs.grad)
    direct = torch.ops.recis.segment_reduce_backward(grad, weight, index, offsets, 4, mode)
    torch.testing.assert_close(direct, theirs.grad)


def test_segment_reduce_without_weights_and_on_an_empty_batch():
    rows = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    out = torch.ops.recis.segment_reduce_forward(
        rows, None, torch.tensor([1, 1, 0]), torch.tensor([0, 2, 3]), "mean"
    )
    assert out.tolist() == [[3.0, 4.0], [1.0, 2.0]]
    empty = torch.zeros(0, 2)
    none = torch.tensor([], dtype=torch.int64)
    sums = torch.ops.recis.segment_reduce_forward(
        empty, None, none, torch.zeros(4, dtype=torch.int64), "sum"
    )
    assert sums.tolist() == [[0.0, 0.0]] * 3
    with pytest.raises(ValueError, match="segment_reduce_forward: mode must be one of"):
        torch.ops.recis.segment_reduce_forward(
            rows, None, none, torch.zeros(1, dtype=torch.int64), "max"
        )


def test_gen_segment_indices_by_offset():
    out = torch.ops.recis.gen_segment_indices_by_offset(torch.tensor([0, 2, 2, 5]), 5)
    assert out.tolist() == [0, 0, 2, 2, 2]
    assert torch.ops.recis.gen_segment_indices_by_offset(torch.tensor([0]), 0).tolist() == []


def test_merge_offsets_shifts_each_batch_by_the_values_before_it():
    parts = [torch.tensor([0, 1, 4]), torch.tensor([0, 0, 2]), torch.tensor([0, 3])]
    merged = torch.ops.recis.merge_offsets(parts, torch.tensor([4, 2, 3]))
    assert merged.tolist() == [0, 1, 4, 4, 6, 9]
    assert merged.dtype == torch.int64


def test_dense_to_ragged_strips_trailing_invalid_values_only():
    data = torch.tensor([[1.0, 0.0, 3.0, 0.0], [0.0, 0.0, 0.0, 0.0], [5.0, 6.0, 7.0, 8.0]])
    values, offsets = torch.ops.recis.dense_to_ragged(data, True, torch.tensor([0.0]))
    assert values.tolist() == [1.0, 0.0, 3.0, 5.0, 6.0, 7.0, 8.0]
    assert offsets[0].tolist() == [0, 3, 3, 7] and offsets[0].dtype == torch.int32


def test_dense_to_ragged_without_check_keeps_every_level_whole():
    data = torch.arange(12).reshape(2, 3, 2)
    values, offsets = torch.ops.recis.dense_to_ragged(data, False, torch.tensor([0]))
    assert values.tolist() == list(range(12))
    assert [o.tolist() for o in offsets] == [[0, 3, 6], [0, 2, 4, 6, 8, 10, 12]]
    assert torch.equal(torch.ops.recis.ragged_to_dense(values, offsets, 0), data)


def test_ragged_to_dense_pads_every_level_with_the_default():
    values = torch.tensor([1, 2, 3, 4])
    offsets = [torch.tensor([0, 2, 3], dtype=torch.int32), torch.tensor([0, 1, 1, 4])]
    out = torch.ops.recis.ragged_to_dense(values, offsets, -1)
    assert out.tolist() == [[[1, -1, -1], [-1, -1, -1]], [[2, 3, 4], [-1, -1, -1]]]
