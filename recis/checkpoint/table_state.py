"""A table's state dict seen as a checkpoint stores it: per logical table, and per physical one.

:meth:`EmbeddingTable.state_dict` holds one array per field ordered by row, with a ``tag`` per id
(its logical table), plus policy state. A checkpoint splits it by logical table (ids, rows,
fields, and the per-id policy state such as ids pending admission) and keeps the rest (row
allocator, eviction clock) with the physical table.

>>> import numpy as np
>>> from recis.core.table import EmbeddingTable
>>> table = EmbeddingTable("t", dim=2, children=["a", "b"])
>>> _ = table.find_or_insert(np.array([5, 6, 7]), tags=np.array([1, 0, 1]))
>>> logical, physical = split_state(table, table.state_dict())
>>> logical["b"]["id"].tolist(), sorted(physical)
([5, 7], ['@rows.free', '@rows.high_water'])
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np

from recis.core.row_store import EMBEDDING
from recis.core.table import EmbeddingTable

ROW_KEYS = ("id", "tag", "row")
OPTIMIZER = "optimizer"


def describe_table(table: EmbeddingTable, state: dict[str, np.ndarray]) -> dict:
    """The index entry of a physical table: children, dim, dtype, fields, state keys, stats."""
    fields = {
        name: {"dtype": spec.dtype.name, "shape": list(spec.shape), "kind": field_kind(table, name)}
        for name, spec in table.store.fields.items()
    }
    return {
        "children": list(table.children),
        "dim": table.dim,
        "dtype": table.store.fields[EMBEDDING].dtype.name,
        "fields": fields,
        "state": sorted(physical_keys(table, state)),
        "lookup_stats": table.stats_total.as_dict(),
    }


def field_kind(table: EmbeddingTable, name: str) -> str:
    """``"embedding"``, ``"policy"`` (the eviction policy's usage slot) or ``"optimizer"``.

    >>> field_kind(EmbeddingTable("t", dim=2), "embedding")
    'embedding'
    """
    if name == EMBEDDING:
        return EMBEDDING
    if table.eviction is not None and name == table.eviction.slot:
        return "policy"
    return OPTIMIZER


def per_id_keys(state: Mapping[str, np.ndarray]) -> list[str]:
    """Policy-state keys holding one entry per id of ``admission.tags`` (split by table)."""
    tags = state.get("admission.tags")
    if tags is None:
        return []
    return [
        k
        for k, v in state.items()
        if k.startswith("admission.") and np.ndim(v) and len(v) == len(tags)
    ]


def physical_keys(table: EmbeddingTable, state: Mapping[str, np.ndarray]) -> list[str]:
    """Keys of ``state`` kept with the physical table (row allocator, eviction clock)."""
    skip = {*ROW_KEYS, *table.store.fields, *per_id_keys(state)}
    return [k for k in state if k not in skip]


def split_state(table: EmbeddingTable, state: dict[str, np.ndarray]):
    """(per logical table: id, row, fields and ``@`` per-id policy state; physical ``@`` state)."""
    children = len(table.children)
    rows = split_by_tags(state, ["id", "row", *table.store.fields], state["tag"], children)
    per_id = [k for k in per_id_keys(state) if k != "admission.tags"]
    pending = split_by_tags(state, per_id, state.get("admission.tags"), children)
    logical = {
        child: rows[tag] | {f"@{k}": v for k, v in pending[tag].items()}
        for tag, child in enumerate(table.children)
    }
    return logical, {f"@{k}": state[k] for k in physical_keys(table, state)}


def split_by_tags(state, keys: list[str], tags, count: int) -> list[dict[str, np.ndarray]]:
    """``state[keys]`` split into ``count`` parts by ``tags``, keeping the order within each."""
    if not keys:
        return [{} for _ in range(count)]
    order = np.argsort(tags, kind="stable")
    bounds = np.searchsorted(tags[order], np.arange(count + 1))
    ordered = {k: state[k][order] for k in keys}
    return [{k: v[a:b] for k, v in ordered.items()} for a, b in itertools.pairwise(bounds)]


def join_by_tag(parts: Mapping[int, dict[str, np.ndarray]] | list) -> dict[str, np.ndarray]:
    """Per-id policy state by tag (a list is indexed by tag) joined into parallel arrays with
    ``tags``; empty parts are skipped."""
    items = parts.items() if isinstance(parts, Mapping) else enumerate(parts)
    items = [(t, p) for t, p in items if p]
    if not items:
        return {}
    joined = {k: np.concatenate([p[k] for _, p in items]) for k in items[0][1]}
    joined["tags"] = np.concatenate([np.full(len(next(iter(p.values()))), t) for t, p in items])
    return joined
