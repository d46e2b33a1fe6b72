"""Reading fragments on a thread pool, delivered strictly in order.

``read_threads_num`` threads read the next fragments ahead of the consumer (at most that many
in flight); results come back in the epoch's fragment order whatever order the threads
finish in, so the row stream, and with it every resume position, is deterministic. An exception
in a thread reaches the consumer when it asks for that fragment. The pool belongs to the
dataset's iterator, which releases it when it ends, fails, is closed or is garbage collected.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa

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
    ) -> None:
        self._format = file_format
        self._files = files
        self._specs = specs
        self._float_dtype = float_dtype
        self._on_error = on_error
        self._skipped = skipped

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
        return Chunk(columns, table.num_rows, start, end, by_row=True)

    def _fail(self, task: ReadTask, error: Exception) -> None:
        path = self._files[task.fragment.file].path
        failure = DataError(path, f"{self._format.unit_name} {task.fragment.unit}: {error}")
        if self._on_error == "raise":
            raise failure from error
        logger.warning("skipping %s", failure)
        self._skipped.append((path, str(failure)))


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
