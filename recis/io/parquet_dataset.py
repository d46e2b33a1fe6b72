"""``ParquetDataset``: the same dataset API over Parquet files, read by row group.

>>> import tempfile, pyarrow as pa, pyarrow.parquet as pq
>>> directory = tempfile.mkdtemp()
>>> table = pa.table({"label": [0.0, 1.0, 1.0], "ids": [[1, 2], [], [3]]})
>>> pq.write_table(table, f"{directory}/part-0.parquet", row_group_size=2)
>>> ds = ParquetDataset(2, read_threads_num=1)
>>> ds.add_path(directory)
>>> ds.fixedlen_feature("label", [0.0])
>>> ds.varlen_feature("ids")
>>> [batch["label"].ravel().tolist() for batch in ds]
[[0.0, 1.0], [1.0]]
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from recis.io.dataset_base import DatasetBase
from recis.io.sources import SourceFile


class ParquetFormat:
    """Parquet files, one fragment per row group."""

    suffixes = (".parquet",)
    unit_name = "row group"

    def inspect(self, source: SourceFile) -> tuple[pa.Schema, list[int]]:
        with source.filesystem.open_input_file(source.path) as file:
            reader = pq.ParquetFile(file)
            metadata = reader.metadata
            rows = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
            return reader.schema_arrow, rows

    def read(self, source: SourceFile, unit: int, columns: list[str]) -> pa.Table:
        with source.filesystem.open_input_file(source.path) as file:
            return pq.ParquetFile(file).read_row_group(unit, columns=columns)


class ParquetDataset(DatasetBase):
    """Batches from Parquet files: OrcDataset's options; batches are dicts, NumPy by default."""

    file_format = ParquetFormat()

    def __init__(
        self,
        batch_size: int,
        worker_idx: int = 0,
        worker_num: int = 1,
        read_threads_num: int = 4,
        pack_threads_num: int | None = None,
        prefetch: int | None = 1,
        is_compressed: bool = False,
        drop_remainder: bool = False,
        worker_slice_batch_num: int | None = None,
        shuffle: bool = False,
        ragged_format: bool = True,
        transform_fn=None,
        save_interval: int | None = 100,
        dtype="float32",
        device: str = "cpu",
        prefetch_transform: int | None = None,
        *,
        seed: int = 0,
        shuffle_buffer_size: int = 65536,
        output: str = "numpy",
        filesystem=None,
        on_error: str = "raise",
    ) -> None:
        super().__init__(
            batch_size,
            worker_idx,
            worker_num,
            read_threads_num,
            pack_threads_num,
            prefetch,
            is_compressed,
            drop_remainder,
            worker_slice_batch_num,
            ragged_format,
            transform_fn,
            save_interval,
            dtype,
            device,
            prefetch_transform,
            shuffle=shuffle,
            seed=seed,
            shuffle_buffer_size=shuffle_buffer_size,
            output=output,
            filesystem=filesystem,
            on_error=on_error,
        )
