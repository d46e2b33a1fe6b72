"""torch.ops.recis block, gather and id-slot ops, against plain torch indexing."""

from __future__ import annotations

import pytest
import torch

import recis.backends.torch.ops  # noqa: F401


def make_blocks(count=3, size=4, dim=2, dtype=torch.float32):
    return [
        torch.arange(size * dim, dtype=dtype).reshape(size, dim) + 100 * b for b in range(count)
    ]


def test_the_schemas_are_recis_positional_ones():
    schema = str(torch.ops.recis.block_gather.default._schema)
    assert (
        schema == "recis::block_gather(Tensor _0, Tensor[] _1, int _2, int _3, bool _4) -> Tensor"
    )
    insert = str(torch.ops.recis.block_insert.default._schema)
    assert insert == "recis::block_insert(Tensor _0, Tensor _1, Tensor(a!)[] _2, int _3) -> ()"


def test_block_gather_reads_rows_across_blocks():
    blocks = make_blocks()
    ids = torch.tensor([0, 5, 11, 4, 5])
    out = torch.ops.recis.block_gather(ids, blocks, 4, -1, False)
    assert torch.equal(out, torch.cat(blocks)[ids])


def test_readonly_block_gather_gives_zero_rows_for_the_default_key():
    blocks = make_blocks()
    out = torch.ops.recis.block_gather(torch.tensor([6, -1, 1]), blocks, 4, -1, True)
    assert out.tolist() == [[104.0, 105.0], [0.0, 0.0], [2.0, 3.0]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.int8])
def test_gather_and_block_gather_agree(dtype):
    blocks = make_blocks(2, 4, 1, dtype)
    ids = torch.tensor([0, 3, 4, 7])
    whole = torch.cat(blocks)
    assert torch.equal(torch.ops.recis.gather(ids, whole), whole[ids])
    assert torch.equal(torch.ops.recis.block_gather(ids, blocks, 4, -1, False), whole[ids])


def test_gather_has_a_backward_that_adds_repeated_rows():
    emb = torch.arange(6.0).reshape(3, 2).requires_grad_()
    out = torch.ops.recis.gather(torch.tensor([2, 0, 2]), emb)
    out.backward(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    assert emb.grad.tolist() == [[3.0, 4.0], [0.0, 0.0], [6.0, 8.0]]


def test_block_insert_writes_rows_skips_minus_one_and_broadcasts_one_row():
    blocks = [torch.zeros(3, 2) for _ in range(2)]
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    torch.ops.recis.block_insert(torch.tensor([4, -1, 0]), values, blocks, 3)
    assert torch.cat(blocks).tolist() == [[5, 6], [0, 0], [0, 0], [0, 0], [1, 2], [0, 0]]
    torch.ops.recis.block_insert(torch.tensor([1, 2]), torch.tensor([[9.0, 9.0]]), blocks, 3)
    assert torch.cat(blocks)[1:3].tolist() == [[9, 9], [9, 9]]
    with pytest.raises(ValueError, match="block_insert: row ids must be >= -1"):
        torch.ops.recis.block_insert(torch.tensor([-2]), values[:1], blocks, 3)


def test_block_insert_with_mask_writes_only_masked_rows():
    blocks = [torch.zeros(2, 1) for _ in range(2)]
    values = torch.tensor([[1.0], [2.0], [3.0]])
    mask = torch.tensor([True, False, True])
    torch.ops.recis.block_insert_with_mask(torch.tensor([3, 0, 1]), values, mask, blocks, 2)
    assert torch.cat(blocks).flatten().tolist() == [0.0, 3.0, 0.0, 1.0]


def test_block_filter_compares_the_first_column_with_the_threshold():
    blocks = [torch.tensor([[5], [1]]), torch.tensor([[9], [3]])]
    mask = torch.ops.recis.block_filter(torch.tensor([0, 1, 2, 3]), blocks, 2, 4)
    assert mask.tolist() == [False, True, False, True]


def test_block_apply_adamw_matches_the_adamw_tf_formula():
    torch.manual_seed(0)
    blocks = [torch.rand(3, 2) for _ in range(2)]
    m = [torch.rand(3, 2) for _ in range(2)]
    v = [torch.rand(3, 2) for _ in range(2)]
    before = [torch.cat(x).double() for x in (blocks, m, v)]
    ids, grad = torch.tensor([4, -1, 0]), torch.rand(3, 2)
    beta1_power, beta2_power = torch.tensor([0.9]), torch.tensor([0.99])
    lr, b1, b2, decay, eps = 0.01, 0.9, 0.999, 0.98, 1e-8
    torch.ops.recis.block_apply_adamw(
        ids,
        grad,
        blocks,
        beta1_power,
        beta2_power,
        torch.tensor([3]),
        m,
        v,
        lr,
        b1,
        b2,
        decay,
        eps,
        3,
    )
    assert beta1_power.item() == pytest.approx(0.81) and beta2_power.item() == pytest.approx(
        0.98901
    )
    alpha = -lr / (1 - 0.81) * (1 - 0.98901) ** 0.5
    rows, g = torch.tensor([4, 0]), grad[[0, 2]].double()
    want_m = before[1][rows] * b1 + (1 - b1) * g
    want_v = before[2][rows] * b2 + (1 - b2) * g * g
    want = before[0][rows] * decay + alpha * want_m / (want_v.sqrt() + eps)
    torch.testing.assert_close(torch.cat(m)[rows].double(), want_m, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(torch.cat(v)[rows].double(), want_v, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(torch.cat(blocks)[rows].double(), want, rtol=1e-6, atol=1e-6)
    untouched = torch.tensor([1, 2, 3, 5])
    assert torch.equal(torch.cat(blocks)[untouched].double(), before[0][untouched])


def test_generate_ids_reuses_freed_ids_then_counts_new_ones():
    free = [torch.zeros(2, dtype=torch.int64) for _ in range(3)]
    torch.ops.recis.free_ids(torch.tensor([11, 12, 13]), free, 0, 2)
    assert torch.cat(free)[:3].tolist() == [11, 12, 13]
    assert torch.ops.recis.generate_ids(2, free, 3, 20, 2).tolist() == [12, 13]
    assert torch.ops.recis.generate_ids(5, free, 3, 20, 2).tolist() == [21, 20, 11, 12, 13]
    assert torch.ops.recis.generate_ids(0, free, 3, 20, 2).tolist() == []


def test_mask_key_index_compacts_masked_keys_and_their_positions():
    keys = torch.tensor([40, 41, 42, 43])
    mask = torch.tensor([False, True, True, False])
    out_keys, out_index = torch.ops.recis.mask_key_index(keys, mask, mask.cumsum(0), 2)
    assert out_keys.tolist() == [41, 42] and out_index.tolist() == [1, 2]


def test_scatter_ids_with_mask_writes_in_place_and_returns_the_result():
    out = torch.full((5,), -1, dtype=torch.int64)
    result = torch.ops.recis.scatter_ids_with_mask(out, torch.tensor([7, 8]), torch.tensor([4, 1]))
    assert out.tolist() == [-1, 8, -1, -1, 7]
    assert torch.equal(result, out)
