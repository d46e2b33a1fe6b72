"""``DatasetBase``: RecIS's dataset API over a threaded, exactly resumable reading pipeline.

Pipeline, per epoch and worker: the worker's fragments (stripes or row groups, balanced by rows
over ``worker_num`` × DataLoader sub-workers) in file order or, with ``shuffle``, in a seeded
order that changes every epoch → read on ``read_threads_num`` threads, delivered in order →
converted (lists to ragged, strings hashed) → with ``shuffle``, rows permuted within windows of
``shuffle_buffer_size`` rows → packed into batches of exactly ``batch_size`` rows across
fragment and file boundaries (straight into pinned memory with ``device="pin"`` or ``"cuda"``) →
converted to the caller's backend (``output``) → for torch with ``device="cuda"``, copied to
the GPU on a side stream; all of this on a prefetch thread, ``prefetch`` batches ahead (or on
the next thread down with ``prefetch=0``) → received (for the GPU: on a stream that waits for
the copy, see :mod:`recis.io.output`), then the ``map`` / ``filter`` functions and
``transform_fn``: on a transform thread, ``prefetch_transform`` batches ahead (the batch handed
to the consumer's current stream through a CUDA event for torch GPU batches), or on the
consumer's thread with ``prefetch_transform=0``. Memory holds about ``read_threads_num + 2``
fragments, one shuffle window and ``prefetch + prefetch_transform + 2`` batches, whatever the
size of the data.

One ``iter()`` is one epoch; it starts where the last one stopped (the next epoch after a
complete one), and starting one closes the dataset's previous iterator. :meth:`state_dict` is
the position after the last batch the consumer received, whatever the threads have read ahead,
so a dataset restored from it yields exactly the batches that would have followed. The state is
a few integers (see :mod:`recis.io.cursor`) plus a digest of the worker's fragments, checked
when iteration resumes. Under a DataLoader with sub-workers, each sub-worker's copy of the
dataset keeps its own state (what a stateful loader collects from its workers).
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import closing
from functools import partial
from numbers import Integral
from typing import ClassVar

import ml_dtypes
import numpy as np

from recis.io import frameworks
from recis.io.columns import ColumnSpec
from recis.io.cursor import Cursor
from recis.io.output import Output
from recis.io.packer import Batch, EpochEnd, pack
from recis.io.prefetch import Prefetcher
from recis.io.reader import FragmentReader, ReadTask, read_in_order, reader_pool, release_pool
from recis.io.shuffle import epoch_order, window_shuffle
from recis.io.sources import FileFormat, Plan, build_plan, discover

STATE_VERSION = 1
ON_ERROR = ("raise", "skip")


class DatasetBase:
    """Batches of declared columns from data files (abstract: use OrcDataset or ParquetDataset).

    Once torch is imported (``output="torch"`` imports it), the datasets are torch
    ``IterableDataset`` instances, for ``DataLoader(dataset, batch_size=None, ...)``; give it
    ``multiprocessing_context="spawn"`` (or ``"forkserver"``) for sub-workers, since the OpenMP
    runtime of the engine's parallel kernels cannot be forked once it has run.
    Arguments follow RecIS. ``pack_threads_num`` and ``worker_slice_batch_num`` are accepted for
    compatibility (packing runs on the prefetch thread; slices apply to ODPS tables only).
    ``prefetch_transform=N`` (N >= 1) receives batches and runs the ``map``/``filter`` functions
    and ``transform_fn`` (for example a FeatureEngine) on a transform thread of their own, in
    batch order, up to N finished batches ahead of the consumer (plus one in progress; a batch a
    filter drops takes a slot too), so that the next batches' feature processing overlaps the
    consumer's training step; None or 0 runs them on the consumer's thread. An exception they
    raise reaches the consumer after the batches before it, and ends the iterator. For torch
    batches with ``device="cuda"``, the transform thread queues its GPU work on a CUDA stream of
    its own; the consumer's current stream waits for that work through a CUDA event when it
    receives the batch (the host never waits), and the GPU tensors of the result (in dicts,
    lists, tuples and RaggedTensors) are marked as used on the consumer's stream.
    ``save_interval`` only switches :meth:`dump_io_state` off when 0 or None: the state is
    always exact. ``dtype`` (a NumPy, torch or JAX floating dtype, or its name) is the dtype of
    floating columns. ``device``: ``"cpu"``; ``"pin"`` (torch: batches in pinned memory, for
    asynchronous copies); ``"cuda"`` (batches on the GPU that is current when iteration starts,
    copied while the previous batch trains; device placement is for the iterating process, not
    for DataLoader sub-workers). Keyword-only additions: ``shuffle`` with ``seed`` and
    ``shuffle_buffer_size`` (rows; 0 shuffles only the fragment order), ``output`` (``"numpy"``,
    ``"torch"``, ``"jax"``), ``filesystem`` (a ``pyarrow.fs.FileSystem`` for plain paths),
    ``on_error`` (``"raise"``, or ``"skip"`` to leave out bad files, listed in
    :attr:`skipped_files`).
    """

    file_format: ClassVar[FileFormat | None] = None
    wraps_in_list: ClassVar[bool] = False
    default_output: ClassVar[str] = "numpy"  # when ``output`` is not given

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
        output: str | None = None,
        filesystem=None,
        on_error: str = "raise",
    ) -> None:
        if type(self).file_format is None:
            raise TypeError("DatasetBase is abstract: use OrcDataset or ParquetDataset")
        output = output if output is not None else self.default_output
        _check_counts(
            batch_size, worker_idx, worker_num, read_threads_num, prefetch, prefetch_transform
        )
        _check_options(is_compressed, seed, shuffle_buffer_size, on_error)
        self._batch_size = int(batch_size)
        self._worker = (int(worker_idx), int(worker_num))
        self._threads = int(read_threads_num)
        self._prefetch = int(prefetch or 0)
        self._prefetch_transform = int(prefetch_transform or 0)
        self._drop_remainder = bool(drop_remainder)
        self._save_interval = save_interval
        self._float_dtype = float_dtype(dtype)
        self._output = Output(output, device, ragged_format)
        for backend in frameworks.loaded_backends():
            backend.adopt_dataset(type(self))
        self._window_rows = int(shuffle_buffer_size) if shuffle else 0
        self._shuffle = bool(shuffle)
        self._seed = int(seed)
        self._filesystem = filesystem
        self._on_error = on_error
        self._transform_fns = _as_list(transform_fn)
        self._functions: list[tuple[str, Callable]] = []
        self._specs: dict[str, ColumnSpec] = {}
        self._files = []
        self._plans: dict[tuple[int, int], Plan] = {}
        self._skipped: list[tuple[str, str]] = []
        self._defaults_filled: Counter[str] = Counter()
        self._cursor = Cursor()
        self._digest: str | None = None
        self._live = None

    def add_path(self, path: str) -> None:
        """Add a file (any name), or the files with the format's suffix under a directory.

        Directories are walked recursively, in sorted order, skipping names that start with
        ``.`` or ``_``. A missing path or a directory without data files raises at once.
        """
        self._files += discover(path, self.file_format.suffixes, self._filesystem)
        self._plans.clear()

    def add_paths(self, paths) -> None:
        """Add several paths (see :meth:`add_path`)."""
        for path in paths:
            self.add_path(path)

    def varlen_feature(self, name: str, hash_type=None, hash_bucket=0, trans_int8=False) -> None:
        """Read column ``name`` as is: scalars, lists (ragged), strings hashed or as int8 bytes."""
        self._declare(ColumnSpec.varlen(name, hash_type, hash_bucket, trans_int8))

    def fixedlen_feature(self, name: str, default_value) -> None:
        """Read column ``name`` as a dense ``[batch, dim]`` array; empty rows get the default."""
        self._declare(ColumnSpec.fixedlen(name, default_value))

    def map(self, map_func: Callable) -> None:
        """Apply ``map_func(batch) -> batch`` to every batch (in order with the filters)."""
        self._functions.append(("map", _callable(map_func, "map_func")))

    def filter(self, filter_func: Callable) -> None:
        """Drop every batch for which ``filter_func(batch)`` is true (as in RecIS)."""
        self._functions.append(("filter", _callable(filter_func, "filter_func")))

    @property
    def epoch(self) -> int:
        """The epoch the next batch belongs to."""
        return self._cursor.epoch

    @property
    def defaults_filled(self) -> dict[str, int]:
        """Per ``fixedlen_feature`` column, the null or empty values read so far that were
        replaced by its default (each column is also warned about the first time)."""
        return dict(self._defaults_filled)

    @property
    def skipped_files(self) -> list[tuple[str, str]]:
        """``(path, reason)`` of every file or fragment left out under ``on_error="skip"``."""
        return list(self._skipped)

    def state_dict(self) -> dict:
        """The position after the last batch delivered: a small dict of integers."""
        shuffle = [self._seed, self._window_rows] if self._shuffle else None
        state = {"version": STATE_VERSION, **self._cursor.to_dict()}
        return state | {"shuffle": shuffle, "plan": self._digest}

    def load_state_dict(self, state: Mapping) -> None:
        """Continue from ``state`` (from :meth:`state_dict`); closes a running iterator."""
        if not isinstance(state, Mapping) or state.get("version") != STATE_VERSION:
            raise ValueError(f"state: expected a dataset state of version {STATE_VERSION}")
        shuffle = [self._seed, self._window_rows] if self._shuffle else None
        if state.get("shuffle") != shuffle:
            raise ValueError(f"state: saved with shuffle {state.get('shuffle')}, now {shuffle}")
        cursor = Cursor.from_dict(state)
        self.close()
        self._cursor, self._digest = cursor, state.get("plan")

    def dump_io_state(self) -> dict | None:
        """RecIS's name for :meth:`state_dict`; None when ``save_interval`` is 0 or None."""
        return self.state_dict() if self._save_interval else None

    def load_io_state(self, io_state: Mapping | None) -> None:
        """RecIS's name for :meth:`load_state_dict`; an empty state is ignored."""
        if io_state:
            self.load_state_dict(io_state)

    def reset(self) -> None:
        """Make the next iteration start a new pass from the beginning of the data (RecIS's
        ``reset``), also when the current pass stopped part way; closes a running iterator."""
        self.close()
        if self._cursor != Cursor(epoch=self._cursor.epoch):
            self._cursor = Cursor(epoch=self._cursor.epoch + 1)

    def close(self) -> None:
        """Stop the running iterator, if any, and release its threads."""
        live = self._live() if self._live is not None else None
        if live is not None:
            live.close()
        self._live = None

    def __iter__(self):
        self.close()
        shard = self._shard()
        plan = self._plan(shard)
        at_epoch_start = self._cursor == Cursor(epoch=self._cursor.epoch)
        if self._digest not in (None, plan.digest) and not at_epoch_start:
            raise ValueError(
                "state: it was saved for other files or another worker layout "
                f"(plan {self._digest}, now {plan.digest})"
            )
        if self._cursor.fragment > len(plan.fragments):
            raise ValueError(f"state: fragment {self._cursor.fragment} is beyond this plan")
        self._digest = plan.digest
        transfer = self._output.transfer()
        allocate = self._output.allocator()
        pool = reader_pool(self._threads)
        items = self._deliveries(self._batches(plan, shard, pool, allocate), transfer)
        source, receive, stages = self._consumer_side(items, transfer)
        iterator = _BatchIterator(self, source, receive, stages, pool)
        self._live = weakref.ref(iterator)
        return iterator

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_live": None}

    def _declare(self, spec: ColumnSpec) -> None:
        known = self._specs.get(spec.name)
        if known is not None and known != spec:
            raise ValueError(f"{spec.name}: already declared differently ({known})")
        self._specs[spec.name] = spec
        self._plans.clear()

    def _shard(self) -> tuple[int, int]:
        """(global index, count) of this reader over workers × DataLoader sub-workers."""
        sub_id, sub_num = 0, 1
        for backend in frameworks.loaded_backends():
            sub_id, sub_num = backend.worker_shard() or (sub_id, sub_num)
        index, count = self._worker
        return index * sub_num + sub_id, count * sub_num

    def _plan(self, shard: tuple[int, int]) -> Plan:
        if shard not in self._plans:
            specs = tuple(self._specs.values())
            plan = build_plan(
                self._files, self.file_format, specs, shard, self._threads, self._on_error
            )
            self._skipped += plan.skipped
            self._plans[shard] = plan
        return self._plans[shard]

    def _batches(self, plan: Plan, shard: tuple[int, int], pool, allocate):
        cursor = self._cursor
        count = len(plan.fragments)
        order = np.arange(count)
        if self._shuffle:
            order = epoch_order(count, self._seed, cursor.epoch, shard)
        tasks = (
            ReadTask(cursor.epoch, position, plan.fragments[order[position]], first_row)
            for position, first_row in _positions(cursor, count)
        )
        reader = FragmentReader(
            self.file_format,
            plan.files,
            tuple(self._specs.values()),
            self._float_dtype,
            self._on_error,
            self._skipped,
            self._defaults_filled,
        )
        chunks = map(reader.chunk, read_in_order(pool, reader.read, tasks, self._threads))
        if self._window_rows:
            chunks = window_shuffle(chunks, self._window_rows, cursor, self._seed, shard)
        next_epoch = Cursor(epoch=cursor.epoch + 1)
        return pack(chunks, self._batch_size, self._drop_remainder, next_epoch, allocate)

    def _deliveries(self, items, transfer):
        """Backend conversion and the sending of batches on the producer side; EpochEnd passes
        through."""
        for item in items:
            if isinstance(item, Batch):
                columns = self._output.convert(item.columns, item.num_rows)
                yield transfer.send(columns), item.cursor
            else:
                yield item

    def _consumer_side(self, items, transfer) -> tuple:
        """(what the consumer iterates, how it receives one batch, the stages to close)."""
        read_ahead = Prefetcher(items, self._prefetch) if self._prefetch else items
        if not self._prefetch_transform:
            return read_ahead, partial(self._finish, transfer=transfer), [read_ahead]
        handoff = self._output.handoff()
        finished = self._transformed(read_ahead, transfer, handoff)
        transformed = Prefetcher(finished, self._prefetch_transform, "recis-io-transform")
        # a bare generator is the transform thread's to close
        owned = [read_ahead] if self._prefetch else []
        return transformed, handoff.receive, [transformed, *owned]

    def _transformed(self, deliveries, transfer, handoff):
        """The transform thread's items: each batch finished (None: dropped) and sent by
        ``handoff``, with its cursor; EpochEnd passes through. Closes ``deliveries`` at the end."""
        with closing(deliveries):
            for item in deliveries:
                if isinstance(item, EpochEnd):
                    yield item
                    continue
                sent, cursor = item
                yield handoff.send(partial(self._finish, sent, transfer)), cursor

    def _finish(self, sent, transfer):
        """The batch received (on the GPU with ``device="cuda"``), RecIS's list structure, user
        functions (None: dropped); on the consumer's thread, or on the transform thread."""
        batch = transfer.receive(sent)
        if self.wraps_in_list:
            batch = [batch]
        for kind, function in self._functions:
            if kind == "filter":
                if function(batch):
                    return None
            else:
                batch = function(batch)
        for function in self._transform_fns:
            batch = function(batch)
        return batch


