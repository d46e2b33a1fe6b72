"""RecIS datasets as ``grain`` datasets, with exact resume through grain's iterator state.

:class:`RecisIterDataset` wraps an :class:`~recis.io.OrcDataset` or
:class:`~recis.io.ParquetDataset` (whose elements are whole batches: dicts of NumPy arrays and
:class:`~recis.core.ragged.Ragged`) as a ``grain.IterDataset``, so that grain's transformations
(``map``, ``filter``, ``prefetch``...) and checkpointing apply. Its iterator's ``get_state()``
is the dataset's own read state (:meth:`~recis.io.dataset_base.DatasetBase.state_dict`: a few
integers, JSON-able) and ``set_state`` restores it, so an iterator restored from a state yields
exactly the batches that followed it — also through ``grain.checkpoint.CheckpointSave`` in an
orbax checkpoint. ``num_epochs`` counts the dataset's epochs from 0 (None: endless).

>>> import tempfile, pyarrow as pa, pyarrow.parquet as pq
>>> from recis.io import ParquetDataset
>>> path = f"{tempfile.mkdtemp()}/part.parquet"
>>> pq.write_table(pa.table({"x": list(range(5))}), path)
>>> data = ParquetDataset(2, output="numpy")
>>> data.add_path(path)
>>> data.fixedlen_feature("x", 0)
>>> iterator = iter(RecisIterDataset(data).map(lambda batch: batch["x"][:, 0].tolist()))
>>> next(iterator), iterator.get_state()["row"]
([0, 1], 2)
>>> state = iterator.get_state()
>>> list(iterator)
[[2, 3], [4]]
>>> iterator.set_state(state)
>>> list(iterator)
[[2, 3], [4]]
"""

from __future__ import annotations

from typing import Any

import grain

from recis.io.dataset_base import DatasetBase


class RecisIterDataset(grain.IterDataset):
    """A grain ``IterDataset`` of ``dataset``'s batches for ``num_epochs`` epochs (module doc).

    The RecIS dataset keeps the position, so one dataset serves one iterator at a time:
    starting another one (or restoring a state) moves the first too.
    """

    def __init__(self, dataset: DatasetBase, num_epochs: int | None = 1) -> None:
        super().__init__()
        if not isinstance(dataset, DatasetBase):
            raise TypeError(
                f"RecisIterDataset: expected an OrcDataset or ParquetDataset, got "
                f"{type(dataset).__name__}"
            )
        if num_epochs is not None and num_epochs < 1:
            raise ValueError(f"RecisIterDataset: num_epochs must be >= 1, got {num_epochs}")
        self.dataset = dataset
        self.num_epochs = num_epochs

    def __iter__(self) -> RecisIterator:
        return RecisIterator(self.dataset, self.num_epochs)

    def __str__(self) -> str:
        return f"RecisIterDataset({type(self.dataset).__name__}, num_epochs={self.num_epochs})"


class RecisIterator(grain.DatasetIterator):
    """The iterator of a :class:`RecisIterDataset`: its state is the dataset's read state."""

    def __init__(self, dataset: DatasetBase, num_epochs: int | None) -> None:
        super().__init__()
        self._dataset = dataset
        self._num_epochs = num_epochs
        self._epoch = None  # the running epoch's iterator

    def __next__(self) -> Any:
        while True:
            if self._epoch is None:
                if self._num_epochs is not None and self._dataset.epoch >= self._num_epochs:
                    raise StopIteration
                self._epoch = iter(self._dataset)
            try:
                return next(self._epoch)
            except StopIteration:
                self._epoch = None

    def get_state(self) -> dict[str, Any]:
        """The dataset's read state (:meth:`~recis.io.dataset_base.DatasetBase.state_dict`)."""
        return self._dataset.state_dict()

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`get_state` (the running epoch's read-ahead is dropped)."""
        self._dataset.load_state_dict(state)
        self._epoch = None
