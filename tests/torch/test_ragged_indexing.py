"""RaggedTensor indexing: each row sliced with Python's rules, against nested Python lists."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from recis.backends.torch.ragged import RaggedTensor


def _nested(rng, depth, rows):
    if depth == 0:
        return [int(x) for x in rng.integers(1, 100, size=rows)]
    return [_nested(rng, depth - 1, int(n)) for n in rng.integers(0, 4, size=rows)]


def _ragged(nested, depth):
    offsets, level = [], nested
    for _ in range(depth):
        offsets.append(torch.tensor(np.cumsum([0] + [len(x) for x in level])))
        level = [y for x in level for y in x]
    return RaggedTensor(torch.tensor(level, dtype=torch.int64), offsets)


def _as_lists(r, depth):
    values, offsets = r.values().tolist(), [o.tolist() for o in r.offsets()]
    items = values
    for level in reversed(offsets):
        items = [items[a:b] for a, b in itertools.pairwise(level)]
    return items


def _apply(nested, keys):
    first, *rest = keys
    rows = nested[first]
    if not rest:
        return rows
    if isinstance(first, int):
        return _apply(rows, rest)
    return [_apply(row, rest) for row in rows]


SLICES = [
    slice(None),
    slice(1, 3),
    slice(-2, None),
    slice(None, None, 2),
    slice(-3, -1),
    slice(5, 9),
]


@pytest.mark.parametrize("depth", [1, 2])
def test_slices_on_every_axis_match_list_slicing(depth):
    rng = np.random.default_rng(depth)
    nested = _nested(rng, depth, 6)
    r = _ragged(nested, depth)
    for keys in np.array(np.meshgrid(*[range(len(SLICES))] * (depth + 1))).T.reshape(-1, depth + 1):
        key = tuple(SLICES[k] for k in keys)
        assert _as_lists(r[key], depth) == _apply(nested, list(key)), key


def test_integer_first_axis_drops_it_and_other_axes_refuse_integers():
    r = _ragged([[1, 2], [3], [4, 5, 6]], 1)
    assert r[-1].tolist() == [4, 5, 6]
    nested3 = [[[1], [2, 3]], [[4, 5, 6]]]
    r3 = _ragged(nested3, 2)
    assert _as_lists(r3[0, 1:], 1) == [[2, 3]]
    with pytest.raises(IndexError, match="first axis"):
        r3[:, 0]
    with pytest.raises(IndexError, match="out of range"):
        r[3]
    with pytest.raises(IndexError, match="too many indices"):
        r[:, :, :]


def test_new_axes_and_ellipsis_follow_dense_indexing():
    r = _ragged([[[1], [2, 3]], [[4, 5, 6]], []], 2)
    dense = r.to_dense()
    for key in [
        (None,),
        (slice(None), None),
        (slice(None), slice(None), None),
        (..., None),
        (..., slice(1)),
    ]:
        assert torch.equal(r[key].to_dense(), dense[key]), key
    weighted = RaggedTensor(
        torch.tensor([1, 2, 3]), [torch.tensor([0, 2, 3])], weight=torch.tensor([0.5, 1.0, 2.0])
    )
    assert weighted[:, 1:].weight().tolist() == [1.0]
