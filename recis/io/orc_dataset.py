"""``OrcDataset``: RecIS's ORC reader, on pyarrow, read by stripe.

>>> import tempfile, pyarrow as pa, pyarrow.orc as orc
>>> directory = tempfile.mkdtemp()
>>> table = pa.table({"label": [0.0, 1.0, 1.0], "ids": [[1, 2], [], [3]]})
>>> orc.write_table(table, f"{directory}/part-0.orc")
>>> ds = OrcDataset(2, read_threads_num=1, transform_fn=lambda tables: tables[0])
>>> ds.add_path(directory)
>>> ds.fixedlen_feature("label", [0.0])
>>> ds.varlen_feature("ids")
>>> [batch["ids"].offsets()[0].tolist() for batch in ds]
[[0, 2, 2], [0, 1]]
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.orc as orc

from recis.io.dataset_base import DatasetBase
from recis.io.orc_tail import stripe_rows
from recis.io.sources import SourceFile


class OrcFormat:
    """ORC files, one fragment per stripe."""

    suffixes = (".orc",)
    unit_name = "stripe"

    def inspect(self, source: SourceFile) -> tuple[pa.Schema, list[int]]:
        with source.filesystem.open_input_file(source.path) as file:
            reader = orc.ORCFile(file)
            rows = stripe_rows(reader.reader.serialized_file_tail())
            if len(rows) != reader.nstripes or sum(rows) != reader.nrows:
                raise ValueError("stripe row counts disagree with the file's metadata")
            return reader.schema, rows

    def read(self, source: SourceFile, unit: int, columns: list[str]) -> pa.Table:
        with source.filesystem.open_input_file(source.path) as file:
            return pa.Table.from_batches([orc.ORCFile(file).read_stripe(unit, columns=columns)])


class OrcDataset(DatasetBase):
    """Batches from ORC files (see :class:`~recis.io.dataset_base.DatasetBase`).

    As in RecIS, the arguments come in RecIS's order, every batch is a list holding one dict of
    columns (so scripts pass ``transform_fn=lambda tables: tables[0]``), and the output is torch
    (tensors and :class:`RaggedTensor`) unless ``output`` says otherwise.
    Unlike RecIS, paths may be files or URIs, data is split by stripes balanced by rows,
    shuffling takes a ``seed`` and reaches rows, ``filter`` works, and resuming is exact.
    """

    file_format = OrcFormat()
    wraps_in_list = True
    default_output = "torch"
