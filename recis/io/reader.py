"""Reading fragments on a thread pool, delivered strictly in order.

``read_threads_num`` threads read the next fragments ahead of the consumer (at most that many
in flight); results come back in the epoch's fragment order whatever order the threads
finish in, so the row stream, and with it every resume position, is deterministic. An exception
in a thread reaches the consumer when it asks for that fragment. The pool belongs to the
dataset's iterator, which releases it when it ends, fails, is closed or is garbage collected.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from recis.io.columns import ColumnSpec, convert_table
from recis.io.cursor import Cursor
from recis.io.errors import ColumnError, DataError
from recis.io.packer import Chunk
from recis.io.sources import FileFormat, Fragment, SourceFile

logger = logging.getLogger("recis.io")


@dataclass(frozen=True)
class ReadTask:
    """Read ``fragment`` (position ``position`` of epoch ``epoch``'s order) from ``first_row``."""

    epoch: int
    position: int
    fragment: Fragment
    first_row: int


class FragmentReader:
    """Reads fragments (:meth:`read`, on any thread) and converts them (:meth:`chunk`).

    Conversion runs on the pipeline's own thread: it is mostly cheap, and string hashing
    calls parallel kernels that are best launched from one thread. With ``on_error="skip"``, a
    fragment that fails to read or convert yields no rows and is recorded in ``skipped`` as
    ``(path, message)``; otherwise it raises :class:`DataError`.
    """

    def __init__(
        self,
        file_format: FileFormat,
        files: tuple[SourceFile, ...],
        specs: tuple[ColumnSpec, ...],
        float_dtype,
        on_error: str,
        skipped: list,
        defaults_filled: Counter,
    ) -> None:
        self._format = file_format
        self._files = files
        self._specs = specs
        self._float_dtype = float_dtype
        self._on_error = on_error
        self._skipped = skipped
        self._defaults_filled = defaults_filled

    def read(self, task: ReadTask) -> tuple[ReadTask, pa.Table | Exception]:
        """The fragment's declared columns from ``task.first_row`` on, or the read error."""
        fragment = task.fragment
        names = [spec.name for spec in self._specs]
        try:
            table = self._format.read(self._files[fragment.file], fragment.unit, names)
        except (pa.ArrowException, OSError) as error:
            return task, error
        if table.num_rows != fragment.rows:
            return task, OSError(f"holds {table.num_rows} rows, its metadata says {fragment.rows}")
        return task, table.slice(task.first_row)

    def chunk(self, result: tuple[ReadTask, pa.Table | Exception]) -> Chunk:
        """The converted fragment, positioned in the epoch's stream."""
        task, table = result
        start = Cursor(task.epoch, task.position, task.first_row)
        end = Cursor(task.epoch, task.position + 1)
        try:
            if isinstance(table, Exception):
                raise table
            columns = convert_table(self._specs, table, self._float_dtype)
        except (pa.ArrowException, OSError, ColumnError) as error:
            self._fail(task, error)
            return Chunk({}, 0, start, end, by_row=True)
        self._count_defaults(task, table)
        return Chunk(columns, table.num_rows, start, end, by_row=True)

    def _count_defaults(self, task: ReadTask, table: pa.Table) -> None:
        """Count the values of fixedlen columns that were null (or empty lists) and became the
        default; warn the first time a column has any."""
        for spec in self._specs:
            if not spec.is_fixedlen:
                continue
            count = defaults_filled(table.column(spec.name))
            if count and not self._defaults_filled[spec.name]:
                path = self._files[task.fragment.file].path
                logger.warning(
                    "column %r: %d null or empty values in %s replaced by the default %s "
                    "(counted in defaults_filled)",
                    spec.name, count, path, list(spec.default),
                )  # fmt: skip
            self._defaults_filled[spec.name] += count

    def _fail(self, task: ReadTask, error: Exception) -> None:
        path = self._files[task.fragment.file].path
        failure = DataError(path, f"{self._format.unit_name} {task.fragment.unit}: {error}")
        if self._on_error == "raise":
            raise failure from error
        logger.warning("skipping %s", failure)
        self._skipped.append((path, str(failure)))


def defaults_filled(column) -> int:
    """How many rows of a fixedlen column are null or empty lists (and get the default).

    >>> defaults_filled(pa.chunked_array([[1.0, None], [None]]))
    2
    >>> defaults_filled(pa.array([[1], [], None]))
    2
    """
    types = pa.types
    if not (types.is_list(column.type) or types.is_large_list(column.type)):
        return column.null_count
    lengths = pc.list_value_length(column).fill_null(0)
    return int(pc.sum(pc.equal(lengths, 0)).as_py() or 0)


def reader_pool(threads: int) -> ThreadPoolExecutor:
    """The pool for :func:`read_in_order`; its owner shuts it down (``release_pool``)."""
    return ThreadPoolExecutor(threads, thread_name_prefix="recis-io-read")


def release_pool(pool: ThreadPoolExecutor) -> None:
    """Cancel the reads not started; running reads finish and their threads end."""
    pool.shutdown(wait=False, cancel_futures=True)


def read_in_order(
    pool: ThreadPoolExecutor, read: Callable, tasks: Iterable[ReadTask], threads: int
) -> Iterator:
    """``read(task)`` for every task, in task order, with ``threads`` reads in flight."""
    pending = deque()
    for task in tasks:
        pending.append(pool.submit(read, task))
        if len(pending) > threads:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
