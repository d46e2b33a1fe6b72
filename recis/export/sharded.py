"""Exports of tables sharded over ranks: every rank copies its shard, rank 0 gathers and writes.

In a distributed run each rank's tables hold the rows it owns. :func:`sharded_snapshot` is a
collective: the ranks first agree on which tables give a delta (a table is copied whole on every
rank when any rank's change log does not reach back to the earlier export), then each copies its
rows as in one process (:func:`~recis.export.sources.snapshot_tables`) and sends them to rank 0
through the :class:`~recis.distributed.communicator.Communicator` — the ids, the float32 rows and
the removed ids of all tables in one exchange each. Rank 0 merges the shards into one bundle,
which loads in one :class:`~recis.serving.Predictor` at any world size; the other ranks write
nothing. The bundle's ``lineage`` keeps every rank's change-log position (``{"ranks": [...]}``),
so the next delta, at the same world size, copies only the changed rows on each rank.

>>> import numpy as np
>>> from recis.distributed.communicator import SingleProcess
>>> from recis.core.table import EmbeddingTable
>>> table = EmbeddingTable("item", dim=2)
>>> _ = table.find_or_insert(np.array([9, 5]))
>>> snapshots, lineage = sharded_snapshot({"item": table}, None, SingleProcess())
>>> snapshots["item"].rows.ids.tolist(), len(lineage["ranks"])
([5, 9], 1)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from recis.core.table import EmbeddingTable
from recis.distributed.communicator import Communicator
from recis.export.rows import Rows
from recis.export.sources import Snapshot, follows, snapshot_tables


def sharded_snapshot(
    tables: Mapping[str, EmbeddingTable], since: Mapping | None, comm: Communicator
) -> tuple[dict[str, Snapshot] | None, dict]:
    """(rank 0: every logical table's rows gathered from all ranks, other ranks: None; the
    lineage of all ranks). ``since``: the lineage of the earlier export (rank 0's counts)."""
    what = f"export of tables {sorted(tables)}"
    previous = _rank_lineage(since, comm)
    logged = comm.all_gather_object(sorted(follows(tables, previous)), what)
    whole = set(tables) - set.intersection(*(set(names) for names in logged))
    snapshots, lineage = snapshot_tables(tables, previous, whole)
    names = sorted(snapshots)
    shapes = {n: (len(snapshots[n].rows), snapshots[n].rows.removed.size) for n in names}
    described = comm.all_gather_object((shapes, lineage), what)
    merged = _gather_rows(snapshots, names, described, comm, what)
    return merged, {"ranks": [lineage for _, lineage in described]}


def _rank_lineage(since: Mapping | None, comm: Communicator) -> Mapping | None:
    """This rank's part of a sharded lineage of the same world size (else None)."""
    ranks = (since or {}).get("ranks")
    return ranks[comm.rank] if ranks is not None and len(ranks) == comm.world_size else None


def _gather_rows(snapshots, names, described, comm, what) -> dict[str, Snapshot] | None:
    """Every rank's rows of ``names`` merged on rank 0 (sorted by id); None elsewhere."""
    mine = [snapshots[n].rows for n in names]
    ids = _to_root(comm, np.concatenate([r.ids for r in mine] or [np.zeros(0, np.int64)]), what)
    flat = [r.values.reshape(-1) for r in mine]
    values = _to_root(comm, np.concatenate(flat or [np.zeros(0, np.float32)]), what)
    removed = np.concatenate([r.removed for r in mine] or [np.zeros(0, np.int64)])
    removed = _to_root(comm, removed, what)
    if comm.rank != 0:
        return None
    parts = {n: [] for n in names}
    at = {"ids": 0, "values": 0, "removed": 0}
    for shapes, _ in described:
        for name in names:
            count, gone = shapes[name]
            dim = snapshots[name].rows.values.shape[1]
            part = Rows(
                ids[at["ids"] : at["ids"] + count],
                values[at["values"] : at["values"] + count * dim].reshape(count, dim),
                removed=removed[at["removed"] : at["removed"] + gone],
            )
            at = {"ids": at["ids"] + count, "values": at["values"] + count * dim,
                  "removed": at["removed"] + gone}  # fmt: skip
            parts[name].append(part)
    return {n: Snapshot(_merge(parts[n]), snapshots[n].complete) for n in names}


def _merge(parts: list[Rows]) -> Rows:
    rows = Rows(
        np.concatenate([p.ids for p in parts]),
        np.concatenate([p.values for p in parts]),
        removed=np.unique(np.concatenate([p.removed for p in parts])),
    )
    return rows.sorted()


def _to_root(comm: Communicator, array: np.ndarray, what: str) -> np.ndarray:
    """Every rank's ``array`` (1-D), concatenated in rank order on rank 0 (empty elsewhere)."""
    send = np.zeros(comm.world_size, np.int64)
    send[0] = array.size
    received = comm.exchange_counts(send, what).reshape(-1)
    return comm.all_to_all(array, send, received, what).wait()
