"""Loading checkpoints into tables: exactly when the grouping matches, by id otherwise.

:func:`plan_load` decides which logical tables load from which saved ones, with which fields;
:func:`load_tables` carries the plan out.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

import numpy as np

from recis.checkpoint.files import CheckpointError
from recis.checkpoint.reader import Checkpoint
from recis.checkpoint.table_state import OPTIMIZER, field_kind, join_by_tag, split_by_tags
from recis.core.policies import LookupStats
from recis.core.row_store import EMBEDDING
from recis.core.table import EmbeddingTable
from recis.distributed.communicator import Communicator
from recis.distributed.sharding import owners


@dataclass(frozen=True)
class Source:
    """Where a logical table loads from: the checkpoint's logical ``table``, and which of its
    ``fields`` (embedding, slots); fields not listed start fresh."""

    table: str
    fields: tuple[str, ...]


def plan_load(
    checkpoint: Checkpoint,
    tables: Mapping[str, EmbeddingTable],
    kinds: Collection[str] = (EMBEDDING, "policy", OPTIMIZER),
    exclude: Iterable[str] = (),
    strict: bool = True,
    cast: bool = False,
) -> dict[str, Source]:
    """Plan to load every logical table of ``tables`` from the one of the same name, with its
    fields of ``kinds`` (see :func:`field_kind`).

    Logical tables matching an ``exclude`` pattern (``fnmatch`` style) are left alone. With
    ``strict`` — both ways — a logical table or field the checkpoint lacks, or a saved logical
    table or field of ``kinds`` the tables lack, raises :class:`CheckpointError`; otherwise such
    tables and fields are skipped. A field saved in another dtype (e.g. float32 rows into a
    bfloat16 table) is an error unless ``cast``, which converts it.
    """
    exclude = list(exclude)
    plan = {}
    for table in tables.values():
        for child in table.children:
            if _excluded(child, exclude):
                continue
            if child not in checkpoint.logical:
                _complain(strict, f"{checkpoint!r} has no table {child!r}")
                continue
            fields = _planned_fields(checkpoint, table, child, kinds, strict)
            _check_dtypes(checkpoint, table, child, fields, cast)
            plan[child] = Source(child, fields)
    given = {child for table in tables.values() for child in table.children}
    for child in checkpoint.logical:
        if child not in given and not _excluded(child, exclude):
            _complain(
                strict,
                f"{checkpoint!r} holds table {child!r}, but no table given has it (exclude it, "
                f"or load with strict=False, to leave it out)",
            )
    return plan


def _excluded(name: str, patterns: list[str]) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def _planned_fields(checkpoint, table, child, kinds, strict) -> tuple[str, ...]:
    saved = checkpoint.tables[checkpoint.logical[child]["table"]]["fields"]
    wanted = [f for f in table.store.fields if field_kind(table, f) in kinds]
    for name in wanted:
        if name not in saved:
            _complain(strict, f"{checkpoint!r}: table {child!r} was saved without {name!r}")
    for name, info in saved.items():
        if info["kind"] in kinds and name not in table.store.fields:
            _complain(strict, f"{checkpoint!r}: table {child!r} has {name!r}, the table does not")
    return tuple(f for f in wanted if f in saved)


def _check_dtypes(checkpoint, table, child, fields, cast: bool) -> None:
    saved = checkpoint.tables[checkpoint.logical[child]["table"]]["fields"]
    for name in fields:
        want = table.store.fields[name].dtype.name
        if saved[name]["dtype"] != want and not cast:
            raise CheckpointError(
                f"{checkpoint!r}: field {name!r} of table {child!r} was saved as "
                f"{saved[name]['dtype']}, the table stores {want}; load with cast=True to "
                f"convert it"
            )


def _complain(strict: bool, message: str) -> None:
    if strict:
        raise CheckpointError(message)


def load_tables(
    checkpoint: Checkpoint,
    tables: Mapping[str, EmbeddingTable],
    plan: Mapping[str, Source],
    strict: bool = True,
    communicator: Communicator | None = None,
) -> dict[str, list[str]]:
    """Load the logical tables of ``plan`` into the physical ``tables`` ({name: table}).

    In one process, a physical table whose name and children match those of a checkpoint
    written by one process, with every child planned from itself including its embedding, is
    restored exactly (:meth:`EmbeddingTable.load_state_dict`, ``strict`` as there). Otherwise
    each planned logical table's current ids are replaced by the saved ones, in new rows, read
    one file at a time; the eviction clock becomes the latest of the sources', and the ids
    pending admission are carried over. With a ``communicator`` of several ranks (tables
    sharded, :mod:`recis.distributed.sharding`), each rank keeps only the ids it owns, whatever
    the number of ranks that wrote the checkpoint. Returns, per physical table loaded, the
    checkpoint's physical tables it took rows from.
    """
    _check_plan(checkpoint, tables, plan)
    place = _Place.of(communicator)
    exact = checkpoint.world_size == 1 and place.world_size == 1
    sources = {}
    for name, table in tables.items():
        wanted = {child: plan[child] for child in table.children if child in plan}
        if not wanted:
            continue
        if exact and _same_layout(checkpoint, name, table, wanted):
            _load_exact(checkpoint, name, table, wanted, strict)
            sources[name] = [name]
        else:
            sources[name] = _reinsert(checkpoint, table, wanted, place)
    return sources


@dataclass(frozen=True)
class _Place:
    """This process's ``rank`` among the ``world_size`` ranks the tables are sharded over."""

    rank: int
    world_size: int

    @classmethod
    def of(cls, communicator: Communicator | None) -> _Place:
        if communicator is None:
            return cls(0, 1)
        return cls(communicator.rank, communicator.world_size)

    def owned(self, arrays: dict[str, np.ndarray], ids: np.ndarray | None, child: str) -> dict:
        """``arrays`` (one entry per id ``ids`` of logical table ``child``) cut to the ids owned
        here."""
        if self.world_size == 1:
            return arrays
        if ids is None:
            raise CheckpointError(f"table {child!r}: per-id state without ids cannot be sharded")
        mine = owners(ids, None, [child], self.world_size) == self.rank
        return {k: v[mine] for k, v in arrays.items()}


