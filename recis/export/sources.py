"""Where exported rows come from: live engine tables or a checkpoint directory.

:func:`snapshot_tables` copies rows out of live :class:`~recis.core.table.EmbeddingTable` s. The
first export of a table starts its change log (:meth:`~recis.core.table.EmbeddingTable.
track_changes`) and copies every row; a later one, given the ``lineage`` of the bundle it
follows, copies only the rows written since and the ids erased since — the only pause a running
trainer sees: the rows stay float32 and the caller encodes them later. A table whose log does not
reach back to that bundle (a restored or recreated table), or that ``whole`` names, is copied
whole, and the caller diffs it against the bundle. :func:`follows` tells which tables can give a
delta (sharded tables agree on it over the ranks first).

:func:`checkpoint_rows` reads every logical table's ids and embedding rows (never the optimizer
slots or policy state) from a checkpoint.

>>> import numpy as np
>>> from recis.core.table import EmbeddingTable
>>> table = EmbeddingTable("item", dim=2)
>>> _ = table.find_or_insert(np.array([5, 9]))
>>> full, lineage = snapshot_tables({"item": table})
>>> full["item"].complete, full["item"].rows.ids.tolist()
(True, [5, 9])
>>> table.store.scatter(table.find(np.array([9])), np.ones((1, 2), np.float32))
>>> table.written(table.find(np.array([9])))
>>> delta, _ = snapshot_tables({"item": table}, since=lineage)
>>> delta["item"].complete, delta["item"].rows.ids.tolist()
(False, [9])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from recis.checkpoint.reader import Checkpoint
from recis.core import arrays as interop
from recis.core.table import EmbeddingTable
from recis.export.encoding import encode
from recis.export.rows import Rows


@dataclass
class Snapshot:
    """A logical table's copied rows: all of them (``complete``) or a delta's."""

    rows: Rows
    complete: bool


def follows(tables: Mapping[str, EmbeddingTable], since: Mapping | None) -> set[str]:
    """The names of ``tables`` whose change log reaches back to the lineage ``since``."""
    out = set()
    for name, table in tables.items():
        previous, changes = (since or {}).get(name), table.changes
        if (
            previous is not None
            and changes is not None
            and previous["token"] == changes.token
            and previous["clock"] >= changes.forgotten_through
        ):
            out.add(name)
    return out


def snapshot_tables(
    tables: Mapping[str, EmbeddingTable], since: Mapping | None = None, whole: set = frozenset()
) -> tuple[dict[str, Snapshot], dict]:
    """(per logical table a :class:`Snapshot` of float32 rows, the new lineage: per physical
    table the change log's ``token`` and the ``clock`` of this snapshot). Tables in ``whole``
    are copied whole even where their log would give a delta."""
    logged = follows(tables, since) - set(whole)
    snapshots, lineage = {}, {}
    for name, table in tables.items():
        changes = table.track_changes()
        clock = changes.tick()
        if name in logged:
            snapshots |= _changed_rows(table, since[name]["clock"])
            changes.forget(since[name]["clock"])
        else:
            snapshots |= _all_rows(table)
        lineage[name] = {"token": changes.token, "clock": clock}
    return snapshots, lineage


def encode_rows(rows: Rows, dtype: str) -> Rows:
    """``rows`` (float32 values) encoded as ``dtype``."""
    values, scale = encode(rows.values, dtype)
    return Rows(rows.ids, values, scale, rows.removed)


def _all_rows(table: EmbeddingTable) -> dict[str, Snapshot]:
    entries = table.ids.export()
    ids, tags = interop.to_host(entries.keys), interop.to_host(entries.tags)
    return _split(table, ids, tags, interop.to_host(table.gather(entries.rows)), None)


def _changed_rows(table: EmbeddingTable, clock: int) -> dict[str, Snapshot]:
    changes = table.changes
    rows = changes.rows_since(clock)
    ids, tags = interop.to_host(changes.row_ids[rows]), interop.to_host(changes.row_tags[rows])
    values = interop.to_host(table.gather(rows))
    erased_ids, erased_tags = changes.erased_since(clock)
    absent = interop.to_host(table.find(erased_ids, erased_tags)) < 0  # not re-inserted since
    removed = (interop.to_host(erased_ids)[absent], interop.to_host(erased_tags)[absent])
    return _split(table, ids, tags, values, removed)


def _split(table, ids, tags, values, removed) -> dict[str, Snapshot]:
    """Per logical table (child), its float32 rows sorted by id; ``removed``: a delta's (ids,
    tags)."""
    out = {}
    for tag, child in enumerate(table.children):
        mine = np.flatnonzero(tags == tag)
        order = mine[np.argsort(ids[mine], kind="stable")]
        rows = Rows(ids[order], np.asarray(values[order], np.float32))
        if removed is not None:
            rows.removed = np.unique(removed[0][removed[1] == tag])
        out[child] = Snapshot(rows, complete=removed is None)
    return out


def checkpoint_rows(checkpoint: Checkpoint, dtype: str) -> dict[str, Rows]:
    """Every logical table's ids and embedding rows of ``checkpoint``, sorted by id and
    encoded as ``dtype``."""
    out = {}
    for name in checkpoint.logical:
        ids = checkpoint.read_tensor(f"{name}/id")
        values = checkpoint.read_tensor(f"{name}/embedding").astype(np.float32)
        order = np.argsort(ids, kind="stable")
        encoded, scale = encode(values[order], dtype)
        out[name] = Rows(ids[order], encoded, scale)
    return out