class _BatchIterator:
    """One epoch of batches; records the consumer's position in the dataset as it goes.

    ``receive(sent)`` gives the batch (None: dropped) of an item of ``source``; ``stages`` (the
    threaded stages and the consumer's own generator) and ``pool`` are released at the end.
    """

    def __init__(self, dataset: DatasetBase, source, receive, stages, pool) -> None:
        self._dataset = dataset
        self._source = source
        self._receive = receive
        self._done = False
        self._finalizer = weakref.finalize(self, _release, stages, pool)

    def __iter__(self) -> _BatchIterator:
        return self

    def __next__(self):
        while not self._done:
            try:
                item = next(self._source)
            except BaseException:
                self.close()
                raise
            if isinstance(item, EpochEnd):
                self._dataset._cursor = item.cursor
                self.close()
                break
            sent, cursor = item
            batch = self._receive(sent)
            self._dataset._cursor = cursor
            if batch is not None:
                return batch
        raise StopIteration

    def close(self) -> None:
        """Stop reading ahead and release the threads."""
        self._done = True
        self._finalizer()


def _release(stages, pool) -> None:
    for stage in stages:
        stage.close()
    release_pool(pool)


def float_dtype(dtype) -> np.dtype:
    """The NumPy dtype for a floating ``dtype`` given as NumPy, torch or JAX dtype or name.

    >>> float_dtype("float16"), float_dtype(np.float32)
    (dtype('float16'), dtype('float32'))
    """
    if isinstance(dtype, str) and dtype == "bfloat16":
        return np.dtype(ml_dtypes.bfloat16)
    try:
        result = np.dtype(frameworks.numpy_dtype(dtype))
    except TypeError:
        result = None
    if result is None or (result.kind != "f" and result != np.dtype(ml_dtypes.bfloat16)):
        raise ValueError(f"dtype: expected a floating dtype, got {dtype!r}")
    return result


