"""``JaxCommunicator``: the engine's collectives between JAX processes, without torch.

Once ``jax.distributed`` joins the processes (:func:`recis.backends.jax.distributed.initialize`),
this communicator runs the sparse exchange (ids, rows, gradients), the dense gradients'
all-reduce and the loop's agreements as XLA collectives over a mesh of one device per process
(on CPU through gloo, JAX's default CPU collectives). Arrays travel as raw 32-bit words, so int64
ids and float64 values cross unchanged whether or not ``jax_enable_x64`` is set.

XLA collectives have static shapes: an all-to-all pads every rank's blocks to one size, the
largest block of any rank rounded up to a power of two (agreed on by a small all-gather first),
so a run compiles a handful of programs. A float32 all-reduce is one ``psum``/``pmin``/``pmax``;
other dtypes are all-gathered and reduced in rank order on the host, exactly.

All ranks must call the same collectives in the same order. If a process dies, ``jax.distributed``
ends the others once its heartbeat times out; a rank that fails (:meth:`report_failure`) leaves
its error in the coordination service, and the others' :class:`CollectiveError` quotes it.

>>> default_communicator() is None  # jax.distributed not initialised: one process
True
"""

from __future__ import annotations

import contextlib
import pickle
from functools import partial

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from recis.distributed.communicator import CollectiveError, Communicator, Pending

AXIS = "ranks"
FAILURE_KEY = "recis/failure"
_REDUCERS = {"sum": jax.lax.psum, "min": jax.lax.pmin, "max": jax.lax.pmax}
_HOST_REDUCERS = {"sum": np.sum, "min": np.min, "max": np.max}
_CACHE: dict = {}


def default_communicator() -> JaxCommunicator | None:
    """The communicator of ``jax.distributed``'s processes, or None when it is not initialised
    or has a single process."""
    if not jax.distributed.is_initialized() or jax.process_count() < 2:
        return None
    key = jax.process_count()
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = JaxCommunicator()
    return _CACHE[key]


class JaxCommunicator(Communicator):
    """Collectives of the processes of ``jax.distributed`` (see the module docstring).

    ``traffic`` counts, per kind of collective, the calls and the bytes this rank sent.
    """

    def __init__(self) -> None:
        self.rank = jax.process_index()
        self.world_size = jax.process_count()
        self.devices = [_first_device(p) for p in range(self.world_size)]
        self.device = self.devices[self.rank]
        self.mesh = Mesh(np.array(self.devices), (AXIS,))
        self.traffic: dict[str, dict[str, int]] = {}
        self._programs: dict = {}

    def _count(self, kind: str, nbytes: int) -> None:
        entry = self.traffic.setdefault(kind, {"calls": 0, "bytes": 0})
        entry["calls"] += 1
        entry["bytes"] += int(nbytes)

    def all_to_all(self, send, send_counts, recv_counts, what) -> Pending:
        send = np.ascontiguousarray(send)
        send_counts = np.asarray(send_counts, np.int64)
        words = _as_words(send)
        block = _bucket(int(self._gathered(np.array([send_counts.max(initial=0)]), what).max()))
        padded = np.zeros((self.world_size, block, words.shape[1]), words.dtype)
        starts = np.concatenate([[0], np.cumsum(send_counts)[:-1]])
        for rank, (start, count) in enumerate(zip(starts, send_counts, strict=True)):
            padded[rank, :count] = words[start : start + count]
        self._count("all-to-all", send.nbytes)
        received = self._run("all_to_all", padded.reshape(-1, words.shape[1]), what)
        return _JaxPending(self, received, np.asarray(recv_counts, np.int64), send, block, what)

    def exchange_counts(self, counts, what) -> np.ndarray:
        counts = np.ascontiguousarray(counts, np.int64).reshape(self.world_size, -1)
        gathered = self._gathered(counts.reshape(-1), what)  # [sender, receiver * k]
        return gathered.reshape(self.world_size, self.world_size, -1)[:, self.rank]

    def all_reduce(self, array, op, what) -> np.ndarray:
        array = np.asarray(array)
        if op not in _REDUCERS:
            raise ValueError(f"{what}: unknown reduction {op!r} (sum, min or max)")
        self._count("all-reduce", array.nbytes)
        if array.dtype == np.float32:
            reduced = self._run(f"all_reduce_{op}", array.reshape(1, -1), what)
            return self._wait(reduced, what).reshape(array.shape)
        gathered = self._gathered(array.reshape(-1), what)
        return _HOST_REDUCERS[op](gathered, axis=0).astype(array.dtype).reshape(array.shape)

    def all_gather_object(self, value, what) -> list:
        payload = np.frombuffer(pickle.dumps(value), np.uint8)
        sizes = self._gathered(np.array([payload.size]), what)[:, 0]
        padded = np.zeros(_bucket(int(sizes.max())), np.uint8)
        padded[: payload.size] = payload
        gathered = self._gathered(padded, what)
        return [
            pickle.loads(row[:size].tobytes()) for row, size in zip(gathered, sizes, strict=True)
        ]

    def report_failure(self, error: BaseException) -> None:
        client = _client()
        if client is None:
            return
        message = f"rank {self.rank} raised {type(error).__name__}: {error}"
        with contextlib.suppress(Exception):  # best effort: the service may be gone
            client.key_value_set(FAILURE_KEY, message)

    def failed(self, what: str, error: BaseException) -> CollectiveError:
        """The error to raise when collective ``what`` failed with ``error``, quoting the
        failure another rank reported, if any."""
        cause = _reported_failure() or f"{type(error).__name__}: {error}"
        return CollectiveError(f"{what} failed on rank {self.rank}: {cause}")

    def _gathered(self, row: np.ndarray, what: str) -> np.ndarray:
        """Every rank's 1-D ``row`` (same size and dtype on every rank), in rank order."""
        row = np.ascontiguousarray(row)
        words = _as_words(row.reshape(1, -1))
        gathered = self._wait(self._run("all_gather", words, what), what)
        return _from_words(gathered, row.dtype, (self.world_size, *row.shape))

    def _run(self, name: str, local: np.ndarray, what: str) -> jax.Array:
        """Start collective ``name`` on this rank's ``local`` block (rows along axis 0)."""
        sharding = NamedSharding(self.mesh, P(AXIS))
        shape = (self.world_size * local.shape[0], *local.shape[1:])
        try:
            placed = jax.device_put(local, self.device)
            array = jax.make_array_from_single_device_arrays(shape, sharding, [placed])
            return self._program(name)(array)
        except Exception as error:  # XLA raises several types
            raise self.failed(what, error) from error

    def _wait(self, array: jax.Array, what: str) -> np.ndarray:
        try:
            return np.asarray(array.addressable_data(0))
        except Exception as error:  # XLA raises several types
            raise self.failed(what, error) from error

    def _program(self, name: str):
        if name not in self._programs:
            self._programs[name] = jax.jit(_shard_mapped(self.mesh, name))
        return self._programs[name]


