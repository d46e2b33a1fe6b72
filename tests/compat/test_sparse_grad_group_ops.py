"""RecIS's sparse gradient group reduction at ``recis.nn.functional.sparse_grad_group_ops``."""

import pytest
import torch

from recis.nn.functional.sparse_grad_group_ops import (
    _sparse_grad_group_reduce,
    _sparse_grad_group_reduce_compact,
    _sparse_grad_group_reduce_dense,
)

# id 0: group 0 gives 1 and 3, group 1 gives 4; id 1: group 1 gives 10.
INDEX = torch.tensor([0, 0, 0, 1])
GROUP = torch.tensor([0, 0, 1, 1])
GRADS = torch.tensor([[1.0], [3.0], [4.0], [10.0]])


@pytest.mark.parametrize(
    ("mode", "sums", "squares"),
    [
        ("id", [[2.0 + 4.0], [10.0]], [[4.0 + 16.0], [100.0]]),
        ("worker", [[2.0 + 2.0], [5.0]], [[4.0 + 4.0], [25.0]]),
        ("worker_sum", [[4.0 + 4.0], [10.0]], [[16.0 + 16.0], [100.0]]),
    ],
)
def test_each_mode_reduces_a_group_then_sums_over_groups(mode, sums, squares):
    total, total_sq = _sparse_grad_group_reduce_compact(INDEX, GROUP, GRADS, 2, 2, mode)
    assert total.tolist() == sums
    assert total_sq.tolist() == squares


@pytest.mark.parametrize("mode", ["id", "worker", "worker_sum"])
@pytest.mark.parametrize(
    ("impl", "chunk"), [("compact", 1), ("chunk_compact", 1), ("chunk_compact", 3)]
)
def test_every_impl_matches_the_dense_grid_on_random_input(mode, impl, chunk):
    generator = torch.Generator().manual_seed(5)
    index = torch.randint(0, 7, (200,), generator=generator)
    group = torch.randint(0, 5, (200,), generator=generator)
    grads = torch.randn(200, 3, 2, generator=generator)
    dense = _sparse_grad_group_reduce_dense(index, group, grads, 7, 5, 4, mode)
    other = _sparse_grad_group_reduce(index, group, grads, 7, 5, 4, mode, impl, chunk)
    for expected, actual in zip(dense, other, strict=True):
        torch.testing.assert_close(actual, expected)


def test_unknown_mode_and_impl_are_named():
    with pytest.raises(ValueError, match="group_reduce_by"):
        _sparse_grad_group_reduce_compact(INDEX, GROUP, GRADS, 2, 2, "mean")
    with pytest.raises(ValueError, match="group_reduce_impl"):
        _sparse_grad_group_reduce(INDEX, GROUP, GRADS, 2, 2, 2, "id", "sparse", 1)