def _positions(cursor: Cursor, count: int):
    """(position, first row) of every fragment still to read, from the cursor on."""
    for position in range(cursor.fragment, count):
        yield position, cursor.row if position == cursor.fragment else 0


def _check_counts(
    batch_size, worker_idx, worker_num, read_threads_num, prefetch, prefetch_transform
) -> None:
    for name, value, low in (
        ("batch_size", batch_size, 1),
        ("worker_num", worker_num, 1),
        ("worker_idx", worker_idx, 0),
        ("read_threads_num", read_threads_num, 1),
        ("prefetch", prefetch or 0, 0),
        ("prefetch_transform", prefetch_transform or 0, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    if worker_idx >= worker_num:
        raise ValueError(f"worker_idx: must be < worker_num ({worker_num}), got {worker_idx}")


def _check_options(is_compressed, seed, shuffle_buffer_size, on_error) -> None:
    if is_compressed:
        raise ValueError("is_compressed: compressed samples (an ODPS format) are not supported")
    for name, value in (("seed", seed), ("shuffle_buffer_size", shuffle_buffer_size)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
            raise ValueError(f"{name}: expected an integer >= 0, got {value!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error: expected one of {ON_ERROR}, got {on_error!r}")


def _as_list(transform_fn) -> list[Callable]:
    functions = [] if transform_fn is None else transform_fn
    functions = list(functions) if isinstance(functions, list | tuple) else [functions]
    for function in functions:
        _callable(function, "transform_fn")
    return functions


def _callable(function, name: str) -> Callable:
    if not callable(function):
        raise TypeError(f"{name}: expected a callable, got {type(function).__name__}")
    return function
