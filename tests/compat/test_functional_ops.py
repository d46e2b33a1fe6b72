"""RecIS's ``recis.nn.functional`` ops on CPU tensors: values as RecIS documents them, gradients."""

import numpy as np
import pytest
import torch

from recis.core.string_hash import hash_bytes, murmur_pair
from recis.nn.functional import array_ops, embedding_ops, fused_ops, hash_ops, ragged_ops


def _strings(*texts):
    data = torch.tensor(list(b"".join(texts)), dtype=torch.uint8).view(torch.int8)
    offsets = torch.tensor(np.cumsum([0, *map(len, texts)]), dtype=torch.int32)
    return data, offsets


# hash_ops


@pytest.mark.parametrize(
    ("function", "hash_type"), [("farmhash", "farm"), ("murmurhash", "murmur")]
)
def test_string_hashes_equal_the_engine_hash_of_each_string(function, hash_type):
    texts = (b"user_42", b"", b"item")
    data, offsets = _strings(*texts)
    (hashes,) = getattr(hash_ops, function)([data], [offsets])
    assert hashes.dtype == torch.int64
    assert hashes.tolist() == [hash_bytes(t, hash_type) for t in texts]


def test_djb2_and_sdbm_hash_per_string():
    data, offsets = _strings(b"ab", b"")
    assert hash_ops.djb2hash([data], [offsets])[0].tolist() == [(5381 * 33 + 97) * 33 + 98, 5381]
    assert hash_ops.sdbmhash([data], [offsets])[0].tolist() == [97 * 65599 + 98, 0]


def test_string_hashes_reject_non_byte_inputs():
    with pytest.raises(TypeError, match="inputs\\[0\\]"):
        hash_ops.farmhash([torch.zeros(3)], [torch.tensor([0, 3])])


# fused_ops and array_ops


def test_fused_bucketize_counts_boundaries_at_or_below_each_value():
    values = [torch.tensor([0.5, 1.0, 1.5, 5.0]), torch.tensor([-1.0, 3.0])]
    boundaries = [torch.tensor([1.0, 2.0]), torch.tensor([0.0, 3.0, 4.0])]
    out = fused_ops.fused_bucketize_gpu(values, boundaries)
    assert [o.tolist() for o in out] == [[0, 1, 1, 2], [0, 2]]


def test_fused_uint64_mod_reads_ids_as_unsigned():
    out = fused_ops.fused_uint64_mod_gpu([torch.tensor([-1, 10]), torch.tensor([7])], [10, 3])
    assert [o.tolist() for o in out] == [[(2**64 - 1) % 10, 0], [1]]


def test_fused_ids_encode_puts_the_table_above_52_bits():
    ids = [torch.tensor([1, -1]), torch.tensor([2**52 + 5])]
    out = fused_ops.fused_ids_encode_gpu(ids, [3, 1])
    assert out.tolist() == [(3 << 52) + 1, (3 << 52) + 2**52 - 1, (1 << 52) + 5]
    assert embedding_ops.ids_encode(ids, [3, 1]).tolist() == out.tolist()


def test_fused_multi_hash_lists_every_hash_of_every_input():
    x = [torch.tensor([10, -3]), torch.tensor([4])]
    muls = [torch.tensor([1, 3]), torch.tensor([5])]
    primes = [torch.tensor([7, 11]), torch.tensor([13])]
    buckets = [torch.tensor([4, 5]), torch.tensor([6])]
    out = fused_ops.fused_multi_hash(x, muls, primes, buckets)
    assert [o.tolist() for o in out] == [[3 % 4, (-3 % 7) % 4], [(30 % 11) % 5, (-9 % 11) % 5], [1]]


def test_int64_to_string_int8_writes_decimal_ascii():
    outputs, offsets = fused_ops.fused_int64_to_string_int8([torch.tensor([-12, 0, 345])])
    assert bytes(outputs[0].view(torch.uint8).tolist()) == b"-120345"
    assert offsets[0].tolist() == [0, 3, 4, 7]


def test_array_ops_keep_the_input_shape():
    assert array_ops.bucketize(torch.tensor([[0.0, 2.0]]), [1.0]).tolist() == [[0, 1]]
    assert array_ops.bucketize_mod(torch.tensor([[11], [-1]]), 10).tolist() == [[1], [5]]
    hashes = array_ops.multi_hash(torch.tensor([[5, 6]]), [1, 3, 5, 7], [7, 7, 7, 7], 4)
    assert [h.tolist() for h in hashes] == [[[1, 2]], [[1, 0]], [[0, 2]], [[0, 0]]]


# ragged_ops


def test_dense_to_ragged_strips_trailing_invalid_values_only_when_asked():
    dense = torch.tensor([[1, 0, 3, 0], [0, 0, 0, 0]], dtype=torch.int32)
    values, offsets = ragged_ops.dense_to_ragged(dense, check_invalid=True)
    assert values.tolist() == [1, 0, 3] and offsets[0].tolist() == [0, 3, 3]
    assert offsets[0].dtype == torch.int32 and values.dtype == torch.int32
    values, offsets = ragged_ops.dense_to_ragged(torch.arange(12).reshape(2, 3, 2))
    assert values.tolist() == list(range(12))
    assert [o.tolist() for o in offsets] == [[0, 3, 6], [0, 2, 4, 6, 8, 10, 12]]


