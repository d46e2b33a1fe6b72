"""Convert CSV files to ORC files readable by ``OrcDataset``.

Each input (a CSV file, or a directory searched recursively for ``*.csv``) is streamed block by
block, so memory stays bounded. Column types are inferred (or given with ``--column-types``);
``--list-columns`` are split on ``--list-delimiter`` into ``list<--list-type>`` columns (an empty
field is an empty list). One ORC file is written per input file, or one per ``--rows-per-file``
rows.

    python -m recis.tools.csv_to_orc data.csv more/ --output orc_dir --list-columns tags

>>> import os, tempfile
>>> directory = tempfile.mkdtemp()
>>> with open(f"{directory}/a.csv", "w") as f:
...     _ = f.write("label,tags\\n1,3|4\\n0,\\n")
>>> paths = convert([f"{directory}/a.csv"], f"{directory}/orc", list_columns=["tags"])
>>> import pyarrow.orc as orc
>>> orc.read_table(paths[0]).column("tags").to_pylist()
[[3, 4], []]
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as csv
import pyarrow.orc as orc


def convert(
    inputs: Sequence[str],
    output: str,
    *,
    header: bool = True,
    column_names: Sequence[str] | None = None,
    delimiter: str = ",",
    column_types: dict[str, str] | None = None,
    list_columns: Sequence[str] = (),
    list_delimiter: str = "|",
    list_type: str = "int64",
    block_size: int = 16 << 20,
    rows_per_file: int | None = None,
    stripe_size: int = 64 << 20,
    compression: str = "zstd",
) -> list[str]:
    """Convert the CSV ``inputs`` into ORC files in ``output``; return the written paths."""
    if rows_per_file is not None and rows_per_file < 1:
        raise ValueError(f"rows_per_file must be >= 1, got {rows_per_file}")
    read_options = _read_options(header, column_names, block_size)
    types = {name: pa.string() for name in list_columns}
    types |= {name: pa.type_for_alias(alias) for name, alias in (column_types or {}).items()}
    convert_options = csv.ConvertOptions(column_types=types)
    item_type = pa.type_for_alias(list_type)
    writer = _RollingWriter(output, rows_per_file, stripe_size, compression)
    try:
        for path in _csv_files(inputs):
            parse = csv.ParseOptions(delimiter=delimiter)
            for batch in csv.open_csv(path, read_options, parse, convert_options):
                table = pa.Table.from_batches([batch])
                writer.write(_split_lists(table, list_columns, list_delimiter, item_type, path))
            if rows_per_file is None:
                writer.finish_file()
    finally:
        writer.finish_file()
    return writer.paths


class _RollingWriter:
    """Writes ``part-NNNNN.orc`` files, starting a new one every ``rows_per_file`` rows."""

    def __init__(self, output: str, rows_per_file, stripe_size: int, compression: str) -> None:
        os.makedirs(output, exist_ok=True)
        self._output = output
        self._rows_per_file = rows_per_file
        self._options = {"stripe_size": stripe_size, "compression": compression}
        self._writer = None
        self._rows = 0
        self.paths: list[str] = []

    def write(self, table: pa.Table) -> None:
        while table.num_rows:
            if self._writer is None:
                self.paths.append(os.path.join(self._output, f"part-{len(self.paths):05d}.orc"))
                self._writer = orc.ORCWriter(self.paths[-1], **self._options)
            room = table.num_rows
            if self._rows_per_file is not None:
                room = min(room, self._rows_per_file - self._rows)
            self._writer.write(table.slice(0, room))
            self._rows += room
            table = table.slice(room)
            if self._rows == self._rows_per_file:
                self.finish_file()

    def finish_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer, self._rows = None, 0


def _read_options(header: bool, column_names, block_size: int) -> csv.ReadOptions:
    if column_names:
        return csv.ReadOptions(
            column_names=list(column_names), skip_rows=int(header), block_size=block_size
        )
    return csv.ReadOptions(autogenerate_column_names=not header, block_size=block_size)


def _csv_files(inputs: Sequence[str]) -> list[str]:
    files = []
    for path in inputs:
        if os.path.isdir(path):
            found = sorted(
                os.path.join(root, name)
                for root, _, names in os.walk(path)
                for name in names
                if name.endswith(".csv")
            )
            if not found:
                raise ValueError(f"{path}: directory holds no .csv files")
            files += found
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return files


def _split_lists(table: pa.Table, names, delimiter: str, item_type, path: str) -> pa.Table:
    for name in names:
        if name not in table.column_names:
            raise ValueError(f"{path}: list column {name!r} is not in the CSV header")
        column = table.column(name)
        parts = pc.split_pattern(column, delimiter)
        parts = pc.if_else(pc.equal(column, ""), pa.scalar([], parts.type), parts)
        try:
            parts = parts.cast(pa.list_(item_type))
        except pa.ArrowInvalid as error:
            raise ValueError(f"{path}: column {name!r}: {error}") from error
        table = table.set_column(table.column_names.index(name), name, parts)
    return table


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="CSV files or directories")
    parser.add_argument("--output", required=True, help="output directory")
    parser.add_argument("--no-header", action="store_true", help="the CSV has no header row")
    parser.add_argument("--column-names", help="comma-separated names (replace the header)")
    parser.add_argument("--delimiter", default=",")
    parser.add_argument("--column-types", help="comma-separated name:type, e.g. id:int64")
    parser.add_argument("--list-columns", default="", help="comma-separated list columns")
    parser.add_argument("--list-delimiter", default="|")
    parser.add_argument("--list-type", default="int64", help="type of list items")
    parser.add_argument("--block-size", type=int, default=16 << 20, help="CSV bytes per block")
    parser.add_argument("--rows-per-file", type=int, help="rows per ORC file")
    parser.add_argument("--stripe-size", type=int, default=64 << 20, help="bytes per stripe")
    parser.add_argument("--compression", default="zstd")
    args = parser.parse_args(argv)
    paths = convert(
        args.inputs,
        args.output,
        header=not args.no_header,
        column_names=args.column_names.split(",") if args.column_names else None,
        delimiter=args.delimiter,
        column_types=_pairs(args.column_types),
        list_columns=[name for name in args.list_columns.split(",") if name],
        list_delimiter=args.list_delimiter,
        list_type=args.list_type,
        block_size=args.block_size,
        rows_per_file=args.rows_per_file,
        stripe_size=args.stripe_size,
        compression=args.compression,
    )
    print(f"wrote {len(paths)} ORC files to {args.output}")


def _pairs(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    pairs = [item.split(":", 1) for item in text.split(",")]
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"--column-types: expected name:type pairs, got {text!r}")
    return dict(pairs)


if __name__ == "__main__":
    main()
