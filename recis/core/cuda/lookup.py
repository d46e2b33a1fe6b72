"""A training lookup of a GPU table in three kernels and one prefix sum (``cuda/lookup.cu``).

:func:`train_lookup` deduplicates a batch of ids, finds or inserts them in the table's id map,
allocates and initialises the rows of new ids straight in the row store's blocks and gathers the
rows, for a :attr:`~recis.core.table.EmbeddingTable.sync_free` table: what
:func:`~recis.core.dedupe.first_occurrences` (padded), :meth:`EmbeddingTable.lookup` and its
initialisation do in some thirty device operations. Distinct ids are indexed by the position of
their first occurrence (:class:`PositionLookup`). Nothing waits for the device.

:func:`train_lookup_reference` is its NumPy twin, on a CPU table.

>>> import numpy as np
>>> from recis.core.table import EmbeddingTable
>>> table = EmbeddingTable("t", dim=2)
>>> found = train_lookup_reference(table, np.array([7, 9, 7]))
>>> found.rows.tolist(), found.index.tolist(), found.counts.tolist()
([0, 1, -1], [0, 1, 0], [2, 1, 0])
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from recis.core.cuda import loader
from recis.core.cuda.row_store import block_arguments
from recis.core.dedupe import scratch_capacity, tag_vector
from recis.core.initializers import table_hash
from recis.core.kernels import random as random_kernels
from recis.core.policies import LookupStats

SOURCE = "lookup.cu"
NULL = np.uint64(0)
STORAGE = {np.dtype(np.float32): 0, np.dtype(np.float16): 1}  # and bfloat16: 2


@dataclass
class PositionLookup:
    """A lookup of ``n`` ids indexed by position: entry ``u`` of ``rows``, ``values`` and
    ``counts`` belongs to the id at position ``u`` when ``u`` is its first occurrence (its
    ``count`` occurrences in the batch; ``index[i]`` is that position for every ``i``); other
    entries are padding, with row -1, zero values and count 0. ``new`` counts the ids inserted."""

    rows: np.ndarray
    values: np.ndarray
    index: np.ndarray
    counts: np.ndarray
    new: object


def train_lookup(table, ids, tags=None) -> PositionLookup | None:
    """The training lookup of CuPy ``ids`` (int64, with per-id CuPy ``tags`` known to lie in
    range, or one tag or None) in GPU ``table`` (see the module docstring), its stats recorded as
    :meth:`EmbeddingTable.lookup` records them; None where it does not apply (a table with
    policies, a row store or initializer the kernels do not know, a ``max_size`` the batch
    might pass), for the caller to take the general path."""
    state = _state_of(table)
    if state is None or not _room_for(table.ids, ids.size):
        return None
    cupy = loader.require_cupy("a GPU lookup")
    ids = cupy.ascontiguousarray(ids, np.int64)
    n, store, id_map = ids.size, table.store, table.ids
    tag_array, stride = tag_vector(tags, n, cupy, checked=True)
    scratch = state.scratch_for(n)
    store.ensure_rows(id_map.rows.high_water_bound() + n, fill=False)  # the kernel writes rows
    first, rows, map_slot, scratch_slot = (cupy.empty(n, np.int64) for _ in range(4))
    scan = cupy.empty(2 * n, np.int64)  # new-key flags, then counts
    slots, shift = id_map._slots, np.int32(id_map._shift)
    slot_mask, scratch_mask = np.int64(slots.shape[0] - 1), np.int64(scratch.shape[0] - 1)
    keys = (ids, tag_array, np.int64(stride), np.int64(n))
    scratch_shift = np.int32(65 - scratch.shape[0].bit_length())
    _run("lookup_dedupe", n, (scratch, scratch_mask, scratch_shift, *keys, scratch_slot, scan[n:]))
    probe = (scratch, scratch_slot, slots, slot_mask, shift, *keys, first, scan, rows, map_slot)
    _run("lookup_probe", n, probe)
    ranks = cupy.cumsum(scan[:n]) if n else cupy.zeros(1, np.int64)
    values = cupy.empty((n, table.dim), np.float32)
    allocator = id_map.rows.allocate_in_kernel(n)
    embedding = block_arguments(store.blocks())
    settle = (slots, scratch, scratch_slot, *keys, first, ranks, map_slot, rows, *allocator)
    settle += (embedding[0], embedding[1], np.int64(table.dim), np.int32(state.dtype))
    settle += (*state.slot_fields(), *state.streams(tags if stride else tags or 0), *state.initial)
    total = n * table.dim
    _run("lookup_settle", max(total, 1), (*settle, values, np.int64(total)))
    new = ranks[-1]
    stats = LookupStats(new=new, admitted=new)
    table.stats_total += stats
    table.last_stats = stats
    return PositionLookup(rows, values, first, scan[n:], new)


def train_lookup_reference(table, ids, tags=None) -> PositionLookup:
    """NumPy twin of :func:`train_lookup` on a CPU ``table``: the same rows, values, index and
    counts, and the same table afterwards (ids, rows, initial values, slots, stats)."""
    ids = np.asarray(ids, np.int64)
    tag_array = np.broadcast_to(np.asarray(0 if tags is None else tags, np.int64), ids.shape)
    pairs = np.stack([ids, tag_array], axis=1)
    _, first, inverse = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
    index = first[inverse.reshape(-1)]
    counts = np.bincount(index, minlength=ids.size).astype(np.int64)
    leaders = np.flatnonzero(counts)
    found = table.lookup(ids[leaders], tag_array[leaders] if tags is not None else None)
    rows = np.full(ids.size, -1, np.int64)
    rows[leaders] = found.rows
    values = np.zeros((ids.size, table.dim), np.float32)
    values[leaders] = found.values
    return PositionLookup(rows, values, index, counts, found.stats.new)


def _run(name: str, n: int, args: tuple) -> None:
    if n > 0:
        loader.launch(loader.kernel(SOURCE, name), n, args)


def _room_for(id_map, n: int) -> bool:
    """Whether ``n`` new keys fit ``id_map`` (grown for them where the host's bound says they
    might not fit and ``max_size`` allows), as ``IdMap.find_or_insert`` decides."""
    most = id_map.rows.live_bound() + n
    if not id_map._fits(most) and id_map._fits_max_size(most):
        id_map.reserve(most)
    return id_map._fits(most)


_STATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # table -> _TableState | None


def _state_of(table) -> _TableState | None:
    """The kernels' view of ``table`` (made once), or None if they cannot serve it."""
    if not table.sync_free:
        return None
    if table in _STATES and _STATES[table] is None:
        return None
    state = _STATES.get(table)
    if state is None or state.fields != tuple(table.store.fields):  # new, or slots were added
        state = _STATES[table] = _TableState.of(table)
    return state


