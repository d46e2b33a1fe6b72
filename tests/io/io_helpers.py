"""Small ORC and Parquet datasets with several uneven stripes / row groups per file, and
helpers to compare batches."""

from __future__ import annotations

import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.orc as orc
import pyarrow.parquet as pq

from recis.core.ragged import Ragged
from recis.io import OrcDataset, ParquetDataset

DATASETS = {"orc": OrcDataset, "parquet": ParquetDataset}
KV_TYPE = pa.list_(pa.struct([("k", pa.int64()), ("v", pa.float64())]))


def make_table(rows: int, first_row: int, rng: np.random.Generator) -> pa.Table:
    """Rows numbered from ``first_row`` (column ``row``) with every supported column layout."""
    lengths = rng.integers(0, 4, rows)
    ids = [
        None if n == 0 and r % 7 == 0 else list(range(r, r + n))
        for r, n in _numbered(lengths, first_row)
    ]
    seq = [[[r] * (k % 3) for k in range(n)] for r, n in _numbered(lengths, first_row)]
    kv = [[{"k": r + k, "v": k / 2} for k in range(n)] for r, n in _numbered(lengths, first_row)]
    tags = [[f"t{r % 5}"] * n for r, n in _numbered(lengths, first_row)]
    dense = [[r, -r] if r % 3 else [] for r in range(first_row, first_row + rows)]
    return pa.table(
        {
            "row": pa.array(np.arange(first_row, first_row + rows)),
            "label": pa.array(rng.random(rows)),
            "ids": pa.array(ids, pa.list_(pa.int64())),
            "seq": pa.array(seq, pa.list_(pa.list_(pa.int64()))),
            "kv": pa.array(kv, KV_TYPE),
            "tags": pa.array(tags, pa.list_(pa.string())),
            "dense": pa.array(dense, pa.list_(pa.float32())),
        }
    )


def _numbered(lengths, first_row):
    return zip(range(first_row, first_row + len(lengths)), lengths, strict=True)


def write_orc(path, table: pa.Table) -> None:
    """An uncompressed ORC file with small stripes (stripe boundaries fall unevenly)."""
    writer = orc.ORCWriter(str(path), stripe_size=1, batch_size=64)
    for start in range(0, max(table.num_rows, 1), 90):
        writer.write(table.slice(start, 90))
    writer.close()


def write_parquet(path, table: pa.Table) -> None:
    pq.write_table(table, str(path), row_group_size=53)


WRITERS = {"orc": write_orc, "parquet": write_parquet}
SUFFIXES = {"orc": ".orc", "parquet": ".parquet"}


def write_files(directory, fmt: str, sizes=(230, 0, 410, 95), seed: int = 0) -> int:
    """Files of the given row counts (one empty) in ``directory``; returns the total rows."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    first = 0
    for index, rows in enumerate(sizes):
        table = make_table(rows, first, rng)
        WRITERS[fmt](directory / f"part-{index}{SUFFIXES[fmt]}", table)
        first += rows
    return first


def declare_all(dataset) -> None:
    dataset.varlen_feature("row")
    dataset.fixedlen_feature("label", [0.0])
    dataset.varlen_feature("ids")
    dataset.varlen_feature("seq")
    dataset.varlen_feature("kv")
    dataset.varlen_feature("tags", hash_type="murmur", hash_bucket=1000)
    dataset.fixedlen_feature("dense", [7.0, 7.0])


def make_dataset(fmt: str, directory, batch_size: int = 64, **options):
    dataset = DATASETS[fmt](batch_size, **({"output": "numpy"} | options))
    dataset.add_path(str(directory))
    declare_all(dataset)
    return dataset


def unwrap(batch):
    """The dict of columns of a batch (OrcDataset wraps it in a one-element list)."""
    return batch[0] if isinstance(batch, list) else batch


def column_parts(column) -> list[np.ndarray]:
    if isinstance(column, Ragged):
        parts = [column.values, *column.offsets]
        return parts if column.weights is None else [*parts, column.weights]
    return [np.asarray(column)]


def assert_batches_equal(actual: list, expected: list) -> None:
    assert len(actual) == len(expected)
    for number, (left, right) in enumerate(zip(actual, expected, strict=True)):
        left, right = unwrap(left), unwrap(right)
        assert left.keys() == right.keys(), number
        for name in left:
            for a, b in zip(column_parts(left[name]), column_parts(right[name]), strict=True):
                np.testing.assert_array_equal(a, b, err_msg=f"batch {number}, column {name}")


def rows_of(batches) -> np.ndarray:
    return np.concatenate([unwrap(b)["row"] for b in batches]) if batches else np.zeros(0)


def io_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("recis-io")]


def wait_for_no_io_threads(seconds: float = 5.0) -> list[threading.Thread]:
    deadline = time.monotonic() + seconds
    while io_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    return io_threads()