def test_ragged_to_dense_and_to_sparse_of_two_levels():
    values = torch.tensor([1.0, 2.0, 3.0])
    offsets = [torch.tensor([0, 2, 3]), torch.tensor([0, 2, 2, 3])]
    dense = ragged_ops.ragged_to_dense(values, offsets, -1.0)
    assert dense.tolist() == [[[1.0, 2.0], [-1.0, -1.0]], [[3.0, -1.0], [-1.0, -1.0]]]
    sparse = ragged_ops.ragged_to_sparse(values, offsets)
    assert sparse.shape == (2, 2, 2)
    assert sparse.indices().T.tolist() == [[0, 0, 0], [0, 0, 1], [1, 0, 0]]
    with pytest.raises(RuntimeError, match="Wrong sparse tensor"):
        ragged_ops.ragged_to_sparse(torch.zeros(0), [torch.tensor([0, 0])])


def test_cutoff_2d_drops_from_the_chosen_side_and_counts():
    values = [torch.tensor([1, 2, 3, 4, 5]), torch.tensor([7.0, 8.0])]
    offsets = [torch.tensor([0, 4, 5], dtype=torch.int32), torch.tensor([0, 2])]
    out = ragged_ops.fused_ragged_cutoff_2D(
        values,
        offsets,
        torch.tensor([2, 1]),
        torch.tensor([True, False]),
        torch.tensor([False, False]),
    )
    new_values, new_offsets, drops, pads = out[:4]
    assert new_values[0].tolist() == [3, 4, 5] and new_values[1].tolist() == [7.0]
    assert new_offsets[0].tolist() == [0, 2, 3] and new_offsets[0].dtype == torch.int32
    assert [d.tolist() for d in drops] == [[2, 0], [1]]
    assert [p.tolist() for p in pads] == [[0, 1], [0]]
    assert drops[0].dtype == torch.int32


def test_cutoff_rejects_inputs_without_rows():
    with pytest.raises(RuntimeError, match="0 rows"):
        ragged_ops.fused_ragged_cutoff_2D(
            [torch.zeros(0)],
            [torch.tensor([0])],
            torch.tensor([2]),
            torch.tensor([False]),
            torch.tensor([False]),
        )


@pytest.mark.parametrize(
    ("drop_left", "pad_left", "inner"),
    [
        (False, False, [0, 1, 3, 4, 4]),  # seq 0 keeps [10], [11, 12]; seq 1 [13] then []
        (True, True, [0, 2, 2, 2, 3]),  # seq 0 keeps [11, 12], []; seq 1 gets [] then [13]
    ],
)
def test_cutoff_3d_keeps_whole_inner_lists_and_pads_with_empty_ones(drop_left, pad_left, inner):
    values = torch.tensor([10, 11, 12, 13])
    offsets = [[torch.tensor([0, 3, 4]), torch.tensor([0, 1, 3, 3, 4])]]
    new_values, new_offsets = ragged_ops.fused_ragged_cutoff_3D(
        [values], offsets, torch.tensor([2]), torch.tensor([drop_left]), torch.tensor([pad_left])
    )
    assert new_offsets[0][0].tolist() == [0, 2, 4]
    assert new_offsets[0][1].tolist() == inner
    assert new_values[0].tolist() == ([10, 11, 12, 13] if not drop_left else [11, 12, 13])


def test_feature_cross_crosses_the_first_common_rows_with_summed_weights():
    x_val, x_offsets = torch.tensor([1, 1, 2]), torch.tensor([0, 2, 3, 3], dtype=torch.int32)
    y_val, y_offsets = torch.tensor([10, 20]), torch.tensor([0, 1, 2], dtype=torch.int32)
    x_weight = torch.tensor([0.5, 0.25, 2.0])
    ids, offsets, weights = ragged_ops.feature_cross_ragged(
        x_val, x_offsets, y_val, y_offsets, x_weight=x_weight
    )
    expected = murmur_pair(np.array([1, 2]), np.array([10, 20]))
    assert ids.tolist() == expected.tolist()
    assert offsets.tolist() == [0, 1, 2] and offsets.dtype == torch.int32
    assert weights.tolist() == [0.75, 2.0]


def test_ragged_tile_places_rows_and_sends_gradients_back():
    table = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], requires_grad=True)
    indices, offset = torch.tensor([0, 1, 2, 2, 1]), torch.tensor([0, 3, 4, 5])
    out = ragged_ops.ragged_tile(
        [2, 1], [2, 3], indices, offset, table, torch.tensor([False, True]), check_enable=True
    )
    # feature 0: row [0, 1, 2] keeps its first 2; row [2]; feature 1 (left-padded): row [1]
    assert out[:, 0].tolist() == [1.0, 3.0, 5.0, 0.0, 0.0, 0.0, 3.0]
    out.backward(torch.arange(14.0).reshape(7, 2))
    assert table.grad.tolist() == [[0.0, 1.0], [2.0 + 12.0, 3.0 + 13.0], [4.0, 5.0]]


