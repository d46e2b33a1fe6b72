"""Reading a checkpoint directory written by RecIS itself.

The fixture follows the layout RecIS's saver defines (``save_bundle``, ``write_block``,
``name.h``, ``string_sep``) and its reader parses (``table_reader``): data files
``model-<i>-of-<n>.safetensors`` (u64 header length, JSON header of blocks with ``dtype``,
``shape``, ``data_offsets`` and ``dense``, then the data), ``index`` (``block_index``,
``file_index``) and ``tensorkey.json`` (block names ``<table>.<field>/part_<shard>_<shards>`` to
``<table>@<field>^<slice>``; dense blocks named ``<name>^ ``)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from safetensors import safe_open

from recis.checkpoint import CheckpointError
from recis.nn import HashTable
from recis.serialize import CheckpointReader, Loader
from recis.serialize.loader import Loader as LoaderAtRecisPath

CODES = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}
SLICE = "0^65536^65536"


def _write_data_file(path, blocks: dict[str, tuple[np.ndarray, bool]]) -> None:
    header, data, offset = {}, b"", 0
    for name, (array, dense) in blocks.items():
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {
            "dtype": CODES[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(raw)],
            "dense": dense,
        }
        data, offset = data + raw, offset + len(raw)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)


def _recis_checkpoint(folder, shards: dict[int, tuple[np.ndarray, np.ndarray]], dense):
    """Two saving shards of table ``item`` (ids, embedding, one optimizer slot) and a dense
    tensor, each shard's blocks in its own data file; shard 1's file comes first."""
    files, block_index, tensor_keys = {}, {}, {}
    for number, shard in enumerate(sorted(shards, reverse=True)):
        ids, rows = shards[shard]
        blocks = {}
        for field, value in (("id", ids), ("embedding", rows), ("sparse_adamw_tf_exp_avg", -rows)):
            key = f"item.{field}/part_{shard}_{len(shards)}"
            blocks[key] = (value, False)
            tensor_keys[key] = f"item@{field}^{SLICE}"
        if shard == 0:
            blocks["fc.weight^ "] = (dense, True)
        file = f"model-{number:06d}-of-{len(shards):06d}.safetensors"
        _write_data_file(folder / file, blocks)
        files[file] = number
        block_index.update(dict.fromkeys(blocks, number))
    (folder / "index").write_text(json.dumps({"block_index": block_index, "file_index": files}))
    (folder / "tensorkey.json").write_text(json.dumps(tensor_keys, indent=4))
    return folder


@pytest.fixture
def written(tmp_path):
    shards = {
        0: (np.array([4, 9], np.int64), np.arange(6, dtype=np.float32).reshape(2, 3)),
        1: (np.array([1 << 40], np.int64), np.full((1, 3), 7.5, np.float32)),
    }
    dense = np.arange(4, dtype=np.float32).reshape(2, 2)
    return _recis_checkpoint(tmp_path, shards, dense)


def test_the_fixture_files_are_safetensors_as_recis_tests_read_them(written):
    with safe_open(str(written / "model-000001-of-000002.safetensors"), "pt") as f:
        assert torch.equal(f.get_tensor("item.id/part_0_2"), torch.tensor([4, 9]))


def test_the_reader_gives_recis_names_with_shards_joined_in_order(written):
    reader = CheckpointReader(written)
    assert reader.tensor_names() == [
        "fc.weight",
        "item@embedding",
        "item@id",
        "item@sparse_adamw_tf_exp_avg",
    ]
    assert reader.read_tensor("item@id").tolist() == [4, 9, 1 << 40]
    assert reader.read_tensor("item@embedding")[2].tolist() == [7.5, 7.5, 7.5]
    assert torch.equal(
        reader.read_tensor("item@sparse_adamw_tf_exp_avg"), -reader.read_tensor("item@embedding")
    )
    assert reader.tensor_shape("item@embedding") == [3, 3]
    assert reader.tensor_dtype("item@id") == torch.int64
    assert reader.read_tensor("fc.weight").tolist() == [[0.0, 1.0], [2.0, 3.0]]


def test_the_loader_fills_tables_and_dense_tensors(written):
    table, weight = HashTable([-1, 3], name="item"), torch.zeros(2, 2)
    loader = LoaderAtRecisPath(written, hashtables={"item": table}, tensors={"fc.weight": weight})
    assert loader.default_load_info() == {"item": {"item": ["embedding"]}}
    loader.load()
    rows = table(torch.tensor([9, 1 << 40, 4])).detach()
    assert rows.tolist() == [[3.0, 4.0, 5.0], [7.5, 7.5, 7.5], [0.0, 1.0, 2.0]]
    assert weight.tolist() == [[0.0, 1.0], [2.0, 3.0]]


def test_missing_tables_are_errors_naming_them_unless_not_strict(written):
    other = HashTable([-1, 3], name="user")
    with pytest.raises(CheckpointError, match="has no table 'user'"):
        Loader(written, hashtables={"user": other}).load()
    Loader(written, hashtables={"user": other}, strict=False).load()
    assert other.ids().numel() == 0


def test_a_truncated_block_is_an_error_naming_the_file(written):
    path = written / "model-000000-of-000002.safetensors"
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ValueError, match=r"model-000000-of-000002\.safetensors.*truncated"):
        CheckpointReader(written).read_tensor("item@sparse_adamw_tf_exp_avg")
