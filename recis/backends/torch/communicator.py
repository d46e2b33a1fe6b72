"""``TorchCommunicator``: the engine's collectives over ``torch.distributed``.

Arrays travel as tensors that share their memory (NumPy on CPU for gloo; CuPy or GPU tensors for
NCCL, where CPU arrays are staged on the current GPU). All-to-alls are started asynchronously, so
the exchanges of several tables overlap. Each wait is bounded by ``timeout`` and a failure raises
:class:`~recis.distributed.CollectiveError` naming the collective — and, when another rank
reported its own failure first, that rank and its exception.

>>> default_communicator() is None  # no process group: single-process training
True
"""

from __future__ import annotations

import atexit
import datetime
import gc
import os

import numpy as np
import torch
import torch.distributed as dist

from recis.core import arrays as interop
from recis.distributed.communicator import CollectiveError, Communicator, Pending

FAILURE_KEY = "recis/failure"
TIMEOUT_VARIABLE = "RECIS_COLLECTIVE_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 600.0
_OPS = {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}
_CACHE: dict = {}


def default_communicator(group=None) -> TorchCommunicator | None:
    """The communicator of ``group`` (default: the world), or None when torch.distributed is not
    initialised or has a single rank. Its timeout is ``$RECIS_COLLECTIVE_TIMEOUT`` seconds
    (default 600)."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    if dist.get_world_size(group) < 2:
        return None
    key = (id(dist.group.WORLD), group)
    if key not in _CACHE:
        _CACHE.clear()
        timeout = float(os.environ.get(TIMEOUT_VARIABLE, DEFAULT_TIMEOUT_SECONDS))
        _CACHE[key] = TorchCommunicator(group, timeout)
    return _CACHE[key]


class TorchCommunicator(Communicator):
    """Collectives of the process group ``group`` (default: the world).

    Args:
        group: a ``torch.distributed`` process group.
        timeout: seconds any one collective may take before it raises (default 600).

    ``traffic`` counts, per kind of collective (``"all-to-all"``, ``"all-reduce"``), the calls
    and the bytes this rank sent, e.g. to report a step's communication volume.
    """

    def __init__(self, group=None, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self.timeout = datetime.timedelta(seconds=timeout)
        self.device = _collective_device(group)
        self.traffic: dict[str, dict[str, int]] = {}
        _collect_garbage_at_exit()

    def _count(self, kind: str, nbytes: int) -> None:
        entry = self.traffic.setdefault(kind, {"calls": 0, "bytes": 0})
        entry["calls"] += 1
        entry["bytes"] += int(nbytes)

    def all_to_all(self, send, send_counts, recv_counts, what) -> Pending:
        send_tensor = self._tensor(np.ascontiguousarray(send) if _is_numpy(send) else send)
        shape = (int(np.sum(recv_counts)), *send_tensor.shape[1:])
        received = torch.empty(shape, dtype=send_tensor.dtype, device=send_tensor.device)
        self._count("all-to-all", send_tensor.nbytes)
        try:
            work = dist.all_to_all_single(
                received,
                send_tensor,
                [int(c) for c in recv_counts],
                [int(c) for c in send_counts],
                group=self.group,
                async_op=True,
            )
        except RuntimeError as error:
            raise self.failed(what, error) from error
        return _TorchPending(self, work, received, send, what)

    def all_reduce(self, array, op, what) -> np.ndarray:
        tensor = self._tensor(np.array(array) if _is_numpy(array) else array.copy())
        self._count("all-reduce", tensor.nbytes)
        try:
            work = dist.all_reduce(tensor, op=_OPS[op], group=self.group, async_op=True)
            self._wait(work, what)
        except RuntimeError as error:
            raise self.failed(what, error) from error
        return _like(tensor, array)

    def all_gather_object(self, value, what) -> list:
        gathered = [None] * self.world_size
        try:
            dist.all_gather_object(gathered, value, group=self.group)
        except RuntimeError as error:
            raise self.failed(what, error) from error
        return gathered

    def report_failure(self, error: BaseException) -> None:
        store = _store()
        if store is None:
            return
        try:
            if not store.check([FAILURE_KEY]):
                store.set(FAILURE_KEY, f"rank {self.rank} raised {type(error).__name__}: {error}")
        except RuntimeError:
            pass  # the store is gone with its host; the peers still see the collective fail

    def failed(self, what: str, error: BaseException) -> CollectiveError:
        """The error to raise when collective ``what`` failed with ``error``."""
        cause = _reported_failure() or str(error)
        limit = self.timeout.total_seconds()
        return CollectiveError(f"{what} failed on rank {self.rank} (timeout {limit:g} s): {cause}")

    def _wait(self, work, what: str) -> None:
        try:
            finished = work.wait(self.timeout)
        except RuntimeError as error:
            raise self.failed(what, error) from error
        if finished is False:
            raise CollectiveError(f"{what} timed out after {self.timeout.total_seconds():g} s")

    def _tensor(self, array) -> torch.Tensor:
        tensor = torch.from_numpy(array) if _is_numpy(array) else torch.from_dlpack(array)
        if tensor.device != self.device:
            tensor = tensor.to(self.device)
        return tensor


_AT_EXIT: list = []


def _collect_garbage_at_exit() -> None:
    """Free unreachable cycles (e.g. a finished trainer and the collectives' state it holds) at
    exit while the runtime is intact: destroyed later, during interpreter teardown, such state can
    abort the process after a successful run."""
    if not _AT_EXIT:
        _AT_EXIT.append(atexit.register(gc.collect))


class _TorchPending(Pending):
    def __init__(self, comm, work, received, send, what) -> None:
        self.comm, self.work, self.received, self.what = comm, work, received, what
        self.send = send  # kept alive until the exchange completes

    def wait(self):
        self.comm._wait(self.work, self.what)
        return _like(self.received, self.send)


def _like(tensor: torch.Tensor, like):
    """``tensor`` as an engine array of ``like``'s kind (NumPy for NumPy, else on the GPU)."""
    if _is_numpy(like):
        return tensor.cpu().numpy() if tensor.device.type != "cpu" else tensor.numpy()
    return interop.as_engine_array(tensor, "received")


def _is_numpy(array) -> bool:
    return isinstance(array, np.ndarray)


def _collective_device(group) -> torch.device:
    if dist.get_backend(group) == dist.Backend.NCCL:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _store():
    try:
        return dist.distributed_c10d._get_default_store()
    except (RuntimeError, ValueError):
        return None


def _reported_failure() -> str | None:
    store = _store()
    if store is None:
        return None
    try:
        if store.check([FAILURE_KEY]):
            return store.get(FAILURE_KEY).decode()
    except RuntimeError:
        return None
    return None
