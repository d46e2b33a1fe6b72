"""``Communicator``: the collectives sharded training needs, over NumPy arrays.

The engine exchanges ids, rows and gradients between ranks through this small interface; the torch
backend implements it over ``torch.distributed`` (gloo on CPU, NCCL on GPU), and
:class:`SingleProcess` is the trivial world of one rank. Every collective takes ``what``, a short
description such as ``"all-to-all of ids of table 'item'"``, which errors and timeouts quote.

All ranks must call the same collectives in the same order. A collective that fails or times out
raises :class:`CollectiveError` naming it; when the cause is another rank's failure that rank
reported (:meth:`Communicator.report_failure`), the error names that rank and its exception.

>>> import numpy as np
>>> comm = SingleProcess()
>>> comm.all_to_all(np.array([1, 2]), np.array([2]), np.array([2]), "ids").wait().tolist()
[1, 2]
>>> comm.all_reduce(np.array([3.0]), "sum", "loss").tolist()
[3.0]
"""

from __future__ import annotations

import abc

import numpy as np


class CollectiveError(RuntimeError):
    """A collective failed or timed out; the message names the collective (and the table)."""


class Pending(abc.ABC):
    """An exchange in flight; :meth:`wait` returns what this rank received."""

    @abc.abstractmethod
    def wait(self) -> np.ndarray: ...


class Done(Pending):
    """An exchange that has already completed."""

    def __init__(self, received: np.ndarray) -> None:
        self.received = received

    def wait(self) -> np.ndarray:
        return self.received


class Communicator(abc.ABC):
    """Collectives over ``world_size`` ranks, this process being ``rank`` (see module doc)."""

    rank: int
    world_size: int

    @abc.abstractmethod
    def all_to_all(
        self, send: np.ndarray, send_counts: np.ndarray, recv_counts: np.ndarray, what: str
    ) -> Pending:
        """Start sending ``send[...]`` (rows along axis 0, grouped by destination rank:
        ``send_counts[r]`` rows to rank ``r``) and receiving ``recv_counts[r]`` rows from rank
        ``r``; the result holds the received rows in rank order."""

    @abc.abstractmethod
    def all_reduce(self, array: np.ndarray, op: str, what: str) -> np.ndarray:
        """Elementwise ``op`` (``"sum"``, ``"min"`` or ``"max"``) of ``array`` over all ranks."""

    @abc.abstractmethod
    def all_gather_object(self, value, what: str) -> list:
        """``value`` (picklable) of every rank, in rank order."""

    def exchange_counts(self, counts: np.ndarray, what: str) -> np.ndarray:
        """Given ``counts[r, k]`` (what this rank sends to rank ``r`` in exchange ``k``), return
        ``received[r, k]``: what rank ``r`` sends to this one. One collective for all exchanges."""
        counts = np.ascontiguousarray(counts, np.int64).reshape(self.world_size, -1)
        ones = np.ones(self.world_size, np.int64)
        return self.all_to_all(counts, ones, ones, what).wait()

    def broadcast_object(self, value, what: str, source: int = 0):
        """Rank ``source``'s ``value`` on every rank."""
        return self.all_gather_object(value if self.rank == source else None, what)[source]

    def barrier(self, what: str) -> None:
        """Return once every rank has called it."""
        self.all_reduce(np.zeros(1, np.int64), "sum", what)

    @abc.abstractmethod
    def report_failure(self, error: BaseException) -> None:
        """Tell the other ranks that this one failed with ``error`` (best effort)."""


class SingleProcess(Communicator):
    """The world of one rank: every collective returns its input."""

    rank = 0
    world_size = 1

    def all_to_all(self, send, send_counts, recv_counts, what) -> Pending:
        return Done(send)

    def all_reduce(self, array, op, what) -> np.ndarray:
        return array

    def all_gather_object(self, value, what) -> list:
        return [value]

    def report_failure(self, error: BaseException) -> None:
        """Nobody else to tell."""