def _shard_mapped(mesh: Mesh, name: str):
    """The per-rank body of collective ``name`` over ``mesh``'s ranks."""
    if name == "all_to_all":
        body = partial(jax.lax.all_to_all, axis_name=AXIS, split_axis=0, concat_axis=0, tiled=True)
        return jax.shard_map(body, mesh=mesh, in_specs=P(AXIS), out_specs=P(AXIS))
    if name == "all_gather":
        body = partial(jax.lax.all_gather, axis_name=AXIS, tiled=True)
        return jax.shard_map(body, mesh=mesh, in_specs=P(AXIS), out_specs=P(), check_vma=False)
    reduce = _REDUCERS[name.removeprefix("all_reduce_")]
    return jax.shard_map(
        partial(reduce, axis_name=AXIS), mesh=mesh, in_specs=P(AXIS), out_specs=P()
    )


class _JaxPending(Pending):
    def __init__(self, comm, received, recv_counts, send, block, what) -> None:
        self.comm, self.received, self.recv_counts = comm, received, recv_counts
        self.send, self.block, self.what = send, block, what

    def wait(self) -> np.ndarray:
        words = self.comm._wait(self.received, self.what)
        blocks = words.reshape(self.comm.world_size, self.block, -1)
        kept = np.concatenate([b[:c] for b, c in zip(blocks, self.recv_counts, strict=True)])
        rest = self.send.shape[1:]
        return _from_words(kept, self.send.dtype, (int(self.recv_counts.sum()), *rest))


def _as_words(array: np.ndarray) -> np.ndarray:
    """``array`` [n, ...] as [n, k] uint32 words (uint8 bytes where a row is not whole words)."""
    rows = array.shape[0]
    row_items = int(np.prod(array.shape[1:], dtype=np.int64))
    flat = np.ascontiguousarray(array).reshape(rows, row_items)
    raw = flat.view(np.uint8).reshape(rows, row_items * array.dtype.itemsize)
    return raw.view(np.uint32) if raw.shape[1] % 4 == 0 else raw


def _from_words(words: np.ndarray, dtype, shape) -> np.ndarray:
    return np.ascontiguousarray(words).view(np.uint8).view(dtype).reshape(shape)


def _bucket(size: int) -> int:
    """The next power of two >= ``size`` (at least 1): few distinct shapes, few compilations."""
    return 1 << max(size - 1, 0).bit_length()


def _first_device(process: int):
    return min((d for d in jax.devices() if d.process_index == process), key=lambda d: d.id)


def _client():
    from jax._src import distributed

    return distributed.global_state.client


def _reported_failure() -> str | None:
    client = _client()
    if client is None:
        return None
    try:
        return client.key_value_try_get(FAILURE_KEY)
    except Exception:  # not set, or the service is gone
        return None
