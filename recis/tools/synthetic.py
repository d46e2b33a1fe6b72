"""A Criteo-shaped synthetic ORC dataset, deterministic in its seed.

Columns: ``label`` (float32, 0 or 1), ``I1``..``I13`` (float32 scalars, log-normal counts) and
``C1``..``C26`` (``list<int64>``: 0 to 3 ids per row, mostly 1, drawn with a heavy-tailed
frequency from per-column vocabularies of 10 to 10 million ids, spread over the whole int64
range). The label depends on ``I1``, ``I2`` and ``C1``, so a model can learn it.

    python -m recis.tools.synthetic --rows N --files K --out DIR [--seed S]

>>> import tempfile
>>> paths = write_dataset(tempfile.mkdtemp(), rows=10, files=2)
>>> [path.rsplit("/", 1)[-1] for path in paths]
['part-00000.orc', 'part-00001.orc']
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.orc as orc

DENSE = tuple(f"I{i}" for i in range(1, 14))
CATEGORICAL = tuple(f"C{i}" for i in range(1, 27))
VOCABULARY_SIZES = tuple(int(10 ** (1 + 6 * i / 25)) for i in range(26))
_LENGTHS = np.array([0, 1, 1, 1, 1, 1, 1, 1, 2, 3])
_SPREAD = np.uint64(0x9E3779B97F4A7C15)  # odd: rank -> id is a bijection of 64-bit values
_BLOCK_ROWS = 65536


def declare_columns(dataset) -> None:
    """Declare this dataset's columns on an ``OrcDataset`` or ``ParquetDataset``: ``label`` and
    the dense features as one float each, the categorical ones as id lists."""
    for name in ("label", *DENSE):
        dataset.fixedlen_feature(name, [0.0])
    for name in CATEGORICAL:
        dataset.varlen_feature(name)


def make_table(rows: int, rng: np.random.Generator) -> pa.Table:
    """``rows`` random rows with the dataset's columns."""
    dense = {name: rng.lognormal(1.0, 1.2, rows).astype(np.float32) for name in DENSE}
    ranks = {}
    columns = {}
    for name, vocabulary in zip(CATEGORICAL, VOCABULARY_SIZES, strict=True):
        ranks[name], columns[name] = _categorical(rows, vocabulary, rng)
    score = np.log1p(dense["I1"]) - 0.7 * np.log1p(dense["I2"]) + (ranks["C1"] % 3 == 0) - 0.5
    label = (rng.random(rows) < 1 / (1 + np.exp(-score))).astype(np.float32)
    return pa.table({"label": label, **dense, **columns})


def write_dataset(
    out: str,
    rows: int,
    files: int,
    seed: int = 0,
    stripe_size: int = 64 << 20,
    compression: str = "zstd",
) -> list[str]:
    """Write ``rows`` rows split over ``files`` ORC files in ``out``; return their paths."""
    if rows < 0 or files < 1:
        raise ValueError(f"rows must be >= 0 and files >= 1, got {rows} and {files}")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index, file_rows in enumerate(np.diff(np.linspace(0, rows, files + 1).astype(np.int64))):
        path = os.path.join(out, f"part-{index:05d}.orc")
        _write_file(path, int(file_rows), rng, stripe_size, compression)
        paths.append(path)
    return paths


def _write_file(path: str, rows: int, rng, stripe_size: int, compression: str) -> None:
    writer = orc.ORCWriter(path, stripe_size=stripe_size, compression=compression)
    try:
        for start in range(0, rows, _BLOCK_ROWS):
            writer.write(make_table(min(_BLOCK_ROWS, rows - start), rng))
        if rows == 0:
            writer.write(make_table(0, rng))
    finally:
        writer.close()


def _categorical(rows: int, vocabulary: int, rng) -> tuple[np.ndarray, pa.Array]:
    """The first id's rank per row (0 for an empty row) and the list<int64> column."""
    lengths = rng.choice(_LENGTHS, rows)
    offsets = np.zeros(rows + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    ranks = np.minimum(rng.pareto(1.1, offsets[-1]) * 3, vocabulary - 1).astype(np.uint64)
    ids = (ranks * _SPREAD).view(np.int64)
    first = np.zeros(rows, np.int64)
    filled = lengths > 0
    first[filled] = ranks[offsets[:-1][filled]]
    return first, pa.ListArray.from_arrays(offsets, ids)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, required=True, help="rows in total")
    parser.add_argument("--files", type=int, default=1, help="number of ORC files")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stripe-size", type=int, default=64 << 20, help="bytes per stripe")
    parser.add_argument("--compression", default="zstd")
    args = parser.parse_args(argv)
    paths = write_dataset(
        args.out, args.rows, args.files, args.seed, args.stripe_size, args.compression
    )
    print(f"wrote {args.rows} rows to {len(paths)} files in {args.out}")


if __name__ == "__main__":
    main()
