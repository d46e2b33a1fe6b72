"""Reading a checkpoint directory written by RecIS itself (its ``Saver``/``save_bundle``).

RecIS's layout, as its public saver and reader define it:

* data files ``model-<i>-of-<n>.safetensors``, read with the ``safetensors`` library (their
  header entries also say whether a block is ``"dense"``);
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
from dataclasses import dataclass
from pathlib import Path

import ml_dtypes  # noqa: F401  (registers bfloat16 for safetensors' NumPy reader)
import numpy as np
from safetensors import SafetensorError, safe_open

INDEX, TENSOR_KEYS = "index", "tensorkey.json"
SLICE_SEPARATOR = "^"
PART = re.compile(r"/part_(\d+)_(\d+)$")


def is_recis_checkpoint(path) -> bool:
    """Whether ``path`` is a checkpoint directory in RecIS's layout."""
    path = Path(path)
    return (path / INDEX).is_file() and (path / TENSOR_KEYS).is_file()


@dataclass(frozen=True)
class _Block:
    file: Path
    key: str
    shape: tuple[int, ...]
    dtype: np.dtype
    shard: int


class RecisCheckpoint:
    """The tensors of a RecIS checkpoint directory, by RecIS's names (see the module docstring)."""

    def __init__(self, path) -> None:
        self.path = Path(path)
        index = json.loads((self.path / INDEX).read_text())
        keys = json.loads((self.path / TENSOR_KEYS).read_text())
        self._blocks: dict[str, list[_Block]] = {}
        for file in index["file_index"]:
            for block in _blocks_of(self.path / file):
                name = keys.get(block.key, block.key).split(SLICE_SEPARATOR)[0]
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
        return self._of(name)[0].dtype

    def read(self, name: str) -> np.ndarray:
        """Tensor ``name``: its blocks, in shard order, joined along the first axis."""
        blocks = sorted(self._of(name), key=lambda b: b.shard)
        parts = [_open(b.file, lambda f, b=b: f.get_tensor(b.key)) for b in blocks]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _of(self, name: str) -> list[_Block]:
        if name not in self._blocks:
            raise KeyError(f"RecIS checkpoint {str(self.path)!r} has no tensor {name!r}")
        return self._blocks[name]


def _blocks_of(file: Path) -> list[_Block]:
    """The blocks a data file holds, with their shapes and saving shards."""

    def blocks(f) -> list[_Block]:
        found = []
        for key in f.keys():  # noqa: SIM118  (a safetensors file is not iterable)
            part = PART.search(key)
            view = f.get_slice(key)
            shape = tuple(view.get_shape())
            empty = view[0:0] if shape else f.get_tensor(key)  # the dtype without the data
            found.append(_Block(file, key, shape, empty.dtype, int(part.group(1)) if part else 0))
        return found

    return _open(file, blocks)


def _open(file: Path, read):
    """``read(f)`` of data file ``file`` opened with safetensors; a malformed or truncated file
    is a ``ValueError`` naming it."""
    try:
        with safe_open(file, framework="np") as f:
            return read(f)
    except SafetensorError as error:
        raise ValueError(
            f"RecIS checkpoint file {str(file)!r} is malformed or truncated: {error}"
        ) from None
