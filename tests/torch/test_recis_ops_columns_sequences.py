"""The column, sequence, Adam-TF and GAUC ops of torch.ops.recis: values against plain Python
references, schemas and fake kernels through torch.library.opcheck."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import recis.backends.torch.ops  # noqa: F401
from recis.backends.torch.functional import array_ops, hash_ops
from recis.backends.torch.functional.ragged_ops import ragged_tile
from recis.backends.torch.ragged import RaggedPadInfo, RaggedTensor
from recis.nn.functional.compute_real_length import compute_real_length
from recis.nn.functional.fused_ops import fused_number_mask, fused_string_mask
from recis.nn.functional.ragged_ops import index_select_ragged_by_padded_index

OPS = torch.ops.recis


def _strings(texts):
    data = torch.tensor(list(b"".join(texts)), dtype=torch.uint8).view(torch.int8)
    offsets = torch.tensor(np.cumsum([0, *map(len, texts)]), dtype=torch.int64)
    return data, offsets


def samples():
    data, offsets = _strings([b"ab", b"", b"abc"])
    ids = torch.tensor([3, -1, 12])
    return {
        "fused_hash": ([data], [offsets], "murmur"),
        "fused_bucketized": ([torch.tensor([0.5, 2.0])], [torch.tensor([1.0, 2.0])]),
        "bucketize_op": (torch.tensor([0.5, 2.0]), torch.tensor([1.0, 2.0])),
        "fused_uint64_mod": ([ids], torch.tensor([10])),
        "uint64_mod": (ids, 7),
        "fused_multi_hash": (
            [ids],
            [torch.tensor([1, 3])],
            [torch.tensor([7, 7])],
            [torch.tensor([4, 4])],
        ),
        "multi_hash": (ids, torch.tensor([1, 3]), torch.tensor([7, 7]), 4),
        "ids_encode": ([ids, ids], torch.tensor([0, 1])),
        "fused_int64_to_string_int8": ([ids],),
        "fused_string_mask": ([data], [offsets], [["ab", "x"]]),
        "fused_number_mask": ([torch.tensor([1.0, 2.0])], [[2.0]]),
        "fused_ragged_cutoff_2D": (
            [ids],
            [torch.tensor([0, 2, 3])],
            torch.tensor([1]),
            torch.tensor([True]),
            torch.tensor([False]),
        ),
        "ragged_tile": (
            [2],
            [2],
            torch.tensor([0, 1, 1]),
            torch.tensor([0, 1, 3]),
            torch.randn(2, 3),
        ),
        "ragged_tile_back": (
            torch.tensor([[2], [2]]),
            [2, 1, 2, 2],
            torch.tensor([0, 1, 1]),
            torch.tensor([0, 1, 3]),
            torch.randn(4, 3),
        ),
        "gather_ragged_by_padded_index": (
            torch.tensor([0, 1]),
            torch.tensor(True),
            torch.tensor([1, 0]),
            torch.tensor(True),
            torch.tensor([[0, 1], [1, 2]]),
            torch.tensor([1, 0]),
            [torch.tensor([0, 1, 3])],
            [ids],
        ),
        "compute_real_length": (
            ids,
            [torch.tensor([0, 2]), torch.tensor([0, 1, 3])],
            ids,
            [torch.tensor([0, 2]), torch.tensor([0, 1, 3])],
            2,
        ),
        "segment_sum": (
            torch.randn(3, 2),
            None,
            torch.tensor([0, 2, 2]),
            torch.tensor([0, 0, 1]),
            2,
        ),
        "segment_mean": (None, torch.rand(3), torch.tensor([0, 0, 1]), 2),
        "gauc_calc": (
            torch.tensor([1.0, 0.0, 1.0]),
            torch.tensor([0.2, 0.1, 0.5]),
            torch.tensor([4, 4, 4]),
        ),
        "adam_tf_apply": (
            torch.randn(3),
            torch.randn(3),
            torch.randn(3),
            torch.rand(3),
            2.0,
            0.1,
            0.9,
            0.99,
            1e-8,
        ),
        "fused_adamw_tf_apply": (
            [torch.randn(3)],
            [torch.randn(3)],
            [torch.randn(3)],
            [torch.rand(3)],
            [torch.tensor(1.0)],
            0.01,
            0.1,
            0.9,
            0.99,
            1e-8,
        ),
    }


@pytest.mark.parametrize("name", sorted(samples()))
def test_opcheck(name):
    torch.library.opcheck(getattr(OPS, name).default, samples()[name])


def test_ragged_to_sparse_op_is_the_function():
    sparse = OPS.ragged_to_sparse(torch.tensor([5, 6, 7]), [torch.tensor([0, 2, 3])])
    assert sparse.to_dense().tolist() == [[5, 6], [7, 0]]


@pytest.mark.parametrize("hash_type", ["farm", "murmur", "djb2", "sdbm"])
def test_fused_hash_op_gives_the_hash_functions_values(hash_type):
    data, offsets = _strings([b"user_1", b"", b"\xff\x00z"])
    function = getattr(
        hash_ops, {"farm": "farmhash", "murmur": "murmurhash"}.get(hash_type, hash_type + "hash")
    )
    assert (
        OPS.fused_hash([data], [offsets], hash_type)[0].tolist()
        == function([data], [offsets])[0].tolist()
    )
    with pytest.raises(ValueError, match="hash_type"):
        OPS.fused_hash([data], [offsets], "md5")


def test_single_column_ops_match_python_arithmetic():
    ids = torch.tensor([12345, -1, 7, -(2**63)])
    assert OPS.uint64_mod(ids, 1000).tolist() == [(i % 2**64) % 1000 for i in ids.tolist()]
    values = torch.tensor([0.5, 1.0, 2.5, 9.0])
    assert OPS.bucketize_op(values, torch.tensor([1.0, 2.0])).tolist() == [0, 1, 2, 2]
    hashes = OPS.multi_hash(ids, torch.tensor([3, 5]), torch.tensor([101, 103]), 10)
    want = array_ops.multi_hash(ids, [3, 5], [101, 103], 10)
    assert [h.tolist() for h in hashes] == [w.tolist() for w in want]
    assert hashes[1][[0, 2]].tolist() == [(12345 * 5 % 103) % 10, (7 * 5 % 103) % 10]


def test_string_and_number_masks_against_python_sets():
    rng = np.random.default_rng(0)
    words = [bytes(rng.integers(97, 100, size=n)) for n in rng.integers(0, 4, size=200)]
    data, offsets = _strings(words)
    masked = {"a", "bc", "", "ccc"}
    (got,) = fused_string_mask([data], [offsets], [sorted(masked)])
    assert got.tolist() == [0.0 if w.decode() in masked else 1.0 for w in words]
    for dtype in (torch.int32, torch.int64, torch.float32, torch.float64):
        numbers = torch.tensor(rng.integers(-3, 4, size=50)).to(dtype)
        (got,) = fused_number_mask([numbers], [[-3.0, 0.0, 2.0]])
        assert got.tolist() == [0.0 if x in (-3, 0, 2) else 1.0 for x in numbers.tolist()]
    assert torch.equal(
        OPS.fused_string_mask([data], [offsets], [["a"]])[0],
        fused_string_mask([data], [offsets], [["a"]])[0],
    )


def test_masks_name_the_bad_column():
    with pytest.raises(TypeError, match=r"inputs\[1\]"):
        fused_number_mask([torch.zeros(2), torch.zeros(2, dtype=torch.int8)], [[], []])
    with pytest.raises(ValueError, match="2 inputs but 1 mask lists"):
        fused_string_mask([torch.zeros(1, dtype=torch.int8)] * 2, [torch.tensor([0, 1])] * 2, [[]])


def _gather_reference(values, offsets, drop, pad, drop_side, pad_side, padded, rows):
    out, mask = [], []
    for j, r in enumerate(rows):
        row = values[offsets[r] : offsets[r + 1]]
        for p in padded[j]:
            col = p + drop[r] * drop_side - pad[r] * pad_side
            ok = 0 <= col < len(row)
            out.append(row[col] if ok else 0)
            mask.append(ok)
    return out, mask


@pytest.mark.parametrize(
    ("drop_side", "pad_side"), list(itertools.product([False, True], repeat=2))
)
def test_index_select_ragged_by_padded_index_against_a_loop(drop_side, pad_side):
    rng = np.random.default_rng(int(drop_side) * 2 + int(pad_side))
    lengths = rng.integers(0, 7, size=6)
    offsets = np.r_[0, np.cumsum(lengths)]
    values = rng.integers(1, 100, size=offsets[-1])
    drop, pad = np.maximum(lengths - 4, 0), np.maximum(4 - lengths, 0)
    padded, rows = rng.integers(0, 4, size=(9, 3)), rng.integers(0, 6, size=9)
    info = RaggedPadInfo(
        torch.tensor(drop), torch.tensor(pad), torch.tensor(drop_side), torch.tensor(pad_side)
    )
    source = RaggedTensor(torch.tensor(values), [torch.tensor(offsets)])
    (out,), (mask,) = index_select_ragged_by_padded_index(
        info, torch.tensor(padded), torch.tensor(rows), [source]
    )
    want, want_mask = _gather_reference(
        values.tolist(),
        offsets.tolist(),
        drop,
        pad,
        drop_side,
        pad_side,
        padded.tolist(),
        rows.tolist(),
    )
    assert out.values().tolist() == want and mask.tolist() == want_mask
    assert out.offsets()[0].tolist() == list(range(0, 28, 3))


def test_ragged_tile_back_is_the_gradient_of_the_tile():
    table = torch.randn(4, 3, requires_grad=True)
    indices, offsets = torch.tensor([0, 3, 3, 1, 2]), torch.tensor([0, 2, 2, 5])
    left = torch.tensor([False, True])
    out = ragged_tile([2, 1], [2, 2], indices, offsets, table, left)
    dy = torch.randn_like(out)
    (out * dy).sum().backward()
    tiled, shape = OPS.ragged_tile([2, 1], [2, 2], indices, offsets, table.detach(), left)
    assert torch.equal(tiled, out.detach())
    dx = OPS.ragged_tile_back(shape, [4, 2, 2, 2], indices, offsets, dy, left)
    assert torch.allclose(dx, table.grad)


def _adam_tf(p, g, m, v, t, lr, b1, b2, eps):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return p - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps), m, v


def test_adam_tf_ops_follow_the_formula():
    rng = np.random.default_rng(3)
    p, g, m = (rng.standard_normal(5) for _ in range(3))
    v = rng.random(5)
    tensors = [torch.tensor(x) for x in (p, g, m, v)]
    OPS.adam_tf_apply(*tensors, 3.0, 0.01, 0.9, 0.999, 1e-6)
    want = _adam_tf(p, g, m, v, 3, 0.01, 0.9, 0.999, 1e-6)
    for got, expected in zip((tensors[0], tensors[2], tensors[3]), want, strict=True):
        assert np.allclose(got.numpy(), expected)
    step = torch.tensor(2.0)
    params, state = [torch.tensor(p)], ([torch.tensor(m)], [torch.tensor(v)])
    OPS.fused_adamw_tf_apply(params, [torch.tensor(g)], *state, [step], 0.1, 0.01, 0.9, 0.999, 1e-6)
    assert step.item() == 3.0
    assert np.allclose(params[0].numpy(), _adam_tf(p * 0.9, g, m, v, 3, 0.01, 0.9, 0.999, 1e-6)[0])


def _pairwise_auc(labels, scores):
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def test_gauc_calc_gives_each_mixed_group_its_pairwise_auc_and_clicks():
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(30), rng.integers(1, 8, size=30))
    labels = rng.integers(0, 2, size=groups.size).astype(np.float32)
    scores = rng.integers(0, 5, size=groups.size) / 4  # ties on purpose
    aucs, clicks = OPS.gauc_calc(
        torch.tensor(labels), torch.tensor(scores, dtype=torch.float32), torch.tensor(groups)
    )
    want = []
    for g in np.unique(groups):
        y, s = labels[groups == g], scores[groups == g]
        if 0 < y.sum() < y.size:
            want.append((_pairwise_auc(y.tolist(), s.tolist()), int(y.sum())))
    assert np.allclose(aucs.numpy(), [a for a, _ in want]) and clicks.tolist() == [
        c for _, c in want
    ]
    two_columns = OPS.gauc_calc(
        torch.tensor(np.stack([1 - labels, labels], 1)),
        torch.tensor(np.stack([1 - scores, scores], 1), dtype=torch.float32),
        torch.tensor(groups),
    )
    assert torch.allclose(two_columns[0], aucs)


def test_compute_real_length_counts_positions_valid_in_both_features():
    outer, inner = torch.tensor([0, 2, 5]), torch.tensor([0, 1, 3, 3, 4, 6])
    item = RaggedTensor(torch.tensor([1, 0, 2, 4, 0, 6]), [outer, inner])
    seller = RaggedTensor(torch.tensor([9, 0, 0, 0, 7, 7]), [outer, inner])
    assert compute_real_length(item, seller).tolist() == [1.0, 1.0]
    texts = [[[b"0"], [b"ab", b""]], [[b""], [b"0", b"x"], [b"7"]]]
    strings = [s for sample in texts for position in sample for s in position]
    data, chars = _strings(strings)
    positions = torch.tensor(np.cumsum([0] + [len(p) for sample in texts for p in sample]))
    samples_ = torch.tensor([0, 2, 5])
    words = RaggedTensor(data, [samples_, positions, chars])
    assert compute_real_length(words, words).tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="Batch sizes do not match"):
        compute_real_length(
            item, RaggedTensor(torch.tensor([1]), [torch.tensor([0, 1]), torch.tensor([0, 1])])
        )
