"""The FG's ``Mask`` and ``StringMultiHash`` feature ops (``recis.features.op``)."""

from __future__ import annotations

import pytest
import torch

from recis.features.op import Mask, StringMultiHash
from recis.nn.functional.hash_ops import djb2hash, farmhash, murmurhash, sdbmhash
from recis.ragged.tensor import RaggedTensor


def _strings(words):
    data = torch.tensor(list(b"".join(w.encode() for w in words)), dtype=torch.int8)
    return data, torch.tensor([0, *torch.tensor([len(w) for w in words]).cumsum(0).tolist()])


def test_mask_zeroes_the_mask_strings_and_keeps_structure():
    data, splits = _strings(["0", "10", "", "ab", "-1"])
    weight = torch.tensor([0.5, 1.0, 2.0, 3.0, 4.0])
    x = RaggedTensor(data, [torch.tensor([0, 2, 5]), splits], weight, (2, -1, -1))
    out = Mask(["0", "", "-1"])(x)
    assert out.values().tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]
    assert out.values().dtype == torch.float32
    assert out.offsets()[0].tolist() == [0, 2, 5] and out.weight() is weight
    assert out.dense_shape == (2, -1)


def test_mask_on_ids_and_one_level_strings():
    ids = RaggedTensor(torch.tensor([0, 5, -1, 0]), [torch.tensor([0, 1, 4])])
    assert Mask(["0", "-1", "x"])(ids).values().tolist() == [0.0, 1.0, 0.0, 0.0]
    assert Mask(["7"])(torch.tensor([[7, 8], [9, 7]])).tolist() == [[0.0, 1.0], [1.0, 0.0]]
    data, splits = _strings(["a", "b"])
    assert Mask(["b"])(RaggedTensor(data, [splits])).tolist() == [1.0, 0.0]


def test_mask_config_and_errors():
    assert Mask(["0"], dtype=torch.int8)._get_config() == {"masks": ["0"], "dtype": "torch.int8"}
    with pytest.raises(ValueError, match="masks"):
        Mask("0")
    with pytest.raises(TypeError, match="Mask"):
        Mask(["0"])(torch.tensor([0.5]))


def test_string_multi_hash_hashes_decimal_text_with_four_hashes():
    ids = RaggedTensor(torch.tensor([12, -3, 12]), [torch.tensor([0, 2, 3])])
    out = StringMultiHash([97, 89, 83, 79], prefix="mh")(ids)
    data, splits = _strings(["12", "-3", "12"])
    for k, (fn, buckets) in enumerate(
        ((farmhash, 97), (murmurhash, 89), (sdbmhash, 83), (djb2hash, 79))
    ):
        expected = [int(h) % 2**64 % buckets for h in fn([data], [splits])[0]]
        assert out[f"mh_{k}"].values().tolist() == expected
        assert out[f"mh_{k}"].offsets()[0].tolist() == [0, 2, 3]
    assert StringMultiHash([5, 6])._get_config()["hash_types"] == ["farm", "mur"]
    with pytest.raises(ValueError, match="1 to 4"):
        StringMultiHash([1, 2, 3, 4, 5])
