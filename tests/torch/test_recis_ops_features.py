"""torch.ops.recis ids partition, feature cross and fused 3-D cutoff with real values."""

from __future__ import annotations

import torch

import recis.backends.torch.ops  # noqa: F401
from recis.core.string_hash import murmur_pair


def partition_reference(ids, parts):
    unique, inverse = torch.unique(ids, return_inverse=True)
    slices = torch.fmod(unique, 65536).abs()
    order = torch.argsort(slices).tolist()  # ties in torch's order, as RecIS
    size, extra = divmod(65536, parts)
    bounds = [0]
    for p in range(parts):
        bounds.append(bounds[-1] + size + (p < extra))
    counts = [sum(bounds[p] <= int(slices[i]) < bounds[p + 1] for i in order) for p in range(parts)]
    position = {i: k for k, i in enumerate(order)}
    return unique[order], counts, [position[int(i)] for i in inverse]


def test_ids_partition_groups_distinct_ids_by_slice_range():
    torch.manual_seed(2)
    ids = torch.cat([torch.randint(-(10**9), 10**9, (300,)), torch.tensor([5, 5, -5, 65536 + 5])])
    unique, counts, reverse = torch.ops.recis.ids_partition(ids, 7)
    want_unique, want_counts, want_reverse = partition_reference(ids, 7)
    assert unique.tolist() == want_unique.tolist()
    assert torch.equal(
        torch.sort(torch.fmod(unique, 65536).abs()).values, torch.fmod(unique, 65536).abs()
    )
    assert counts.tolist() == want_counts and reverse.tolist() == want_reverse
    assert torch.equal(unique[reverse], ids)


def test_feature_cross_ragged_crosses_distinct_ids_with_multiplied_weights():
    x = torch.tensor([1, 2, 1, 3]), torch.tensor([0, 3, 4], dtype=torch.int32)
    x_weight = torch.tensor([0.5, 2.0, 1.0, 3.0])
    y = torch.tensor([10, 20, 30]), torch.tensor([0, 1, 1, 3], dtype=torch.int32)
    y_weight = torch.tensor([4.0, 1.0, 1.0])
    values, offsets, weights = torch.ops.recis.feature_cross_ragged(*x, x_weight, *y, y_weight)
    pairs = murmur_pair(torch.tensor([1, 2]).numpy(), torch.tensor([10, 10]).numpy())
    assert values.tolist() == pairs.tolist()  # row 1 of y is empty; y's third row has no x
    assert offsets.tolist() == [0, 2, 2] and offsets.dtype == torch.int32
    assert weights.tolist() == [6.0, 8.0]  # id 1 twice: (0.5 + 1.0) · 4


def test_fused_ragged_cutoff_3d_drops_and_pads_on_the_chosen_sides():
    values = torch.tensor([10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
    outer = torch.tensor([0, 3, 4, 6], dtype=torch.int32)
    inner = torch.tensor([0, 1, 4, 4, 8, 8, 10], dtype=torch.int32)
    cut = torch.ops.recis.fused_ragged_cutoff_3D(
        [values, values],
        [outer, outer],
        [inner, inner],
        torch.tensor([2, 2]),
        torch.tensor([False, True]),
        torch.tensor([False, True]),
    )
    right, left = ([t[k].tolist() for t in cut] for k in (0, 1))
    assert right == [[10, 11, 12, 13, 14, 15, 16, 17, 18, 19], [0, 2, 4, 6], [0, 1, 4, 8, 8, 8, 10]]
    assert left == [[11, 12, 13, 14, 15, 16, 17, 18, 19], [0, 2, 4, 6], [0, 3, 3, 3, 7, 7, 9]]
    assert cut[1][0].dtype == torch.int32 and cut[2][0].dtype == torch.int32


def test_fused_ragged_cutoff_3d_pads_sequences_of_empty_lists():
    values = torch.tensor([], dtype=torch.float64)
    cut = torch.ops.recis.fused_ragged_cutoff_3D(
        [values],
        [torch.tensor([0, 0, 0])],
        [torch.tensor([0])],
        torch.tensor([3]),
        torch.tensor([False]),
        torch.tensor([False]),
    )
    assert cut[0][0].tolist() == [] and cut[1][0].tolist() == [0, 3, 6]
    assert cut[2][0].tolist() == [0] * 7
