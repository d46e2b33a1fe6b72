"""``DiskRows``: the block operations of a :class:`~recis.core.row_store.RowStore` whose blocks are
memory-mapped files.

Each block of each field is one file of the table's directory, allocated whole when the block is
added (``posix_fallocate``: a full disk fails there, with an error naming the table, rather than
later in a write) and mapped into memory; copies run through the CPU kernels of
:class:`~recis.core.row_store.HostRows`, the operating system paging the files in and out. The
directory is scratch space: it is removed when the store goes.

>>> import numpy as np
>>> from recis.core.row_store import RowStore
>>> store = RowStore(dim=2, block_rows=4, name="t", ops=DiskRows("t"))
>>> store.ensure_rows(5)  # two blocks: two files
>>> store.scatter(np.array([4]), np.array([[1.5, 2.5]], np.float32))
>>> store.gather(np.array([4])).tolist(), store._ops.file_bytes
([[1.5, 2.5]], 64)
"""

from __future__ import annotations

import mmap
import os
import re
import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np

from recis.core.errors import TableFullError
from recis.core.row_store import Field, HostRows


class DiskRows(HostRows):
    """Blocks as mapped files in a new directory under ``parent`` (default: the system's
    temporary directory), at most ``max_bytes`` of them (None: no limit)."""

    def __init__(self, table: str, parent: str | None = None, max_bytes: int | None = None):
        self.table = table
        self.max_bytes = max_bytes
        prefix = "recis-" + re.sub(r"[^A-Za-z0-9_.+-]", "_", table)[:64] + "-"
        self.directory = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        self.file_bytes = 0  # bytes allocated to the block files
        self._files = 0
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.directory, True)

    def append(self, blocks, field: Field, block_rows: int, fill: bool = True) -> None:
        """Add a block of ``field`` as a new file; unwritten file space reads as zeros, so only
        a non-zero ``fill`` is written."""
        nbytes = block_rows * field.width * field.dtype.itemsize
        if self.max_bytes is not None and self.file_bytes + nbytes > self.max_bytes:
            raise TableFullError(
                f"table {self.table!r}: its disk tier is full ({self.file_bytes} bytes of "
                f"disk_bytes={self.max_bytes}, a block needs {nbytes} more); raise disk_bytes"
            )
        block = self._mapped_file(nbytes).view(field.storage_dtype).reshape(block_rows, -1)
        if fill and field.fill_bits != 0:
            block[...] = field.fill_bits
        blocks.append(block)
        self.file_bytes += nbytes

    def _mapped_file(self, nbytes: int) -> np.ndarray:
        path = self.directory / f"{self._files:06d}.block"
        with open(path, "w+b") as file:
            try:
                os.posix_fallocate(file.fileno(), 0, nbytes)
            except OSError as error:
                path.unlink()
                raise OSError(
                    f"table {self.table!r}: cannot allocate {nbytes} bytes for its disk tier in "
                    f"{self.directory}: {error.strerror}"
                ) from None
            mapped = mmap.mmap(file.fileno(), nbytes)
        self._files += 1
        return np.frombuffer(mapped, np.uint8)

    def disk_usage(self) -> int:
        """Bytes the files take on disk, as the file system counts them."""
        return sum(p.stat().st_blocks * 512 for p in self.directory.iterdir())

    def remove(self) -> None:
        """Delete the directory and its files (the mapped blocks must no longer be used)."""
        self._cleanup()
