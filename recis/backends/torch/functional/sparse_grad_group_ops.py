"""RecIS's sparse gradient group reduction: per-id gradient sums and sums of squares.

The occurrences of a batch's ids come from several *source groups* (e.g. workers). Each
occurrence ``i`` has a unique-id slot ``index[i]`` (``0 ≤ index < num_unique``) and a group
``source_group[i]``. The gradients of one (group, id) pair are first reduced to one vector ``p``:

- ``"id"``: their mean;
- ``"worker"``: their sum divided by ``group_size``;
- ``"worker_sum"``: their sum.

Then, per id, ``grad_sum = Σ_groups p`` and ``grad_sq_sum = Σ_groups p²`` (elementwise), what
RecIS's ``SparseAdagradSum`` and ``SparseRowWiseAdagradSum`` consume. Three ways compute the same
result: ``dense`` holds every (group, id) pair, ``compact`` only the pairs that occur, and
``chunk_compact`` visits ``chunk_groups`` groups at a time to bound memory.

>>> import torch
>>> index, group = torch.tensor([0, 0, 0]), torch.tensor([0, 0, 1])
>>> grads = torch.tensor([[1.0], [3.0], [4.0]])
>>> total, squares = _sparse_grad_group_reduce_compact(index, group, grads, 1, 2, "id")
>>> total.tolist(), squares.tolist()  # group 0: mean 2; group 1: 4
([[6.0]], [[20.0]])
"""

from __future__ import annotations

import torch

GROUP_REDUCE_MODES = ("id", "worker", "worker_sum")
GROUP_REDUCE_IMPLS = ("dense", "compact", "chunk_compact")


def _check_mode(group_reduce_by: str) -> None:
    if group_reduce_by not in GROUP_REDUCE_MODES:
        raise ValueError(
            f"group_reduce_by must be one of {GROUP_REDUCE_MODES}, got {group_reduce_by!r}"
        )


def _reduce_pairs(pairs, grads, num_pairs, group_size, group_reduce_by):
    """Per pair in ``0..num_pairs``: the reduced gradient of its occurrences (zeros if none)."""
    _check_mode(group_reduce_by)
    reduced = grads.new_zeros((num_pairs, *grads.shape[1:]))
    reduced.index_add_(0, pairs, grads)
    if group_reduce_by == "id":
        counts = torch.bincount(pairs, minlength=num_pairs).clamp_min(1).to(grads.dtype)
        reduced /= counts.view(-1, *[1] * (grads.dim() - 1))
    elif group_reduce_by == "worker":
        reduced /= group_size
    return reduced


def _sum_over_groups(pair_ids, reduced, num_unique):
    """``(Σ p, Σ p²)`` per id of the pairs' reduced gradients."""
    grad_sum = reduced.new_zeros((num_unique, *reduced.shape[1:]))
    grad_sq_sum = torch.zeros_like(grad_sum)
    grad_sum.index_add_(0, pair_ids, reduced)
    grad_sq_sum.index_add_(0, pair_ids, reduced * reduced)
    return grad_sum, grad_sq_sum


def _sparse_grad_group_reduce_dense(
    index, source_group, grad_outputs, num_unique, num_groups, group_size, group_reduce_by
):
    """``(grad_sum, grad_sq_sum)`` ``[num_unique, ...]`` over a dense (group, id) grid."""
    pairs = source_group.long() * num_unique + index.long()
    reduced = _reduce_pairs(
        pairs, grad_outputs, num_groups * num_unique, group_size, group_reduce_by
    )
    grid = reduced.view(num_groups, num_unique, *grad_outputs.shape[1:])
    return grid.sum(dim=0), (grid * grid).sum(dim=0)


def _sparse_grad_group_reduce_compact(
    index, source_group, grad_outputs, num_unique, group_size, group_reduce_by
):
    """As :func:`_sparse_grad_group_reduce_dense`, holding only the pairs that occur."""
    pairs = source_group.long() * num_unique + index.long()
    active, slot = torch.unique(pairs, return_inverse=True)
    reduced = _reduce_pairs(slot, grad_outputs, active.numel(), group_size, group_reduce_by)
    return _sum_over_groups(active % num_unique, reduced, num_unique)


def _sparse_grad_group_reduce_chunk_compact(
    index,
    source_group,
    grad_outputs,
    num_unique,
    num_groups,
    group_size,
    group_reduce_by,
    chunk_groups,
):
    """As :func:`_sparse_grad_group_reduce_compact`, ``chunk_groups`` groups at a time."""
    if int(chunk_groups) < 1:
        raise ValueError(f"chunk_groups must be >= 1, got {chunk_groups}")
    grad_sum = grad_outputs.new_zeros((num_unique, *grad_outputs.shape[1:]))
    grad_sq_sum = torch.zeros_like(grad_sum)
    for first in range(0, num_groups, int(chunk_groups)):
        chosen = (source_group >= first) & (source_group < first + int(chunk_groups))
        part_sum, part_sq_sum = _sparse_grad_group_reduce_compact(
            index[chosen],
            source_group[chosen],
            grad_outputs[chosen],
            num_unique,
            group_size,
            group_reduce_by,
        )
        grad_sum += part_sum
        grad_sq_sum += part_sq_sum
    return grad_sum, grad_sq_sum


def _sparse_grad_group_reduce(
    index,
    source_group,
    grad_outputs,
    num_unique,
    num_groups,
    group_size,
    group_reduce_by,
    group_reduce_impl,
    chunk_groups,
):
    """``(grad_sum, grad_sq_sum)`` computed the ``group_reduce_impl`` way (module docstring)."""
    if group_reduce_impl == "dense":
        return _sparse_grad_group_reduce_dense(
            index, source_group, grad_outputs, num_unique, num_groups, group_size, group_reduce_by
        )
    if group_reduce_impl == "compact":
        return _sparse_grad_group_reduce_compact(
            index, source_group, grad_outputs, num_unique, group_size, group_reduce_by
        )
    if group_reduce_impl == "chunk_compact":
        return _sparse_grad_group_reduce_chunk_compact(
            index,
            source_group,
            grad_outputs,
            num_unique,
            num_groups,
            group_size,
            group_reduce_by,
            chunk_groups,
        )
    raise ValueError(
        f"group_reduce_impl must be one of {GROUP_REDUCE_IMPLS}, got {group_reduce_impl!r}"
    )
