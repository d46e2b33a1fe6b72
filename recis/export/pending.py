"""``PendingExport``: an export whose rows are copied and whose files are still being written.

:func:`recis.export.start_export` copies what it needs out of the live tables (and a front end
copies the dense weights) while the caller waits; the rest — encoding, comparing with the
earlier bundle, tracing the dense program, writing and fsyncing the files — runs on one
background thread shared by all exports, in the order they were started, so that a delta
started before its parent is written waits for it. Training goes on meanwhile.

>>> import tempfile
>>> import numpy as np
>>> from recis.core.table import EmbeddingTable
>>> from recis.export import start_export
>>> table = EmbeddingTable("item", dim=2)
>>> _ = table.find_or_insert(np.array([5, 9]))
>>> pending = start_export(f"{tempfile.mkdtemp()}/base", {"item": table}, step=3)
>>> _ = table.find_or_insert(np.array([11]))  # after the snapshot: not in this export
>>> pending.result().rows()["item"].ids.tolist()
[5, 9]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from recis.export.bundle import Bundle

_WRITER: ThreadPoolExecutor | None = None


def _writer() -> ThreadPoolExecutor:
    global _WRITER
    if _WRITER is None:
        _WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recis-export")
    return _WRITER  # its thread is joined at exit: exports under way are finished


class PendingExport:
    """An export being written in the background (see the module docstring).

    Attributes:
        dtype: the bundle's row dtype.
        lineage: what a delta following this export needs from it (known before it is written).
        snapshot_seconds: how long the caller waited while the rows (and dense weights) were
            copied.
        finished_at: ``time.perf_counter()`` when the files were written (None before).
    """

    def __init__(
        self, write: Callable[[], Bundle | None], dtype: str, lineage, snapshot_seconds: float
    ) -> None:
        self.dtype, self.lineage, self.snapshot_seconds = dtype, lineage, snapshot_seconds
        self.finished_at: float | None = None
        self._future: Future = _writer().submit(self._write, write)

    def _write(self, write: Callable[[], Bundle | None]) -> Bundle | None:
        bundle = write()
        self.finished_at = time.perf_counter()
        return bundle

    def __repr__(self) -> str:
        state = "written" if self.done() else "being written"
        return f"PendingExport({state}, snapshot {self.snapshot_seconds:.4f} s)"

    def done(self) -> bool:
        """Whether the files are written (or writing them failed)."""
        return self._future.done()

    def result(self, timeout: float | None = None) -> Bundle | None:
        """The written :class:`~recis.export.bundle.Bundle` (None on ranks other than 0 of a
        sharded export); raises what writing it raised."""
        return self._future.result(timeout)
