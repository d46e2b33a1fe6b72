"""RecIS feature ops and Feature on torch tensors, RaggedTensors, NumPy arrays and Raggeds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from recis.backends.torch.features.columns import split_ragged, split_values
from recis.backends.torch.features.feature import Feature
from recis.backends.torch.ragged import RaggedPadInfo, RaggedTensor
from recis.core.ragged import Ragged
from recis.features import (
    Bucketize,
    FeatureCross,
    Hash,
    IDMultiHash,
    Mod,
    SelectField,
    SelectFields,
    SequenceTruncate,
)


def ragged_tensor(rows, weights=None, dense_shape=None, dtype=torch.int64) -> RaggedTensor:
    values = torch.tensor([v for row in rows for v in row], dtype=dtype)
    offsets = torch.tensor(np.cumsum([0] + [len(r) for r in rows]))
    weight = None if weights is None else torch.tensor([w for r in weights for w in r])
    return RaggedTensor(values, [offsets], weight, dense_shape)


def rows_of(x: RaggedTensor) -> list[list]:
    offsets = x.offsets()[-1].tolist()
    return [x.values()[a:b].tolist() for a, b in itertools.pairwise(offsets)]


def test_value_ops_return_the_kind_they_were_given():
    for op, expected in [(Mod(10), [3, 5]), (Bucketize([4]), [1, 0])]:
        assert op(torch.tensor([13, -1])).tolist() == expected
        assert op(np.array([13, -1])).tolist() == expected
        assert op(Ragged(np.array([13, -1]), np.array([0, 2]))).values.tolist() == expected
        result = op(torch.tensor([[13], [-1]]))
        assert isinstance(result, torch.Tensor) and result.shape == (2, 1)


def test_value_ops_keep_ragged_structure_weights_dense_shape_and_pad_info():
    x = ragged_tensor([[13, 7], [], [21]], [[0.5, 1.0], [], [2.0]], dense_shape=(-1, 4))
    x.set_pad_info(RaggedPadInfo(torch.tensor([0, 0, 1])))
    result = Mod(10)(x)
    assert rows_of(result) == [[3, 7], [], [1]]
    assert result.offsets()[0] is x.offsets()[0] and result.weight() is x.weight()
    assert result.dense_shape == (-1, 4) and result.pad_info is x.pad_info
    hashed = IDMultiHash([10, 20], prefix="h")(x)
    assert list(hashed) == ["h_0", "h_1"]
    assert rows_of(hashed["h_1"]) == [[39 % 20, 21 % 20], [], [63 % 20]]
    assert hashed["h_0"].dense_shape == (-1, 4)


def test_select_field_dim_sets_last_dense_dim_without_touching_the_input():
    x = ragged_tensor([[1, 2], [3]])
    selected = SelectField("ids", dim=5)({"ids": x})
    assert selected.dense_shape == (-1, 5) and selected.shape == (2, 5)
    assert x.dense_shape == (-1, -1)
    assert SelectField("ids", dim=5, from_dict=False)(x).dense_shape == (-1, 5)
    both = SelectFields([SelectField("a"), SelectField("b")])({"a": 1, "b": 2, "c": 3})
    assert both == [1, 2]


def test_hash_drops_the_string_level_and_keeps_string_weights():
    data = torch.tensor([0, 1, 2, 1, 2, 3], dtype=torch.int8)
    strings = RaggedTensor(
        data,
        [torch.tensor([0, 2, 2]), torch.tensor([0, 3, 6])],
        torch.tensor([0.5, 2.0]),
        dense_shape=(-1, 3, 8),
    )
    hashed = Hash("farm")(strings)
    assert hashed.values().tolist() == [-7736835464683084646, -5546720800891377920]
    assert hashed.offsets()[0].tolist() == [0, 2, 2]
    assert hashed.weight().tolist() == [0.5, 2.0] and hashed.dense_shape == (-1, 3)
    one_level = RaggedTensor(data.view(torch.uint8), [torch.tensor([0, 3, 6])])
    murmur = Hash("murmur")(one_level)
    assert murmur.tolist() == [-4003751876240412087, -1042754718167355375]


def test_feature_cross_on_ragged_tensors():
    x = ragged_tensor([[1001], [1002], [1003]], [[1.0], [2.0], [3.0]], dense_shape=(-1, 1))
    y = ragged_tensor([[1], [2], [3, 3]])
    crossed = FeatureCross()([x, y])
    assert crossed.values().tolist() == [
        -7808879811642834040,
        -4967483181219983279,
        1752425377096056168,
    ]
    assert crossed.weight().tolist() == [1.0, 2.0, 6.0] and crossed.dense_shape == (-1, -1)
    with pytest.raises(ValueError, match="row counts differ"):
        FeatureCross()([x, ragged_tensor([[1]])])


def test_truncate_2d_sets_dense_shape_and_pad_info():
    x = ragged_tensor([[1, 2, 3], [4]], [[1.0, 2.0, 3.0], [4.0]])
    result = SequenceTruncate(2, check_length=False)(x)
    assert rows_of(result) == [[2, 3], [4]]
    assert result.weight().tolist() == [2.0, 3.0, 4.0] and result.dense_shape == (-1, 2)
    info = result.pad_info
    assert info.drop_nums.tolist() == [1, 0] and info.pad_nums.tolist() == [0, 1]
    assert info.drop_sides.tolist() == [True] and info.pad_sides.tolist() == [False]
    right = SequenceTruncate(2, check_length=False, truncate_side="right")(x)
    assert rows_of(right) == [[1, 2], [4]] and right.pad_info.drop_sides.tolist() == [False]
    assert result.to_dense().tolist() == [[2, 3], [4, 0]]


def test_truncate_3d_pads_sequences_to_seq_len():
    values = torch.arange(1, 8)
    x = RaggedTensor(values, [torch.tensor([0, 3, 4]), torch.tensor([0, 2, 2, 5, 7])])
    result = SequenceTruncate(2, check_length=False, n_dims=3)(x)
    assert result.dense_shape == (-1, 2, -1)
    assert result.to_dense().tolist() == [[[0, 0, 0], [3, 4, 5]], [[6, 7, 0], [0, 0, 0]]]


def test_truncate_check_length_and_truncate_false():
    x = ragged_tensor([[1, 2, 3]])
    with pytest.raises(AssertionError, match="length 3 is more than seq_len=2"):
        SequenceTruncate(2)(x)
    with pytest.raises(AssertionError, match="length 4 is more than seq_len=2"):
        SequenceTruncate(2)(RaggedTensor(x.values(), x.offsets(), dense_shape=[1, 4]))
    assert SequenceTruncate(2, check_length=False, truncate=False)(x) is x
    assert SequenceTruncate(3, truncate=False)(x) is x
    engine_result = SequenceTruncate(2, check_length=False)(
        Ragged(np.array([1, 2, 3]), np.array([0, 3]))
    )
    assert engine_result.values.tolist() == [2, 3]


def test_truncate_2d_on_two_levels_cuts_the_inner_lists():
    values = torch.arange(1, 8)
    x = RaggedTensor(values, [torch.tensor([0, 2, 3]), torch.tensor([0, 3, 4, 7])])
    result = SequenceTruncate(2, check_length=False)(x)
    assert rows_of(result) == [[2, 3], [4], [6, 7]] and result.dense_shape == (-1, 2)
    right = SequenceTruncate(2, check_length=False, truncate_side="right")(x)
    assert rows_of(right) == [[1, 2], [4], [5, 6]]
    with pytest.raises(AssertionError, match="length 2 is more than seq_len=1"):
        SequenceTruncate(1)(x)  # RecIS checks shape[1]: the sequences' lengths


def test_constructors_reject_bad_arguments():
    with pytest.raises(ValueError, match="hash_type: expected one of"):
        Hash("sha256")
    with pytest.raises(ValueError, match="mod_value"):
        Mod(0)
    with pytest.raises(ValueError, match="truncate_side"):
        SequenceTruncate(4, truncate_side="middle")
    with pytest.raises(ValueError, match="n_dims"):
        SequenceTruncate(4, n_dims=4)
    with pytest.raises(ValueError, match="boundary: must be sorted"):
        Bucketize([3, 1])
    with pytest.raises(ValueError, match="num_buckets"):
        IDMultiHash([])


def test_feature_chain_and_hash_depends_on_op_order():
    feature = Feature("f").add_op(SelectField("x")).add_op(Mod(10)).add_op(Mod(7))
    assert feature({"x": torch.tensor([19])}).tolist() == [2]
    swapped = Feature("f").add_op(SelectField("x")).add_op(Mod(7)).add_op(Mod(10))
    same = Feature("f").add_op(SelectField("x")).add_op(Mod(10)).add_op(Mod(7))
    assert feature.get_hash() != swapped.get_hash()
    assert feature.get_hash() == same.get_hash()
    assert (
        feature.get_hash()
        != Feature("g").add_op(SelectField("x")).add_op(Mod(10)).add_op(Mod(7)).get_hash()
    )
    with pytest.raises(ValueError, match="must start with SelectField"):
        Feature("f").add_op(Mod(3))
    with pytest.raises(TypeError, match="expected a feature op"):
        Feature("f").add_op(torch.nn.Identity())


def test_feature_errors_name_feature_and_op():
    feature = Feature("price").add_op(SelectField("price")).add_op(Mod(10))
    with pytest.raises(TypeError, match=r"feature 'price', op Mod\(mod=10\): .*expected int64"):
        feature({"price": torch.tensor([1.5])})
    with pytest.raises(KeyError, match=r"feature 'price', op SelectField\(name='price'.*no field"):
        feature({"cost": torch.tensor([1])})


def test_edge_conversions_share_memory():
    tensor = torch.arange(6).reshape(2, 3)
    column, back = split_values(tensor)
    assert column.ctypes.data == tensor.data_ptr()
    result = np.arange(6).reshape(2, 3)
    assert back(result).data_ptr() == result.ctypes.data
    x = ragged_tensor([[1, 2], [3]], [[1.0, 2.0], [3.0]])
    values, back = split_values(x)
    assert values.ctypes.data == x.values().data_ptr()
    ragged, back = split_ragged(x)
    assert ragged.offsets[0].ctypes.data == x.offsets()[0].data_ptr()
    assert ragged.weights.ctypes.data == x.weight().data_ptr()
    assert back(ragged, x.dense_shape).values().data_ptr() == x.values().data_ptr()