class _TableState:
    """What :func:`train_lookup` keeps per table: the scratch table, the slot fields'
    descriptors, the initial values' distribution and streams."""

    def __init__(self, table, dtype: int, initial: tuple) -> None:
        self.table = weakref.proxy(table)
        self.dtype = dtype
        self.initial = initial
        self.fields = tuple(table.store.fields)
        self._scratch = None
        self._descriptors = None  # (the fields' block-address arrays, device descriptors)
        names = table.children
        seed = table.seed
        self._streams = np.array(
            [random_kernels.stream_reference(seed, table_hash(n)) for n in names], np.uint64
        )
        self._device_streams = None

    @classmethod
    def of(cls, table) -> _TableState | None:
        store = table.store
        dtype = _storage_code(store.fields["embedding"].dtype)
        initial = _distribution(table.initializer, table.dim)
        slots = list(store.fields.values())[1:]
        fits = all(f.width <= table.dim and f.dtype.itemsize in (1, 2, 4, 8) for f in slots)
        if dtype is None or initial is None or not fits:
            return None
        return cls(table, dtype, initial)

    def scratch_for(self, n: int):
        """A zeroed scratch table for ``n`` keys (the kernels leave it zeroed)."""
        capacity = scratch_capacity(n)
        if self._scratch is None or self._scratch.shape[0] < capacity:
            self._scratch = loader.require_cupy("a GPU lookup").zeros((capacity, 2), np.int64)
        return self._scratch

    def slot_fields(self) -> tuple:
        """(descriptors, count): per slot field its blocks' addresses, width, element bytes and
        fill bits, as ``cuda/lookup.cu`` reads them (remade when the store grows)."""
        store = self.table.store
        fields = list(store.fields.items())[1:]
        if not fields:
            return (NULL, np.int64(0))
        pointers = tuple(block_arguments(store.blocks(name))[0].data.ptr for name, _ in fields)
        if self._descriptors is None or self._descriptors[0] != pointers:
            words = []
            for pointer, (_, field) in zip(pointers, fields, strict=True):
                words += [pointer, field.width, field.dtype.itemsize, int(field.fill_bits)]
            cupy = loader.require_cupy("a GPU lookup")
            self._descriptors = (pointers, cupy.asarray(np.array(words, np.uint64)))
        return (self._descriptors[1], np.int64(len(fields)))

    def streams(self, tags) -> tuple:
        """(streams, single_stream): the device array of every child's stream for per-id
        ``tags``, or the stream of the one tag ``tags`` (an int)."""
        if np.ndim(tags) == 0:
            return (NULL, self._streams[int(tags)])
        if self._device_streams is None:
            cupy = loader.require_cupy("a GPU lookup")
            self._device_streams = cupy.asarray(self._streams)
        return (self._device_streams, np.uint64(0))


def _storage_code(dtype) -> int | None:
    import ml_dtypes

    if dtype == np.dtype(ml_dtypes.bfloat16):
        return 2
    return STORAGE.get(np.dtype(dtype))


class _Recorder:
    """Stands in for the fill kernels an initializer calls, recording the distribution."""

    found: tuple | None = None

    def fill_constant(self, value, out):
        self.found = (0, value, 0.0, 0.0, 0.0)

    def fill_uniform(self, ids, streams, tags, stride, low, high, out):
        self.found = (1, low, high, 0.0, 0.0)

    def fill_normal(self, ids, streams, tags, stride, mean, std, out):
        self.found = (2, mean, std, 0.0, 0.0)

    def fill_truncated_normal(self, ids, streams, tags, stride, mean, std, a, b, out):
        self.found = (3, mean, std, a, b)


def _distribution(initializer, dim: int) -> tuple | None:
    """(kind, p0..p3) of ``cuda/lookup.cu``'s ``Initial`` for a built-in initializer (the one
    fill call its ``_fill`` makes), or None."""
    recorder = _Recorder()
    try:
        initializer._fill(recorder, None, (None, None, 0), SimpleNamespace(shape=(0, dim)))
    except Exception:  # an initializer of its own: the general path
        return None
    if recorder.found is None:
        return None
    kind, *parameters = recorder.found
    return (np.int32(kind), *(np.float32(p) for p in parameters))