def _check_plan(checkpoint, tables, plan) -> None:
    fields = {c: t.store.fields for t in tables.values() for c in t.children}
    for child, source in plan.items():
        if child not in fields:
            raise CheckpointError(f"no table given holds the planned table {child!r}")
        if source.table not in checkpoint.logical:
            raise CheckpointError(f"{checkpoint!r} has no table {source.table!r}")
        saved = checkpoint.tables[checkpoint.logical[source.table]["table"]]["fields"]
        for name in source.fields:
            if name not in fields[child] or name not in saved:
                raise CheckpointError(f"table {child!r} or its source lacks the field {name!r}")
            shape, dtype = list(fields[child][name].shape), fields[child][name].dtype
            if saved[name]["shape"] != shape or _category(saved[name]["dtype"]) != _category(dtype):
                raise CheckpointError(
                    f"{checkpoint!r}: field {name!r} of table {source.table!r} is "
                    f"{saved[name]['dtype']}{saved[name]['shape']}, table {child!r} wants "
                    f"{fields[child][name].dtype.name}{shape}"
                )


def _category(dtype) -> str:
    """``"f"`` for every floating dtype (bfloat16 included), else the NumPy kind."""
    dtype = np.dtype(dtype)
    return "f" if dtype.kind == "f" or dtype.name.startswith(("float", "bfloat")) else dtype.kind


def _same_layout(checkpoint, name, table, wanted) -> bool:
    saved = checkpoint.tables.get(name)
    fields = {s.fields for s in wanted.values()}
    return (
        saved is not None
        and saved["children"] == list(table.children)
        and len(wanted) == len(table.children)
        and len(fields) == 1
        and EMBEDDING in next(iter(fields))
        and all(s.table == c for c, s in wanted.items())
    )


def _load_exact(checkpoint, name, table, wanted, strict) -> None:
    parts = [checkpoint.read_logical(child, wanted[child].fields) for child in table.children]
    state = {
        "id": np.concatenate([p["id"] for p in parts]),
        "tag": np.concatenate([np.full(p["id"].size, t, np.int64) for t, p in enumerate(parts)]),
        "row": np.concatenate([p["row"] for p in parts]),
    }
    order = np.argsort(state["row"], kind="stable")
    state = {k: v[order] for k, v in state.items()}
    for field_name, spec in table.store.fields.items():
        if field_name in wanted[table.children[0]].fields:
            state[field_name] = np.concatenate([p[field_name] for p in parts])[order]
        else:
            state[field_name] = np.full((order.size, *spec.shape), spec.fill, spec.dtype)
    state |= checkpoint.read_physical_state(name)
    state |= _with_prefix(join_by_tag(_per_id_state(parts)), "admission.")
    try:
        table.load_state_dict(state, strict=strict)
    except KeyError as error:
        raise CheckpointError(f"{checkpoint!r}: {error.args[0]}") from None
    table.stats_total = LookupStats(**checkpoint.tables[name]["lookup_stats"])


