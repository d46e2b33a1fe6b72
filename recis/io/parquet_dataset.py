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
