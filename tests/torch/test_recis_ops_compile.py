"""Every torch.ops.recis op passes torch.library.opcheck (schema, fake kernel, autograd
registration, AOT dispatch) and runs inside torch.compile."""

from __future__ import annotations

import pytest
import torch

import recis.backends.torch.ops  # noqa: F401

OPS = torch.ops.recis


def blocks():
    return [torch.arange(8.0).reshape(4, 2) + 10 * b for b in range(2)]


def samples():
    ids = torch.tensor([0, 5, 3])
    offsets = torch.tensor([0, 2, 3])
    rows = torch.randn(6, 2, requires_grad=True)
    return {
        "block_gather": (ids, blocks(), 4, -1, False),
        "gather": (ids, rows),
        "block_insert": (ids, torch.ones(3, 2), blocks(), 4),
        "block_insert_with_mask": (
            ids,
            torch.ones(3, 2),
            torch.tensor([1, 0, 1]).bool(),
            blocks(),
            4,
        ),
        "block_filter": (ids, blocks(), 4, 5),
        "block_apply_adamw": (
            ids,
            torch.ones(3, 2),
            blocks(),
            torch.tensor([0.9]),
            torch.tensor([0.99]),
            torch.tensor([1]),
            blocks(),
            blocks(),
            0.1,
            0.9,
            0.99,
            1.0,
            1e-8,
            4,
        ),
        "generate_ids": (3, [torch.tensor([4, 5, 0, 0])], 2, 9, 4),
        "free_ids": (torch.tensor([7]), [torch.zeros(4, dtype=torch.int64)], 1, 4),
        "mask_key_index": (ids, torch.tensor([True, False, True]), torch.tensor([1, 1, 2]), 2),
        "segment_reduce_forward": (rows, torch.rand(3), ids, offsets, "mean"),
        "segment_reduce_backward": (torch.randn(2, 2), None, ids, offsets, 6, "sum"),
        "gen_segment_indices_by_offset": (offsets, 3),
        "merge_offsets": ([offsets, offsets], torch.tensor([3, 3])),
        "dense_to_ragged": (torch.tensor([[1, 0], [2, 3]]), False, torch.tensor([0])),
        "ids_partition": (torch.tensor([9, 3, 9, 70000]), 4),
        "scatter_ids_with_mask": (torch.zeros(3, dtype=torch.int64), ids, torch.tensor([2, 0, 1])),
    }


@pytest.mark.parametrize("name", sorted(samples()))
def test_opcheck(name):
    torch.library.opcheck(getattr(OPS, name).default, samples()[name])


def test_data_dependent_ops_trace_in_torch_compile():
    def step(dense, ids, rows, offsets):
        values, splits = OPS.dense_to_ragged(dense, True, torch.tensor([0]))
        unique, counts, reverse = OPS.ids_partition(values, 2)
        pooled = OPS.segment_reduce_forward(rows, None, ids, offsets, "sum")
        crossed = OPS.feature_cross_ragged(
            values, splits[0], torch.ones(values.shape), values, splits[0], torch.ones(values.shape)
        )
        return unique[reverse], counts, pooled, crossed[1]

    dense = torch.tensor([[4, 0, 6], [7, 0, 0]])
    args = (dense, torch.tensor([0, 1, 1]), torch.randn(2, 3), torch.tensor([0, 1, 3]))
    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    torch._dynamo.config.capture_dynamic_output_shape_ops = True
    try:
        got, want = compiled(*args), step(*args)
    finally:
        torch._dynamo.config.capture_dynamic_output_shape_ops = False
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)
    assert got[0].tolist() == [4, 0, 6, 7]


def test_segment_reduce_trains_inside_torch_compile():
    rows = torch.randn(3, 2, requires_grad=True)
    ids, offsets = torch.tensor([0, 2, 2]), torch.tensor([0, 1, 3])

    def loss(rows):
        return (OPS.segment_reduce_forward(rows, None, ids, offsets, "sum") ** 2).sum()

    torch.compile(loss, backend="aot_eager", fullgraph=True)(rows).backward()
    pooled = torch.stack([rows[0], 2 * rows[2]]).detach()
    assert torch.allclose(rows.grad, torch.stack([2 * pooled[0], torch.zeros(2), 4 * pooled[1]]))


def test_in_place_ops_keep_their_writes_inside_torch_compile():
    def write(ids, values, blocks, out):
        OPS.block_insert(ids, values, blocks, 4)
        scattered = OPS.scatter_ids_with_mask(out, ids, torch.tensor([1, 0]))
        return OPS.block_gather(ids, blocks, 4, -1, False) * 2, scattered

    args = (
        torch.tensor([6, 1]),
        torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
        blocks(),
        torch.zeros(2, dtype=torch.int64),
    )
    doubled, scattered = torch.compile(write, backend="aot_eager", fullgraph=True)(*args)
    assert scattered.tolist() == [1, 6] and doubled.tolist() == [[2.0, 4.0], [6.0, 8.0]]
    assert args[2][1][2].tolist() == [1.0, 2.0] and args[3].tolist() == [1, 6]
