"""Data files, their fragments (ORC stripes, Parquet row groups) and the per-worker plan.

Paths are files or directories (walked recursively; names starting with ``.`` or ``_`` are
skipped, e.g. ``_SUCCESS``) on any pyarrow filesystem: a URI such as ``s3://bucket/dir`` picks its
filesystem, a plain path is local unless the dataset was given a ``filesystem``. Every file is
inspected once (schema and rows per fragment) and checked against the declared columns; the
fragments are then split over all workers, balanced by rows, so every row belongs to exactly one
worker.

>>> fragments = [Fragment(0, 0, 5), Fragment(0, 1, 3), Fragment(1, 0, 4)]
>>> [[f.rows for f in shard_fragments(fragments, worker, 2)] for worker in (0, 1)]
[[5], [3, 4]]
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa
import pyarrow.fs as pafs

from recis.io.columns import ColumnSpec, check_type, type_signature
from recis.io.errors import ColumnError, DataError


@dataclass(frozen=True)
class SourceFile:
    """One data file on a pyarrow filesystem."""

    filesystem: pafs.FileSystem
    path: str


@dataclass(frozen=True)
class Fragment:
    """Unit ``unit`` (stripe or row group) of file ``file`` of the plan, holding ``rows`` rows."""

    file: int
    unit: int
    rows: int


class FileFormat(Protocol):
    """How to list and read the fragments of one file format."""

    suffixes: tuple[str, ...]
    unit_name: str

    def inspect(self, source: SourceFile) -> tuple[pa.Schema, list[int]]:
        """The file's schema and the number of rows of each of its fragments."""

    def read(self, source: SourceFile, unit: int, columns: list[str]) -> pa.Table:
        """Fragment ``unit`` of the file, with the given columns."""


@dataclass(frozen=True)
class Plan:
    """The files, this worker's fragments in file order, a digest of both, the skipped files."""

    files: tuple[SourceFile, ...]
    fragments: tuple[Fragment, ...]
    digest: str
    skipped: tuple[tuple[str, str], ...]


def discover(path: str, suffixes: tuple[str, ...], filesystem=None) -> list[SourceFile]:
    """The files at ``path``: the file itself, or the matching files under a directory, sorted.

    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` for a directory without
    matching files, both naming the path.
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path: expected a string, got {type(path).__name__}")
    filesystem, resolved = _resolve(os.fspath(path), filesystem)
    info = filesystem.get_file_info(resolved)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{path}: no such file or directory")
    if info.type == pafs.FileType.File:
        return [SourceFile(filesystem, resolved)]
    selector = pafs.FileSelector(resolved, recursive=True)
    found = sorted(
        entry.path
        for entry in filesystem.get_file_info(selector)
        if entry.type == pafs.FileType.File
        and entry.path.endswith(suffixes)
        and not _hidden(os.path.relpath(entry.path, resolved))
    )
    if not found:
        raise ValueError(f"{path}: directory holds no {' or '.join(suffixes)} files")
    return [SourceFile(filesystem, name) for name in found]


def build_plan(
    files: Sequence[SourceFile],
    file_format: FileFormat,
    specs: Sequence[ColumnSpec],
    shard: tuple[int, int],
    threads: int,
    on_error: str,
) -> Plan:
    """Inspect and check every file, then keep the fragments of worker ``shard = (index, count)``.

    With ``on_error="raise"`` the first bad file raises :class:`DataError`; with ``"skip"`` bad
    files are left out and listed in ``Plan.skipped``.
    """
    if not files:
        raise ValueError("no data files: call add_path() first")
    if not specs:
        raise ValueError("no columns: declare them with varlen_feature() / fixedlen_feature()")
    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="recis-io-inspect") as pool:
        inspected = list(pool.map(_inspector(file_format), files))
    kept, skipped, fragments, expected = [], [], [], {}
    for source, result in zip(files, inspected, strict=True):
        error = result if isinstance(result, DataError) else _schema_error(source, result, specs)
        error = error or _signature_error(source, result[0], specs, expected)
        if error is not None:
            if on_error == "raise":
                raise error
            skipped.append((source.path, str(error)))
            continue
        fragments += [
            Fragment(len(kept), unit, rows) for unit, rows in enumerate(result[1]) if rows
        ]
        kept.append(source)
    mine = shard_fragments(fragments, *shard)
    return Plan(tuple(kept), mine, _digest(kept, mine, shard), tuple(skipped))


def shard_fragments(fragments: Sequence[Fragment], index: int, count: int) -> tuple[Fragment, ...]:
    """The fragments of worker ``index`` of ``count``: largest first to the least-loaded worker.

    Every fragment goes to exactly one worker; the loads differ by at most one fragment's rows.
    The result keeps file order.
    """
    loads = [(0, worker) for worker in range(count)]
    owner = [0] * len(fragments)
    for i in sorted(range(len(fragments)), key=lambda i: (-fragments[i].rows, i)):
        load, worker = heapq.heappop(loads)
        owner[i] = worker
        heapq.heappush(loads, (load + fragments[i].rows, worker))
    return tuple(f for f, worker in zip(fragments, owner, strict=True) if worker == index)


def _resolve(path: str, filesystem) -> tuple[pafs.FileSystem, str]:
    if filesystem is not None:
        return filesystem, path
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), os.path.abspath(path)


def _hidden(relative: str) -> bool:
    return any(part.startswith((".", "_")) for part in relative.split(os.sep) if part != ".")


def _inspector(file_format: FileFormat) -> Callable:
    def inspect(source: SourceFile):
        try:
            return file_format.inspect(source)
        except (pa.ArrowException, OSError, ValueError) as error:
            return DataError(source.path, f"cannot read {file_format.unit_name}s: {error}")

    return inspect


def _schema_error(source: SourceFile, inspected, specs) -> DataError | None:
    schema = inspected[0]
    for spec in specs:
        if spec.name not in schema.names:
            return DataError(source.path, f"column {spec.name!r} is missing")
        try:
            check_type(spec, schema.field(spec.name).type)
        except ColumnError as error:
            return DataError(source.path, str(error))
    return None


def _signature_error(source: SourceFile, schema, specs, expected: dict) -> DataError | None:
    """Columns must have one type across files; the first good file sets it (in ``expected``)."""
    signatures = {spec.name: type_signature(schema.field(spec.name).type) for spec in specs}
    for name, (signature, first) in expected.items():
        if signatures[name] != signature:
            detail = f"column {name!r} is {signatures[name]}, but {signature} in {first}"
            return DataError(source.path, detail)
    if not expected:
        expected.update({name: (sig, source.path) for name, sig in signatures.items()})
    return None


def _digest(files: Sequence[SourceFile], fragments: Sequence[Fragment], shard) -> str:
    names = [os.path.basename(source.path) for source in files]
    described = [[names[f.file], f.unit, f.rows] for f in fragments]
    text = json.dumps({"shard": list(shard), "fragments": described})
    return hashlib.sha256(text.encode()).hexdigest()[:16]
