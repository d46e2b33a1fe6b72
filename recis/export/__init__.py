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

from collections.abc import Mapping

from recis.checkpoint.reader import Checkpoint
from recis.core.table import EmbeddingTable
from recis.export.bundle import Bundle, BundleError, apply_delta, write_bundle
from recis.export.encoding import DTYPES, decode, encode
from recis.export.rows import Rows, diff
from recis.export.sources import Snapshot, checkpoint_rows, snapshot_tables

__all__ = [
    "DTYPES",
    "Bundle",
    "BundleError",
    "Rows",
    "apply_delta",
    "decode",
    "encode",
    "export_checkpoint",
    "export_tables",
    "open_bundle",
    "write_bundle",
]


def open_bundle(bundle) -> Bundle:
    """``bundle`` itself, or the bundle at that path."""
    return bundle if isinstance(bundle, Bundle) else Bundle(bundle)


def export_tables(
    path,
    tables: Mapping[str, EmbeddingTable],
    *,
    dtype: str = "float32",
    since=None,
    step: int = 0,
    entries: Mapping | None = None,
    files: Mapping | None = None,
) -> Bundle:
    """Export live physical ``tables`` (by name) to a bundle at ``path``: all rows, or with
    ``since`` (a bundle or its path) a delta of the rows changed since it. ``entries`` and
    ``files``: the front end's manifest entries and files (see :func:`write_bundle`)."""
    parent = None if since is None else open_bundle(since)
    lineage = None if parent is None else parent.manifest.get("lineage")
    snapshots, lineage = snapshot_tables(tables, dtype, since=lineage)
    rows = _delta_rows(snapshots, parent)
    entries = {**dict(entries or {}), "lineage": lineage}
    return write_bundle(
        path, rows, dtype=dtype, step=step, parent=parent, entries=entries, files=files
    )


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