def test_ragged_tile_gradient_matches_finite_differences():
    table = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    indices, offset = torch.tensor([3, 1, 1, 0, 2]), torch.tensor([0, 2, 2, 5])
    tile = lambda t: ragged_ops.ragged_tile([3], [2], indices, offset, t)  # noqa: E731
    assert torch.autograd.gradcheck(tile, (table,))


# embedding_ops


def test_sparse_segment_sum_and_weight_norm():
    data = torch.tensor([[1.0], [10.0]], requires_grad=True)
    weight, index, segments = (
        torch.tensor([1.0, 2.0, 4.0]),
        torch.tensor([0, 1, 1]),
        torch.tensor([1, 0, 1]),
    )
    out = embedding_ops.segment_sum_sparse(data, weight, index, segments, 3)
    assert out.tolist() == [[20.0], [41.0], [0.0]]
    out.sum().backward()
    assert data.grad.tolist() == [[1.0], [6.0]]
    norm = embedding_ops.weight_norm_sparse(data, weight, segments, 3)
    torch.testing.assert_close(norm, torch.tensor([0.2, 1.0, 0.8]))
    assert embedding_ops.weight_norm_sparse(
        data, weight, segments, 3, backend="torch"
    ).tolist() == [
        0.5,
        2.0,
        2.0,
    ]
    with pytest.raises(RuntimeError, match="backend"):
        embedding_ops.segment_sum_sparse(data, weight, index, segments, 3, backend="cuda")


def test_sparse_and_ragged_mean_agree_with_a_torch_reference():
    torch.manual_seed(0)
    rows = torch.randn(5, 4)
    weight = torch.rand(7) + 0.5
    index, offsets = torch.tensor([0, 4, 4, 1, 2, 3, 0]), torch.tensor([0, 3, 3, 7])
    segments = embedding_ops.gen_segment_indices_by_offset(offsets)
    sums = torch.zeros(3, 4).index_add(0, segments, rows[index] * weight[:, None])
    totals = torch.zeros(3).index_add(0, segments, weight)
    expected = sums / totals.clamp(min=1e-30)[:, None]
    for reduce in ("ragged", "sparse"):
        leaf = rows.clone().requires_grad_()
        if reduce == "ragged":
            out = embedding_ops.ragged_embedding_segment_reduce(
                leaf, weight, index, offsets, "mean"
            )
        else:
            out = embedding_ops.sparse_embedding_segment_reduce(
                leaf, weight, index, segments, 3, "mean"
            )
        torch.testing.assert_close(out, expected)
        out.sum().backward()
        reference = rows.clone().requires_grad_()
        ref_sums = torch.zeros(3, 4).index_add(0, segments, reference[index] * weight[:, None])
        (ref_sums / totals.clamp(min=1e-30)[:, None]).sum().backward()
        torch.testing.assert_close(leaf.grad, reference.grad)


def test_ragged_reduce_tile_combiner_uses_the_tile_lengths():
    rows = torch.tensor([[1.0], [2.0], [3.0]], requires_grad=True)
    index, offsets = torch.tensor([2, 0, 1]), torch.tensor([0, 2, 3])
    kwargs = {"bs": [2], "tile_len": [3], "left_pad": [torch.tensor([False])]}
    out = embedding_ops.ragged_embedding_segment_reduce(rows, None, index, offsets, "tile", kwargs)
    assert out.flatten().tolist() == [3.0, 1.0, 0.0, 2.0, 0.0, 0.0]
    with pytest.raises(AssertionError, match="max"):
        embedding_ops.ragged_embedding_segment_reduce(rows, None, index, offsets, "max")


def test_merge_offsets_shifts_each_tensor_by_the_sizes_before_it():
    merged = embedding_ops.merge_offsets([torch.tensor([0, 2, 5]), torch.tensor([0, 0, 3])])
    assert merged.tolist() == [0, 2, 5, 5, 8]
    sized = embedding_ops.merge_offsets([torch.tensor([0, 2]), torch.tensor([0, 1])], [4, 1])
    assert sized.tolist() == [0, 2, 5]


def test_ids_partition_groups_distinct_ids_by_owner_rank():
    ids = torch.tensor([65536 + 40000, 7, 40000, 7, 3])
    unique, sizes, reverse = embedding_ops.ids_partition(ids, 65536, 2)
    assert sorted(unique[:2].tolist()) == [3, 7]  # slices below 32768: rank 0
    assert sorted(unique[2:].tolist()) == [40000, 65536 + 40000]
    assert sizes.tolist() == [2, 2]
    assert unique[reverse].tolist() == ids.tolist()
