"""Checkpoints written by every rank of a sharded run together.

With tables sharded row-wise over ``W`` ranks (:mod:`recis.distributed`), each rank writes its
own shard in parallel into one temporary directory, whose name rank 0 picks and broadcasts:

1. every rank writes its rows as ``sparse-r<rank>-<n>.safetensors`` (and, through
   :meth:`~recis.checkpoint.writer.CheckpointWriter.write_rank_file`, files of its own such
   as ``rank-r<rank>.json``); dense arrays and front-end files (``model.json`` …) are
   replicated over the ranks, so rank 0 alone writes them;
2. at :meth:`ShardedCheckpointWriter.commit` one all-gather brings every rank's index part to
   rank 0, which merges them (:func:`merge_parts`), fsyncs the index and renames the directory
   into place, then runs the caller's ``then`` (e.g. listing the checkpoint);
3. one broadcast tells every rank that the checkpoint is published — or that it is not, with the
   error of the rank that failed. Nothing sleeps or polls; a rank that fails before committing
   still takes part in both collectives (:meth:`ShardedCheckpointWriter.abort`), so no rank hangs.

**The merged index** is an ordinary one (format: :mod:`recis.checkpoint`) plus
``world_size``: a logical table's tensors are consecutive row ranges in the ranks' files, rank 0's
first. Per-rank state of a physical table is merged or dropped: the row allocator
(``@rows.*``) is a rank's own and is not kept — a sharded checkpoint loads by id, never by row,
and ``<table>/row`` is an id's row in its rank's shard —, eviction clocks become the largest, and
lookup statistics are summed. Per-id state (ids pending admission) is joined like rows.

Counters kept by every rank, such as a sparse optimizer's step counts, are saved as the largest
over the ranks (:func:`gather_max`).

The ranks must see one file system at the checkpoint's path (checked when the writer starts).
"""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import numpy as np

from recis.checkpoint.files import MAX_FILE_BYTES, CheckpointError, rank_name
from recis.checkpoint.reader import Checkpoint
from recis.checkpoint.writer import CheckpointWriter, Chunk
from recis.distributed.communicator import CollectiveError, Communicator

RANK_JSON = "rank.json"
RANK_LOCAL_STATE = ("rows.",)  # a rank's row allocator: not kept in a sharded checkpoint
STATE_MERGES: dict[str, Callable[[list[int]], int]] = {"eviction.step": max}


