"""RaggedTensor: RecIS's methods, shapes and zero-copy exchange with the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recis.backends.torch.ragged import RaggedPadInfo, RaggedTensor
from recis.core.ragged import Ragged


def _example():
    return RaggedTensor(
        torch.tensor([1, 2, 3, 4]),
        [torch.tensor([0, 3, 3, 4])],
        weight=torch.tensor([0.5, 1.0, 1.5, 2.0]),
    )


def test_shape_resolves_placeholders_and_fixed_dims():
    r = _example()
    assert r.shape == (3, 3) and r.size() == (3, 3) and r.max_length == 3
    r.set_dim_by_rank(5, 1)
    assert r.shape == (3, 5) and r.get_shape(1) == 5 and r.real_shape(1) == (5,)
    assert r.to_dense().tolist() == [[1, 2, 3, 0, 0], [0, 0, 0, 0, 0], [4, 0, 0, 0, 0]]


def test_two_level_sequences_densify_to_three_dims():
    r = RaggedTensor(torch.tensor([1, 2, 3]), [torch.tensor([0, 2, 3]), torch.tensor([0, 1, 1, 3])])
    assert r.shape == (2, 2, 2)
    assert r.to_dense(-1).tolist() == [[[1, -1], [-1, -1]], [[2, 3], [-1, -1]]]


def test_engine_view_shares_memory_both_ways():
    r = _example()
    engine = r.to_engine()
    assert engine.values.ctypes.data == r.values().data_ptr()
    assert engine.weights.ctypes.data == r.weight().data_ptr()
    back = RaggedTensor.from_engine(engine)
    assert back.values().data_ptr() == r.values().data_ptr()
    assert back.offsets()[0].data_ptr() == r.offsets()[0].data_ptr()


def test_from_dense_keeps_rows_or_strips_trailing_padding_and_from_numpy_shares():
    dense = torch.tensor([[5, 0, 6, 0], [0, 0, 0, 0]])
    whole = RaggedTensor.from_dense(dense)
    assert torch.equal(whole.values(), dense.reshape(-1)) and whole.shape == (2, 4)
    assert whole.offsets()[0].tolist() == [0, 4, 8]
    r = RaggedTensor.from_dense(dense, check_invalid=True)
    assert r.values().tolist() == [5, 0, 6] and r.offsets()[0].tolist() == [0, 3, 3]
    values = np.array([1, 2], np.int64)
    shared = RaggedTensor.from_numpy(values, np.array([0, 2]))
    assert shared.values().data_ptr() == values.ctypes.data


def test_to_sparse_matches_dense():
    r = _example()
    np.testing.assert_array_equal(r.to_sparse().to_dense().numpy(), r.to_dense().numpy())


def test_to_and_clone_keep_structure_and_pad_info():
    r = _example()
    info = RaggedPadInfo(drop_nums=torch.tensor([1, 0, 0]))
    r.set_pad_info(info)
    moved = r.to("cpu")
    cast = r.to(torch.int32)
    assert moved.pad_info is info and moved.offsets()[0].dtype == torch.int64
    assert cast.dtype == torch.int32 and cast.offsets()[0].dtype == torch.int64
    clone = r.clone()
    assert clone.values() is r.values() and clone.weight() is r.weight()


def test_bad_parts_name_the_problem():
    with pytest.raises(ValueError, match="last offset 5 must equal the number of values"):
        RaggedTensor(torch.tensor([1, 2]), [torch.tensor([0, 5])]).to_engine()
    with pytest.raises(ValueError, match="dense_shape"):
        RaggedTensor(torch.tensor([1]), [torch.tensor([0, 1])], dense_shape=(1,))
    assert isinstance(_example().to_engine(), Ragged)
