"""Reading a checkpoint directory written by RecIS itself (its ``Saver``/``save_bundle``).

RecIS's layout, as its public saver and reader define it:

* data files ``model-<i>-of-<n>.safetensors``: an unsigned 64-bit little-endian header length,
  a JSON header ``{block: {"dtype": "F32"..., "shape": [...], "data_offsets": [begin, end],
  "dense": bool}}`` (offsets from the end of the header), then the data;
* ``index``: JSON whose ``file_index`` lists the data files (and ``block_index`` the file of each
  block);
* ``tensorkey.json``: {block name in a data file: ``<tensor>^<slice>``} for the hash tables'
  blocks, whose file names are ``<table>.<field>/part_<shard>_<shards>``; a dense tensor's block
  is ``<name>^<slice>`` itself.

A hash table's tensors are ``<table>@id`` (int64, ids as written, one block per saving shard),
``<table>@embedding`` and the optimizer's ``<table>@<slot>``; the blocks of one tensor join in
shard order. ``torch_rank_weights_embs_table_multi_shard.json`` (a summary for RecIS's serving)
is not needed to read.

>>> import json, os, struct, tempfile
>>> import numpy as np
>>> folder = tempfile.mkdtemp()
>>> data = np.arange(4, dtype=np.int64).tobytes()
>>> header = json.dumps({"t.id/part_0_1": {"dtype": "I64", "shape": [4],
...                                        "data_offsets": [0, 32], "dense": False}}).encode()
>>> with open(os.path.join(folder, "model-000000-of-000001.safetensors"), "wb") as f:
...     _ = f.write(struct.pack("<Q", len(header)) + header + data)
>>> with open(os.path.join(folder, "index"), "w") as f:
...     json.dump({"block_index": {"t.id/part_0_1": 0},
...                "file_index": {"model-000000-of-000001.safetensors": 0}}, f)
>>> with open(os.path.join(folder, "tensorkey.json"), "w") as f:
...     json.dump({"t.id/part_0_1": "t@id^0^65536^65536"}, f)
>>> checkpoint = RecisCheckpoint(folder)
>>> checkpoint.tensor_names(), checkpoint.read("t@id").tolist()
(['t@id'], [0, 1, 2, 3])
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import ml_dtypes
import numpy as np

INDEX, TENSOR_KEYS = "index", "tensorkey.json"
SLICE_SEPARATOR = "^"
PART = re.compile(r"/part_(\d+)_(\d+)$")
DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "I64": np.int64,
    "U64": np.uint64,
    "I32": np.int32,
    "U32": np.uint32,
    "I16": np.int16,
    "U16": np.uint16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def is_recis_checkpoint(path) -> bool:
    """Whether ``path`` is a checkpoint directory in RecIS's layout."""
    path = Path(path)
    return (path / INDEX).is_file() and (path / TENSOR_KEYS).is_file()


@dataclass(frozen=True)
class _Block:
    file: Path
    begin: int
    end: int
    dtype: str
    shape: tuple[int, ...]
    shard: int


class RecisCheckpoint:
    """The tensors of a RecIS checkpoint directory, by RecIS's names (see the module docstring)."""

    def __init__(self, path) -> None:
        self.path = Path(path)
        index = json.loads((self.path / INDEX).read_text())
        keys = json.loads((self.path / TENSOR_KEYS).read_text())
        self._blocks: dict[str, list[_Block]] = {}
        for file in index["file_index"]:
            for key, block in _read_header(self.path / file):
                name = keys.get(key, key).split(SLICE_SEPARATOR)[0]
                self._blocks.setdefault(name, []).append(block)

    def __repr__(self) -> str:
        return f"RecisCheckpoint({str(self.path)!r})"

    def tensor_names(self) -> list[str]:
        return sorted(self._blocks)

    def has(self, name: str) -> bool:
        return name in self._blocks

    def shape(self, name: str) -> list[int]:
        blocks = self._of(name)
        return [sum(b.shape[0] for b in blocks), *blocks[0].shape[1:]]

    def dtype(self, name: str) -> np.dtype:
        return np.dtype(DTYPES[self._of(name)[0].dtype])

    def read(self, name: str) -> np.ndarray:
        """Tensor ``name``: its blocks, in shard order, joined along the first axis."""
        parts = [_read_block(block) for block in sorted(self._of(name), key=lambda b: b.shard)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _of(self, name: str) -> list[_Block]:
        if name not in self._blocks:
            raise KeyError(f"RecIS checkpoint {str(self.path)!r} has no tensor {name!r}")
        return self._blocks[name]


def _read_header(file: Path) -> list[tuple[str, _Block]]:
    with open(file, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    start, blocks = 8 + length, []
    for key, info in header.items():
        if key == "__metadata__":
            continue
        if info["dtype"] not in DTYPES:
            raise ValueError(f"{str(file)!r}: block {key!r} has unknown dtype {info['dtype']!r}")
        begin, end = info["data_offsets"]
        part = PART.search(key)
        shard = int(part.group(1)) if part else 0
        blocks.append(
            (
                key,
                _Block(
                    file, start + begin, start + end, info["dtype"], tuple(info["shape"]), shard
                ),
            )
        )
    return blocks


def _read_block(block: _Block) -> np.ndarray:
    with open(block.file, "rb") as f:
        f.seek(block.begin)
        data = f.read(block.end - block.begin)
    dtype = np.dtype(DTYPES[block.dtype])
    if len(data) != int(np.prod(block.shape, dtype=np.int64)) * dtype.itemsize:
        raise ValueError(f"{str(block.file)!r}: a block of {block.shape} is truncated")
    return np.frombuffer(data, dtype).reshape(block.shape).copy()
