"""Serving bundles: embedding rows, the feature configuration and the dense program, for serving.

A bundle (:mod:`~recis.export.bundle`) holds what a server needs and nothing else: each logical
table's ids and embedding rows (no optimizer slots, no admission or eviction state) in a dtype
chosen at export — ``"float32"``, ``"bfloat16"``, ``"float16"`` or ``"int8"`` with a float32 scale
per row (:mod:`~recis.export.encoding`) —, the front end's dense program and feature
configuration, and a manifest with checksums and the training step.

A **delta** (``since=`` an earlier bundle) holds only the rows written since that bundle and the
ids removed since; a bundle's :meth:`~recis.export.bundle.Bundle.state` (its chain of full export
and deltas applied in order) equals a full export of the same moment, bit for bit. From live
tables a delta copies only the changed rows (:func:`~recis.export.sources.snapshot_tables`); from
a checkpoint it compares every row with the earlier bundle's.

:func:`start_export` holds the caller (a training loop) only while the rows are copied out of the
tables, and returns a :class:`~recis.export.pending.PendingExport` whose files are written in the
background; :func:`export_tables` waits for them. Tables sharded over ranks export with a
``communicator``: every rank copies its shard, rank 0 gathers and writes one bundle
(:mod:`~recis.export.sharded`).

The front ends add the dense part: :func:`recis.backends.torch.export.export_model` and
:func:`recis.backends.jax.export.export_model`. :class:`recis.serving.Predictor` loads bundles.

>>> import tempfile
>>> import numpy as np
>>> from recis.core.table import EmbeddingTable
>>> root = tempfile.mkdtemp()
>>> table = EmbeddingTable("item", dim=2)
>>> _ = table.find_or_insert(np.array([5, 9]))
>>> base = export_tables(f"{root}/base", {"item": table}, step=1)
>>> _ = table.find_or_insert(np.array([11]))
>>> _ = table.erase(np.array([5]))
>>> delta = export_tables(f"{root}/delta", {"item": table}, step=2, since=base)
>>> delta.rows()["item"].ids.tolist(), delta.rows()["item"].removed.tolist()
([11], [5])
>>> delta.state()["item"].ids.tolist()
[9, 11]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial

from recis.checkpoint.reader import Checkpoint
from recis.core.table import EmbeddingTable
from recis.distributed.communicator import Communicator
from recis.export.bundle import Bundle, BundleError, apply_delta, write_bundle
from recis.export.encoding import DTYPES, check_dtype, decode, encode
from recis.export.pending import PendingExport
from recis.export.rows import Rows, diff
from recis.export.sharded import sharded_snapshot
from recis.export.sources import Snapshot, checkpoint_rows, encode_rows, snapshot_tables

__all__ = [
    "DTYPES",
    "Bundle",
    "BundleError",
    "PendingExport",
    "Rows",
    "apply_delta",
    "decode",
    "encode",
    "export_checkpoint",
    "export_tables",
    "open_bundle",
    "start_export",
    "write_bundle",
]

DenseExport = Callable[[], tuple[Mapping, Mapping]]


def open_bundle(bundle) -> Bundle:
    """``bundle`` itself, or the bundle at that path."""
    return bundle if isinstance(bundle, Bundle) else Bundle(bundle)


def start_export(
    path,
    tables: Mapping[str, EmbeddingTable],
    *,
    dtype: str = "float32",
    since=None,
    step: int = 0,
    entries: Mapping | None = None,
    files: Mapping | None = None,
    dense: DenseExport | None = None,
    communicator: Communicator | None = None,
) -> PendingExport:
    """Copy the rows of live physical ``tables`` (by name) — all of them, or with ``since`` (a
    bundle, its path, or a :class:`PendingExport`) those changed since — and write the bundle at
    ``path`` in the background.

    ``entries`` and ``files``: the front end's manifest entries and files (see
    :func:`write_bundle`); ``dense``: a function run in the background that returns more of
    them (e.g. tracing the dense program). ``communicator``: the ranks the tables are sharded
    over; every rank calls this collectively, rank 0's ``since`` counts, and rank 0 writes.
    """
    start = time.perf_counter()
    check_dtype(dtype)
    comm = communicator if communicator is not None and communicator.world_size > 1 else None
    lineage = _parent_lineage(since, dtype, comm)
    if comm is None:
        snapshots, lineage = snapshot_tables(tables, lineage)
    else:
        snapshots, lineage = sharded_snapshot(tables, lineage, comm)
    seconds = time.perf_counter() - start
    write = partial(
        _write, path, snapshots, dtype=dtype, since=since, step=step, lineage=lineage,
        entries=entries, files=files, dense=dense,
    )  # fmt: skip
    return PendingExport(write if snapshots is not None else _nothing, dtype, lineage, seconds)


def export_tables(path, tables: Mapping[str, EmbeddingTable], **options) -> Bundle | None:
    """:func:`start_export`, waiting until the bundle is written; returns it (a sharded
    export: None on ranks other than 0).

    >>> import tempfile
    >>> import numpy as np
    >>> from recis.core.table import EmbeddingTable
    >>> table = EmbeddingTable("item", dim=2)
    >>> _ = table.find_or_insert(np.array([9, 5]))
    >>> export_tables(f"{tempfile.mkdtemp()}/b", {"item": table}, step=7).step
    7
    """
    return start_export(path, tables, **options).result()


def export_checkpoint(
    path,
    checkpoint,
    *,
    dtype: str = "float32",
    since=None,
    step: int | None = None,
    entries: Mapping | None = None,
    files: Mapping | None = None,
) -> Bundle:
    """Export the embedding rows of ``checkpoint`` (a :class:`~recis.checkpoint.Checkpoint` or
    a checkpoint or run directory) to a bundle at ``path``; with ``since``, a delta found by
    comparing every row with that bundle's. ``step`` defaults to the checkpoint's."""
    checkpoint = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(checkpoint)
    parent = None if since is None else open_bundle(since)
    full = {name: Snapshot(rows, True) for name, rows in checkpoint_rows(checkpoint, dtype).items()}
    step = int(checkpoint.metadata.get("step", 0)) if step is None else step
    rows = _delta_rows(full, parent)
    return write_bundle(
        path, rows, dtype=dtype, step=step, parent=parent, entries=entries, files=files
    )


def _parent_lineage(since, dtype: str, comm: Communicator | None) -> Mapping | None:
    """The lineage of the export ``since`` follows (rank 0's, given to every rank); raises if
    it has another dtype."""
    if comm is not None:
        lineage, error = comm.broadcast_object(
            _checked_lineage(since, dtype) if comm.rank == 0 else None, "export's parent"
        )
        if error is not None:
            raise ValueError(error)
        return lineage
    lineage, error = _checked_lineage(since, dtype)
    if error is not None:
        raise ValueError(error)
    return lineage


def _checked_lineage(since, dtype: str) -> tuple[Mapping | None, str | None]:
    if since is None:
        return None, None
    if isinstance(since, PendingExport):
        parent_dtype, lineage = since.dtype, since.lineage
    else:
        try:
            since = open_bundle(since)
        except (BundleError, OSError) as error:
            return None, f"cannot follow {str(since)!r}: {error}"
        parent_dtype, lineage = since.dtype, since.manifest.get("lineage")
    if parent_dtype != dtype:
        return None, f"a delta of {since!r} must use its dtype {parent_dtype!r}, not {dtype!r}"
    return lineage, None


def _write(path, snapshots, *, dtype, since, step, lineage, entries, files, dense) -> Bundle:
    """The background part of :func:`start_export`: encode, compare, trace, write."""
    parent = None if since is None else _resolve(since)
    encoded = {n: Snapshot(encode_rows(s.rows, dtype), s.complete) for n, s in snapshots.items()}
    rows = _delta_rows(encoded, parent)
    entries, files = dict(entries or {}), dict(files or {})
    if dense is not None:
        more_entries, more_files = dense()
        entries |= more_entries
        files |= more_files
    entries["lineage"] = lineage
    return write_bundle(
        path, rows, dtype=dtype, step=step, parent=parent, entries=entries, files=files
    )


def _resolve(since) -> Bundle:
    if not isinstance(since, PendingExport):
        return open_bundle(since)
    parent = since.result()
    if parent is None:
        raise BundleError("a delta is written on rank 0 only: the export it follows is not here")
    return parent


def _nothing() -> None:
    return None


def _delta_rows(snapshots: Mapping[str, Snapshot], parent: Bundle | None) -> dict[str, Rows]:
    """The rows to write: as copied for a full export or a logged delta; diffed against the
    parent's state where a table was copied whole for a delta."""
    if parent is None:
        return {name: snapshot.rows for name, snapshot in snapshots.items()}
    state = parent.state() if any(s.complete for s in snapshots.values()) else {}
    rows = {}
    for name, snapshot in snapshots.items():
        if not snapshot.complete:
            rows[name] = snapshot.rows
        elif name not in state:
            raise BundleError(f"table {name!r} is not in {parent!r}: export a full bundle")
        else:
            rows[name] = diff(state[name], snapshot.rows)
    return rows
