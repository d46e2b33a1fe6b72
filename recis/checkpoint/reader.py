"""``Checkpoint``: an opened checkpoint directory whose files are checked before they are read.

>>> import tempfile
>>> from recis.checkpoint.writer import save_tables
>>> path = save_tables(f"{tempfile.mkdtemp()}/ckpt", {}, {"w": np.zeros(2)}, {"step": 3})
>>> checkpoint = Checkpoint(path)
>>> checkpoint.metadata, checkpoint.tensor_names(), checkpoint.tensor_info("w")["shape"]
({'step': 3}, ['w'], [2])
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ml_dtypes  # noqa: F401  (registers bfloat16 for safetensors' NumPy reader)
import numpy as np
from safetensors import SafetensorError, safe_open

from recis.checkpoint.files import (
    FORMAT,
    INDEX,
    LIST_FILE,
    VERSION,
    CheckpointError,
    check_file,
    check_plain_name,
    index_digest,
)


class Checkpoint:
    """An opened checkpoint directory: its index, and its tensors read with checks.

    ``path`` may also be a run's output directory; its newest listed checkpoint is opened.
    Every file is checked against the index's size and sha256 the first time it is read.
    """

    def __init__(self, path) -> None:
        self.path = resolve_checkpoint(path)
        self.index = _read_index(self.path / INDEX)
        self._checked: set[str] = set()

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r})"

    @property
    def metadata(self) -> dict:
        """What the writer passed to :meth:`CheckpointWriter.commit` (e.g. the step)."""
        return self.index["metadata"]

    @property
    def world_size(self) -> int:
        """How many ranks wrote the checkpoint together (1: one process)."""
        return int(self.index.get("world_size", 1))

    @property
    def tables(self) -> dict[str, dict]:
        """Physical tables: children, dim, dtype, fields, state keys, lookup stats."""
        return self.index["tables"]

    @property
    def logical(self) -> dict[str, dict]:
        """Logical tables: physical table, tag, number of ids, per-id state keys."""
        return self.index["logical"]

    def tensor_names(self) -> list[str]:
        """Names of every sparse and dense tensor, sorted."""
        return sorted(self.index["tensors"])

    def tensor_info(self, name: str) -> dict:
        """``dtype`` (a NumPy dtype name), ``shape`` and ``files`` of tensor ``name``."""
        if name not in self.index["tensors"]:
            raise KeyError(f"checkpoint {str(self.path)!r} has no tensor {name!r}")
        return self.index["tensors"][name]

    def read_tensor(self, name: str) -> np.ndarray:
        """The tensor ``name``, joined from its parts."""
        info = self.tensor_info(name)
        parts = [self._read(file, [name])[name] for file in info["files"]]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def iter_parts(self, names: list[str]) -> Iterator[dict[str, np.ndarray]]:
        """The tensors ``names`` one row range (one file) at a time, e.g. a logical table's
        ``id`` and fields, which are split alike; memory is bounded by a file, not a table."""
        files = [self.tensor_info(name)["files"] for name in names]
        if any(f != files[0] for f in files):
            raise CheckpointError(f"{self!r}: the tensors {names} are not split alike")
        for file in files[0] if files else ():
            yield self._read(file, names)

    def file(self, name: str) -> Path:
        """Path of the listed file ``name``, after checking its size and sha256."""
        if name not in self.index["files"]:
            raise CheckpointError(f"checkpoint {str(self.path)!r} lists no file {name!r}")
        path = self.path / name
        if path.is_symlink():
            raise CheckpointError(
                f"checkpoint file {str(path)!r} is a link; links are not followed"
            )
        if name not in self._checked:
            check_file(path, self.index["files"][name])
            self._checked.add(name)
        return path

    def check_files(self, parallel: int = 8) -> None:
        """Check the size and sha256 of every listed file, in ``parallel`` threads."""
        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(self.file, self.index["files"]))

    def read_logical(self, name: str, fields: Iterable[str]) -> dict[str, np.ndarray]:
        """``id``, ``row``, the ``fields`` and the ``@`` per-id state of logical table ``name``."""
        keys = ["id", "row", *fields, *(f"@{k}" for k in self.logical[name]["state"])]
        return {k: self.read_tensor(f"{name}/{k}") for k in keys}

    def read_physical_state(self, name: str) -> dict[str, np.ndarray]:
        """Row allocator and policy state of physical table ``name`` (keys without ``@``)."""
        return {k: self.read_tensor(f"{name}/@{k}") for k in self.tables[name]["state"]}

    def _read(self, file: str, names: list[str]) -> dict[str, np.ndarray]:
        path = self.file(file)
        try:
            with safe_open(path, framework="np") as f:
                return {name: f.get_tensor(name) for name in names}
        except (SafetensorError, OSError) as error:
            listed = ", ".join(map(repr, names))
            raise CheckpointError(f"cannot read {listed} from {str(path)!r}: {error}") from None


def resolve_checkpoint(path) -> Path:
    """``path`` if it is a checkpoint, else the newest usable checkpoint of the run ``path``
    (:func:`~recis.checkpoint.candidates.pick`)."""
    path = Path(path)
    if (path / INDEX).exists():
        return path
    from recis.checkpoint.candidates import pick  # it opens checkpoints with this module

    latest = pick(path, lambda candidate: Checkpoint(candidate).path)
    if latest is not None:
        return latest
    if path.is_dir() and not (path / LIST_FILE).exists():
        raise CheckpointError(
            f"{str(path / INDEX)!r} is missing: {str(path)!r} is an unfinished or damaged "
            f"checkpoint, or not a checkpoint (nor a run with checkpoints) at all"
        )
    raise CheckpointError(f"{str(path)!r} is neither a checkpoint nor a run with checkpoints")


def _read_index(path: Path) -> dict:
    if not path.exists():
        raise CheckpointError(f"{str(path)!r} is missing: not a checkpoint, or an unfinished one")
    try:
        index = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{str(path)!r} is corrupt: {error}") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a {FORMAT} index")
    if index.get("version") != VERSION:
        raise CheckpointError(f"{str(path)!r} has format version {index.get('version')}")
    if index.get("sha256") != index_digest(index):
        raise CheckpointError(f"{str(path)!r} is corrupt: its sha256 does not match its content")
    _check_file_names(path, index)
    return index


def _check_file_names(path: Path, index: dict) -> None:
    """Every file the index names is a plain name it lists (so reads stay in the directory)."""
    for name in index.get("files", {}):
        check_plain_name(name, path)
    for tensor, info in index.get("tensors", {}).items():
        for name in info.get("files", []):
            if name not in index["files"]:
                raise CheckpointError(f"{str(path)!r}: tensor {tensor!r} is in unlisted {name!r}")