class ShardedCheckpointWriter(CheckpointWriter):
    """This rank's share of the checkpoint ``path`` that all ranks of ``communicator`` write
    together (see the module docstring). Every rank creates it, writes its tables, and commits
    (or leaves the ``with`` block) in the same order: the constructor and the commit are
    collectives.

    Args:
        path: the checkpoint directory (the same on every rank).
        communicator: the ranks writing together (rank 0 publishes).
        parallel: threads writing this rank's files.
        max_file_bytes: size limit of one safetensors file.
    """

    def __init__(
        self,
        path,
        communicator: Communicator,
        parallel: int = 8,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.communicator = communicator
        self.rank, self.world_size = communicator.rank, communicator.world_size
        self.sparse_prefix = rank_name("sparse", self.rank)
        self._joined = False
        super().__init__(path, parallel, max_file_bytes)
        self._index["physical"] = {}

    def _make_temp(self) -> Path:
        """Rank 0 creates the directory; every rank checks that it sees it."""
        make = super()._make_temp
        where = f"the temporary directory of {str(self.path)!r}"
        temp = self.path.parent / agree(self.communicator, lambda: make().name, f"creating {where}")
        seen = self.communicator.all_gather_object(temp.is_dir(), f"all-gather of who sees {where}")
        blind = [rank for rank, sees in enumerate(seen) if not sees]
        if blind:
            if self.rank == 0:
                shutil.rmtree(temp, ignore_errors=True)
            raise CheckpointError(
                f"ranks {blind} do not see {str(temp)!r}, which rank 0 created: the ranks must "
                f"save to one shared file system (the same checkpoint path on every rank)"
            )
        return temp

    def write_dense(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Dense arrays are replicated over the ranks: rank 0 writes them, the others nothing."""
        if self.rank == 0:
            super().write_dense(arrays)

    def write_file(self, name: str, write) -> None:
        """Files of replicated state (e.g. the dense model): rank 0 writes them, the others
        nothing; state that differs by rank goes to :meth:`write_rank_file`."""
        if self.rank == 0:
            super().write_file(name, write)

    def commit(
        self, metadata: Mapping | None = None, then: Callable[[Path], None] | None = None
    ) -> Path:
        """Publish the checkpoint once every rank has written its share (a collective):
        rank 0 merges the index parts, writes ``metadata`` (rank 0's), renames the directory
        into place and calls ``then(path)``; every rank returns the path, or raises
        :class:`CheckpointError` naming the rank that failed."""
        return self._finish(("ok", self._index), partial(self._publish_merged, metadata, then))

    def abort(self, error: BaseException | None = None) -> None:
        """Tell the other ranks that this one will not commit (``error``: why), so that no
        checkpoint is published and none of them waits; rank 0 removes the directory."""
        if not self._joined:
            reason = "it left without committing" if error is None else _describe(error)
            with contextlib.suppress(CheckpointError, CollectiveError):
                self._finish(("failed", reason), None)
        if self.rank == 0:
            super().abort(error)

    def _physical_chunks(self, name: str, physical: dict[str, np.ndarray]) -> list[Chunk]:
        """Keep the physical table's mergeable state for rank 0 (written there after the
        merge); drop the rank's row allocator."""
        kept = {}
        for key, value in physical.items():
            key = key.removeprefix("@")
            if key.startswith(RANK_LOCAL_STATE):
                continue
            if key not in STATE_MERGES or np.ndim(value):
                raise CheckpointError(
                    f"table {name!r}: no rule merges the state {key!r} of several ranks"
                )
            kept[key] = int(value)
        self._index["physical"][name] = kept
        return []

    def _finish(self, part: tuple[str, object], publish) -> Path:
        """Gather every rank's ``part`` (status, index part or reason); rank 0 publishes when
        all are ``"ok"``; the outcome is broadcast."""
        self._joined = True
        where = repr(str(self.path))
        parts = self.communicator.all_gather_object(part, f"all-gather of the index of {where}")

        def decide() -> str:
            failed = [f"rank {r}: {detail}" for r, (status, detail) in enumerate(parts)
                      if status != "ok"]  # fmt: skip
            if failed:
                CheckpointWriter.abort(self)
                raise CheckpointError(f"checkpoint {where} was not written: {'; '.join(failed)}")
            publish([detail for _, detail in parts])
            return str(self.path)

        agree(self.communicator, decide, f"publishing checkpoint {where}")
        self._committed = True
        return self.path

    def _publish_merged(self, metadata, then, parts: list[dict]) -> None:
        self._index, physical = merge_parts(parts)
        if physical:
            self._write_chunks(self.sparse_prefix, [Chunk(physical)])
        self._publish(metadata)
        if then is not None:
            then(self.path)


def checkpoint_writer(
    path,
    communicator: Communicator | None = None,
    parallel: int = 8,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> CheckpointWriter:
    """A :class:`ShardedCheckpointWriter` when ``communicator`` has several ranks, else a
    plain :class:`CheckpointWriter` (one process: the checkpoint of an unsharded run).

    >>> import tempfile
    >>> type(checkpoint_writer(f"{tempfile.mkdtemp()}/ckpt")).__name__
    'CheckpointWriter'
    """
    if communicator is None or communicator.world_size == 1:
        return CheckpointWriter(path, parallel, max_file_bytes)
    return ShardedCheckpointWriter(path, communicator, parallel, max_file_bytes)


def agree(communicator: Communicator | None, action: Callable[[], object], what: str):
    """``action()`` run on rank 0 and its (picklable) result given to every rank, by one
    broadcast. If it raises, rank 0 re-raises it and the other ranks raise
    :class:`CheckpointError` quoting it. Without several ranks, just ``action()``.

    >>> agree(None, lambda: "ckpt_3", "naming")
    'ckpt_3'
    """
    if communicator is None or communicator.world_size == 1:
        return action()
    error, outcome = None, None
    if communicator.rank == 0:
        try:
            outcome = ("ok", action())
        except Exception as caught:  # handed to every rank below, then re-raised
            error, outcome = caught, ("failed", _describe(caught))
    status, value = communicator.broadcast_object(outcome, f"broadcast of the outcome of {what}")
    if error is not None:
        raise error
    if status != "ok":
        raise CheckpointError(f"{what} failed on rank 0: {value}")
    return value


def merge_parts(parts: list[dict]) -> tuple[dict, dict[str, np.ndarray]]:
    """The index of a checkpoint whose ranks wrote the index ``parts`` (in rank order), and the
    merged physical-table state (tensor name → array) still to be written.

    >>> part = {"files": {}, "tensors": {"t/id": {"dtype": "int64", "shape": [2], "files": []}},
    ...         "tables": {}, "logical": {}, "dense": [], "physical": {}}
    >>> index, _ = merge_parts([part, part])
    >>> index["world_size"], index["tensors"]["t/id"]["shape"]
    (2, [4])
    """
    merged = {"files": {}, "tensors": {}, "tables": {}, "logical": {}, "dense": []}
    for rank, part in enumerate(parts):
        _check_same_tables(parts[0], part, rank)
        taken = merged["files"].keys() & part["files"].keys()
        if taken:
            raise CheckpointError(f"rank {rank} wrote files another rank wrote: {sorted(taken)}")
        merged["files"] |= part["files"]
        merged["dense"] += part["dense"]
        for name, info in part["tensors"].items():
            _join_tensor(merged["tensors"], name, info, rank)
        for name, info in part["logical"].items():
            _join_logical(merged["logical"], name, info)
        for name, info in part["tables"].items():
            _join_table(merged["tables"], name, info)
    merged["world_size"] = len(parts)
    physical = _merge_physical([part["physical"] for part in parts])
    for name, state in physical.items():
        merged["tables"][name]["state"] = sorted(state)
    arrays = {f"{t}/@{k}": np.array(v, np.int64) for t, s in physical.items() for k, v in s.items()}
    return merged, arrays


def _check_same_tables(first: dict, part: dict, rank: int) -> None:
    for key in ("tables", "logical"):
        if first[key].keys() != part[key].keys():
            raise CheckpointError(
                f"rank {rank} saved the tables {sorted(part[key])}, rank 0 {sorted(first[key])}"
            )


def _join_tensor(tensors: dict, name: str, info: dict, rank: int) -> None:
    """Append a rank's tensor ``name`` to the rows the earlier ranks wrote."""
    entry = tensors.get(name)
    if entry is None:
        tensors[name] = copy.deepcopy(info)
        return
    if not info["shape"] or (entry["dtype"], entry["shape"][1:]) != (
        info["dtype"],
        info["shape"][1:],
    ):
        raise CheckpointError(
            f"rank {rank} wrote tensor {name!r} as {info['dtype']}{info['shape']}, which does "
            f"not continue the earlier ranks' {entry['dtype']}{entry['shape']}"
        )
    entry["shape"][0] += info["shape"][0]
    entry["files"] += info["files"]


def _join_logical(logical: dict, name: str, info: dict) -> None:
    entry = logical.setdefault(name, {**info, "ids": 0})
    if {k: v for k, v in entry.items() if k != "ids"} != {
        k: v for k, v in info.items() if k != "ids"
    }:
        raise CheckpointError(f"the ranks saved logical table {name!r} differently")
    entry["ids"] += info["ids"]


def _join_table(tables: dict, name: str, info: dict) -> None:
    """Join a rank's description of physical table ``name``: lookup statistics are summed."""
    stats = info["lookup_stats"]
    entry = tables.setdefault(name, {**info, "lookup_stats": dict.fromkeys(stats, 0)})
    for key in ("children", "dim", "dtype", "fields"):
        if entry[key] != info[key]:
            raise CheckpointError(f"the ranks saved table {name!r} with different {key}")
    entry["lookup_stats"] = {k: entry["lookup_stats"].get(k, 0) + v for k, v in stats.items()}


def _merge_physical(states: list[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    """Per physical table, each rank's state merged by :data:`STATE_MERGES`."""
    merged: dict[str, dict[str, int]] = {}
    for name in states[0]:
        keys = states[0][name]
        merged[name] = {k: STATE_MERGES[k]([s[name][k] for s in states]) for k in keys}
    return merged


def gather_max(communicator: Communicator | None, state, what: str):
    """``state`` (counters of this rank, picklable) merged over the ranks by
    :func:`max_over_ranks` (a collective); unchanged without several ranks."""
    if communicator is None or communicator.world_size == 1:
        return state
    return max_over_ranks(communicator.all_gather_object(state, what))


def max_over_ranks(states: list):
    """Several ranks' counters as one: numbers become the largest, dicts are merged key by key
    (keys of any rank), anything else is rank 0's.

    >>> max_over_ranks([{"steps": {"a": 3}, "rule": "Adam"}, {"steps": {"a": 5, "b": 1}}])
    {'steps': {'a': 5, 'b': 1}, 'rule': 'Adam'}
    """
    first = states[0]
    if isinstance(first, dict):
        keys = dict.fromkeys(key for state in states if isinstance(state, dict) for key in state)
        return {
            key: max_over_ranks([s[key] for s in states if isinstance(s, dict) and key in s])
            for key in keys
        }
    if isinstance(first, int | float) and not isinstance(first, bool):
        return max(states)
    return first


def write_rank_json(writer: CheckpointWriter, state: Mapping) -> None:
    """Write this rank's JSON-able ``state`` (e.g. its data position) as its own file,
    ``rank-r<rank>.json``."""
    text = json.dumps(state)
    writer.write_rank_file(RANK_JSON, lambda out: out.write(text.encode()))


def read_rank_json(checkpoint: Checkpoint, rank: int) -> dict:
    """What :func:`write_rank_json` wrote for ``rank``."""
    return json.loads(checkpoint.file(rank_name(RANK_JSON, rank)).read_text())


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