def _reinsert(checkpoint, table, wanted, place: _Place) -> list[str]:
    sources, pending = [], {}
    for child, source in wanted.items():
        tag = table.children.index(child)
        current = table.ids.export()
        mine = current.tags == tag
        table.erase(current.keys[mine], current.tags[mine])
        names = [f"{source.table}/{k}" for k in ("id", *source.fields)]
        for part in checkpoint.iter_parts(names):
            part = {k.removeprefix(f"{source.table}/"): v for k, v in part.items()}
            _insert_rows(checkpoint, table, tag, source, place.owned(part, part["id"], child))
        pending[tag] = _pending_ids(checkpoint, source.table, child, place)
        sources.append(checkpoint.logical[source.table]["table"])
    sources = list(dict.fromkeys(sources))
    _carry_policy_state(checkpoint, table, sources, pending)
    return sources


def _insert_rows(checkpoint, table, tag: int, source: Source, part: dict) -> None:
    """Give the ids of ``part`` new rows holding its fields."""
    ids = part["id"]
    if not ids.size:
        return
    if (table.find(ids, tag) >= 0).any():
        raise CheckpointError(f"{checkpoint!r}: table {source.table!r} holds an id twice")
    rows = table.insert_new(ids, tag)
    for field_name in source.fields:
        table.store.scatter(rows, part[field_name], field_name)


def _pending_ids(checkpoint, name: str, child: str, place: _Place) -> dict[str, np.ndarray]:
    """The saved ids of logical table ``name`` pending admission, owned here (keys without the
    ``admission.`` prefix)."""
    keys = [k for k in checkpoint.logical[name]["state"] if k.startswith("admission.")]
    if not keys:
        return {}
    parts = [
        place.owned(part, part.get(f"{name}/@admission.keys"), child)
        for part in checkpoint.iter_parts([f"{name}/@{k}" for k in keys])
    ]
    return {
        key.removeprefix("admission."): np.concatenate([p[f"{name}/@{key}"] for p in parts])
        for key in keys
    }


def _carry_policy_state(checkpoint, table, sources, pending) -> None:
    if table.eviction is not None:
        clocks = [
            int(checkpoint.read_tensor(f"{s}/@eviction.step"))
            for s in sources
            if "eviction.step" in checkpoint.tables[s]["state"]
        ]
        table.eviction.step = max([table.eviction.step, *clocks])
    if table.admission.stateful and any(pending.values()):
        current = table.admission.state()
        keys = [k for k in current if k != "tags"]
        parts = split_by_tags(current, keys, current["tags"], len(table.children))
        kept = {t: part for t, part in enumerate(parts) if t not in pending}
        table.admission.load_state(join_by_tag(kept | pending))


def _per_id_state(parts: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """The ``@admission.*`` arrays of each part, keys without the prefix."""
    prefix = "@admission."
    return [
        {k.removeprefix(prefix): v for k, v in p.items() if k.startswith(prefix)} for p in parts
    ]


def _with_prefix(state: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}{k}": v for k, v in state.items()}


def merge_counters(state: Mapping, sources: Mapping[str, list[str]]) -> dict:
    """Per-table counters saved for the checkpoint's physical tables, remapped to the tables
    they were loaded into (``sources`` from :func:`load_tables`): the largest of the sources.

    ``state`` maps counter names to {physical table: value}; tables not in ``sources`` are
    dropped.

    >>> merge_counters({"steps": {"a": 3, "b": 5}}, {"a+1": ["a", "b"]})
    {'steps': {'a+1': 5}}
    """
    return {
        counter: {
            target: max(values[s] for s in names if s in values)
            for target, names in sources.items()
            if any(s in values for s in names)
        }
        for counter, values in state.items()
    }
