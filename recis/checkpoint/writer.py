"""``CheckpointWriter``: writes one checkpoint directory atomically (format: the package doc).

>>> import tempfile
>>> from recis.checkpoint.reader import Checkpoint
>>> with CheckpointWriter(f"{tempfile.mkdtemp()}/ckpt") as writer:
...     writer.write_dense({"w": np.ones(3, np.float32)})
...     path = writer.commit({"step": 5})
>>> Checkpoint(path).read_tensor("w").tolist()
[1.0, 1.0, 1.0]
"""

from __future__ import annotations

import itertools
import json
import secrets
import shutil
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from safetensors.numpy import save_file

from recis.checkpoint.files import (
    FORMAT,
    INDEX,
    MAX_FILE_BYTES,
    OLD_PREFIX,
    TEMP_PREFIX,
    VERSION,
    CheckpointError,
    fsync,
    index_digest,
    rank_name,
    seal,
)
from recis.checkpoint.table_state import describe_table, split_state
from recis.core.table import EmbeddingTable


@dataclass
class Chunk:
    """Tensors that go to one file together."""

    tensors: dict[str, np.ndarray]
    continued: bool = False  # True for the later row ranges of split tensors
    nbytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.nbytes = sum(a.nbytes for a in self.tensors.values())


class CheckpointWriter:
    """Writes the checkpoint directory ``path`` atomically (see the module docstring).

    Use as a context manager: :meth:`commit` publishes the directory; leaving the block without
    committing (e.g. on an exception) removes the temporary directory.

    Args:
        path: the checkpoint directory to create (an existing one is replaced on commit).
        parallel: threads writing files.
        max_file_bytes: size limit of one safetensors file (a single row may exceed it).
    """

    rank = 0  # this writer's rank among the processes writing the checkpoint together
    world_size = 1
    sparse_prefix = "sparse"  # sparse files are <prefix>-<number>.safetensors

    def __init__(self, path, parallel: int = 8, max_file_bytes: int = MAX_FILE_BYTES) -> None:
        if parallel < 1:
            raise ValueError(f"parallel must be >= 1, got {parallel}")
        if max_file_bytes < 1:
            raise ValueError(f"max_file_bytes must be >= 1, got {max_file_bytes}")
        self.path = Path(path)
        self.parallel = parallel
        self.max_file_bytes = max_file_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.temp = self._make_temp()
        self._index: dict = {"files": {}, "tensors": {}, "tables": {}, "logical": {}, "dense": []}
        self._committed = False

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if not self._committed:
            self.abort(exc)

    def _make_temp(self) -> Path:
        """Create the hidden directory the files are written to."""
        temp = self.path.parent / f"{TEMP_PREFIX}{self.path.name}-{secrets.token_hex(4)}"
        temp.mkdir()
        return temp

    def write_tables(self, tables: Mapping[str, EmbeddingTable]) -> None:
        """Write the physical ``tables`` ({name: table}) with every row, slot and policy state;
        floating fields must be finite (:func:`check_finite`).

        Tables are copied out one at a time and written once ``parallel`` files' worth is
        pending, which bounds the memory a save needs beyond the tables themselves.
        """
        chunks: list[Chunk] = []
        for name, table in tables.items():
            chunks += self._table_chunks(name, table)
            if sum(c.nbytes for c in chunks) >= self.parallel * self.max_file_bytes:
                self._write_chunks(self.sparse_prefix, chunks)
                chunks = []
        self._write_chunks(self.sparse_prefix, chunks)

    def write_dense(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Write named dense arrays (e.g. a model's parameters), several per file (front ends
        check their weights with :func:`check_finite` first)."""
        self._index["dense"] += list(arrays)
        self._write_chunks("dense", [Chunk({k: np.asarray(v)}) for k, v in arrays.items()])

    def write_file(self, name: str, write: Callable[[BinaryIO], None]) -> None:
        """Add the file ``name``, whose bytes ``write(binary_file)`` produces (e.g. torch.save)."""
        self._add_file(name, write)

    def write_rank_file(self, name: str, write: Callable[[BinaryIO], None]) -> None:
        """Add this rank's own file ``name`` (named :func:`~recis.checkpoint.files.
        rank_name` ``(name, rank)``), for state that differs by rank, such as the position in
        the rank's part of the data."""
        self._add_file(rank_name(name, self.rank), write)

    def _add_file(self, name: str, write: Callable[[BinaryIO], None]) -> None:
        if "/" in name or name in (INDEX, *self._index["files"]):
            raise ValueError(f"file name {name!r} is reserved, taken or not a plain name")
        with open(self.temp / name, "wb") as out:
            write(out)
        self._index["files"][name] = seal(self.temp / name)

    def commit(
        self, metadata: Mapping | None = None, then: Callable[[Path], None] | None = None
    ) -> Path:
        """Write the index, fsync and rename into place, then call ``then(path)`` (e.g. to list
        the checkpoint); return the checkpoint's path."""
        self._publish(metadata)
        if then is not None:
            then(self.path)
        self._committed = True
        return self.path

    def abort(self, error: BaseException | None = None) -> None:
        """Remove the temporary directory (``error``: why); nothing is published."""
        shutil.rmtree(self.temp, ignore_errors=True)

    def _publish(self, metadata: Mapping | None) -> None:
        index = {"format": FORMAT, "version": VERSION, "metadata": dict(metadata or {})}
        index |= self._index
        index["sha256"] = index_digest(index)
        (self.temp / INDEX).write_text(json.dumps(index, indent=1))
        fsync(self.temp / INDEX)
        fsync(self.temp)
        old = self.path.parent / f"{OLD_PREFIX}{self.path.name}-{secrets.token_hex(4)}"
        if self.path.exists():
            self.path.rename(old)
        self.temp.rename(self.path)
        fsync(self.path.parent)
        shutil.rmtree(old, ignore_errors=True)

    def _table_chunks(self, name: str, table: EmbeddingTable) -> list[Chunk]:
        """Record ``table`` in the index; return its arrays as chunks for the files."""
        state = table.state_dict()
        for field_name in table.store.fields:
            check_finite(f"{name}/{field_name}", state[field_name])
        self._index["tables"][name] = describe_table(table, state)
        logical, physical = split_state(table, state)
        chunks = []
        for tag, (child, arrays) in enumerate(logical.items()):
            if child in self._index["logical"]:
                raise ValueError(f"two tables hold a logical table named {child!r}")
            per_id = sorted(k[1:] for k in arrays if k.startswith("@"))
            ids = int(arrays["id"].size)
            self._index["logical"][child] = {"table": name, "tag": tag, "ids": ids, "state": per_id}
            chunks += self._row_chunks(child, arrays)
        return [*chunks, *self._physical_chunks(name, physical)]

    def _physical_chunks(self, name: str, physical: dict[str, np.ndarray]) -> list[Chunk]:
        """The chunks of physical table ``name``'s own state (``@`` keys)."""
        return [Chunk({f"{name}/{key}": value for key, value in physical.items()})]

    def _row_chunks(self, child: str, arrays: dict[str, np.ndarray]) -> list[Chunk]:
        """``arrays`` of one logical table, split by rows into chunks of at most the file limit;
        per-id policy state (``@`` keys) goes with the first."""
        rows = {k: v for k, v in arrays.items() if not k.startswith("@")}
        parts = max(1, -(-sum(a.nbytes for a in rows.values()) // self.max_file_bytes))
        parts = min(parts, max(1, arrays["id"].size))
        bounds = [arrays["id"].size * i // parts for i in range(parts + 1)]
        chunks = [
            Chunk({f"{child}/{k}": v[a:b] for k, v in rows.items()}, continued=a > 0)
            for a, b in itertools.pairwise(bounds)
        ]
        chunks[0].tensors |= {f"{child}/{k}": v for k, v in arrays.items() if k.startswith("@")}
        return chunks

    def _write_chunks(self, prefix: str, chunks: list[Chunk]) -> None:
        groups = _pack(chunks, self.max_file_bytes)
        first = sum(f.startswith(f"{prefix}-") for f in self._index["files"])
        names = [f"{prefix}-{first + i:05d}.safetensors" for i in range(len(groups))]
        with ThreadPoolExecutor(self.parallel) as pool:
            sealed = pool.map(self._write_safetensors, names, groups)
            self._index["files"] |= dict(zip(names, sealed, strict=True))
        for name, group in zip(names, groups, strict=True):
            for chunk in group:
                for tensor_name, array in chunk.tensors.items():
                    self._record_tensor(tensor_name, array, name, chunk.continued)

    def _write_safetensors(self, name: str, chunks: list[Chunk]) -> dict:
        metadata = {"format": FORMAT, "version": str(VERSION)}
        tensors = {k: np.require(v, requirements="C") for c in chunks for k, v in c.tensors.items()}
        save_file(tensors, self.temp / name, metadata=metadata)
        return seal(self.temp / name)

    def _record_tensor(self, name: str, array: np.ndarray, file: str, continued: bool) -> None:
        tensors = self._index["tensors"]
        if (name in tensors) != continued:
            raise ValueError(f"two tensors are named {name!r}")
        entry = tensors.setdefault(
            name, {"dtype": array.dtype.name, "shape": list(array.shape), "files": []}
        )
        entry["files"].append(file)
        if continued:
            entry["shape"][0] += array.shape[0]


def check_finite(name: str, array) -> None:
    """Raise :class:`CheckpointError` when the floating array ``name`` holds NaN or infinity: a
    checkpoint is never written from non-finite weights.

    >>> check_finite("w", np.ones(2, np.float32))
    >>> try:
    ...     check_finite("w", np.array([1.0, np.nan]))
    ... except CheckpointError as error:
    ...     print(error)
    'w' holds 1 values that are not finite (NaN or infinity): not saving a poisoned checkpoint
    """
    array = np.asarray(array)
    if array.dtype.kind != "f" and not array.dtype.name.startswith(("bfloat", "float")):
        return
    finite = np.isfinite(array.astype(np.float32, copy=False))
    if not finite.all():
        raise CheckpointError(
            f"{name!r} holds {int((~finite).sum())} values that are not finite (NaN or "
            f"infinity): not saving a poisoned checkpoint"
        )


def save_tables(
    path,
    tables: Mapping[str, EmbeddingTable],
    dense: Mapping[str, np.ndarray] | None = None,
    metadata: Mapping | None = None,
    parallel: int = 8,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> Path:
    """Write ``tables`` (and ``dense`` arrays) as the checkpoint directory ``path``, atomically."""
    with CheckpointWriter(path, parallel, max_file_bytes) as writer:
        writer.write_tables(tables)
        if dense:
            writer.write_dense(dense)
        return writer.commit(metadata)


def _pack(chunks: list[Chunk], max_bytes: int) -> list[list[Chunk]]:
    """Chunks grouped into files, in order: a file takes chunks while they fit and their
    tensor names are new to it."""
    groups: list[list[Chunk]] = []
    names: set[str] = set()
    size = 0
    for chunk in chunks:
        fits = groups and size + chunk.nbytes <= max_bytes
        if not fits or names & set(chunk.tensors):
            groups.append([])
            names, size = set(), 0
        groups[-1].append(chunk)
        names |= set(chunk.tensors)
        size += chunk.nbytes
    return groups
