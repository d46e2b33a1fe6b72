"""``TorchCommunicator``: the engine's collectives over ``torch.distributed``.

Arrays travel as tensors that share their memory: NumPy arrays over gloo; CuPy arrays over NCCL,
shared with torch over DLPack and exchanged on the caller's (torch's current) stream, with no copy
through the host (NumPy arrays are copied to the current GPU for NCCL). Over gloo a CuPy array is
staged through the host — the transport of the tests, where CuPy is a host stand-in. What a rank
receives is of the kind it sent (NumPy or CuPy). All-to-alls are started asynchronously, so the
exchanges of several tables overlap. The host waits, bounded by the timeout, only for exchanges
of host arrays (such as the counts of each step); a device exchange over NCCL makes the caller's
stream wait, and one that never completes is caught by the next bounded wait. A failure raises
:class:`~recis.distributed.CollectiveError` naming the collective — and, when another rank
reported its own failure first, that rank and its exception; otherwise the ranks that did not
respond within a few seconds (dead, frozen or stalled), found by checking in with the store.

After a failed collective the process group cannot be destroyed: gloo waits for the peer until
the group's own timeout (30 minutes by default). The process then ends at exit without
destroying it (:func:`exit_after_failure`, status 1), and :func:`end_process_group`, which
scripts call instead of ``dist.destroy_process_group()``, leaves it alone. So every surviving
rank ends within ``RECIS_COLLECTIVE_TIMEOUT`` plus a few seconds.

>>> default_communicator() is None  # no process group: single-process training
True
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import gc
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

from recis.core import arrays as interop
from recis.core.arrays import array_module
from recis.distributed.communicator import CollectiveError, Communicator, Pending

FAILURE_KEY = "recis/failure"
CHECK_IN_KEY = "recis/checked-in/"  # + rank: the rank saw a collective fail and is alive
CHECK_IN_SECONDS = 5.0  # how long the survivors of a failed collective wait for each other
TIMEOUT_VARIABLE = "RECIS_COLLECTIVE_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 600.0
_OPS = {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}
_CACHE: dict = {}
_FAILED = False  # a collective of this process failed: its process groups cannot be destroyed


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
        send_tensor = self._tensor(send)
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
        """The error to raise when collective ``what`` failed with ``error``: it names the rank
        that reported a failure, or else the ranks that did not respond (:func:`_silent_ranks`).
        The process will end without destroying its process groups (:func:`exit_after_failure`)."""
        cause = _reported_failure()
        if cause is None:
            silent = _silent_ranks(self.rank, self.world_size, self._check_in_seconds())
            cause = _reported_failure() or f"{_describe_silent(silent)}; {error}"
        limit = self.timeout.total_seconds()
        exit_after_failure()
        return CollectiveError(f"{what} failed on rank {self.rank} (timeout {limit:g} s): {cause}")

    def _check_in_seconds(self) -> float:
        return min(CHECK_IN_SECONDS, self.timeout.total_seconds())

    def _wait(self, work, what: str) -> None:
        try:
            finished = work.wait(self.timeout)
        except RuntimeError as error:
            raise self.failed(what, error) from error
        if finished is False:
            raise self.failed(
                what, TimeoutError(f"timed out after {self.timeout.total_seconds():g} s")
            )

    def _enqueue_wait(self, work, what: str) -> None:
        """Make the current stream wait for ``work`` (NCCL on device arrays) without waiting on
        the host: an exchange that never completes is caught by the next exchange of host
        arrays (the counts of the next step, queued after it), whose wait is bounded."""
        try:
            work.wait()
        except RuntimeError as error:
            raise self.failed(what, error) from error

    def _tensor(self, array) -> torch.Tensor:
        """``array`` as a tensor on the collective's device: NumPy shares its memory (gloo) or
        is copied to the GPU (NCCL); a device array is shared over DLPack (NCCL) or copied to
        the host (gloo)."""
        if _is_numpy(array):
            tensor = torch.from_numpy(np.ascontiguousarray(array))
        elif self.device.type == "cpu":
            tensor = torch.from_numpy(array_module(array).asnumpy(array))
        else:
            tensor = torch.from_dlpack(array_module(array).ascontiguousarray(array))
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
        if self.received.is_cuda and not _is_numpy(self.send):
            self.comm._enqueue_wait(self.work, self.what)
        else:
            self.comm._wait(self.work, self.what)
        return _like(self.received, self.send)


def _like(tensor: torch.Tensor, like):
    """``tensor`` as an engine array of ``like``'s kind (NumPy for NumPy, else on the GPU:
    shared over DLPack, or copied there from a host tensor of gloo)."""
    if _is_numpy(like):
        return tensor.cpu().numpy() if tensor.device.type != "cpu" else tensor.numpy()
    if tensor.device.type == "cpu":
        return array_module(like).asarray(tensor.numpy())
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


def _silent_ranks(rank: int, world_size: int, seconds: float) -> list[int] | None:
    """After a failed collective: check in, wait up to ``seconds`` for the other ranks to check
    in too, and return those that did not (dead, frozen or stalled); None when the store cannot
    be reached. Store operations are bounded by ``seconds`` too (the store's host may be the
    frozen rank)."""
    store = _store()
    if store is None:
        return None
    keys = [f"{CHECK_IN_KEY}{r}" for r in range(world_size)]
    deadline = time.monotonic() + seconds
    try:
        store.set_timeout(datetime.timedelta(seconds=seconds))
        store.set(keys[rank], "1")
        while True:
            silent = [r for r in range(world_size) if not store.check([keys[r]])]
            if not silent or time.monotonic() > deadline:
                return silent
            time.sleep(0.05)
    except RuntimeError:
        return None  # the store is gone with its host (maybe the failed rank)


def _describe_silent(silent: list[int] | None) -> str:
    if silent is None:
        return "the ranks could not be asked which failed (the store is unreachable)"
    if not silent:
        return "every rank is alive"
    ranks = ", ".join(map(str, silent))
    return f"rank{'s' if len(silent) > 1 else ''} {ranks} did not respond (dead, frozen or stalled)"


def end_process_group() -> None:
    """Destroy ``torch.distributed``'s process groups at the end of a script — unless a
    collective failed: then nothing is destroyed (see :func:`exit_after_failure`).

    Unreachable cycles (e.g. a finished trainer holding collectives' state) are collected first,
    while the process group lives.
    """
    gc.collect()
    if _FAILED or not (dist.is_available() and dist.is_initialized()):
        return
    dist.destroy_process_group()


def exit_after_failure() -> None:
    """Make this process end without destroying its process groups: after a collective failed,
    a gloo group with a frozen or dead peer blocks its destruction (and its abort) until the
    group's own timeout, 30 minutes by default. Registered when a collective fails: at exit
    (once the error has been printed) it flushes the standard streams and ends the process at
    once, with status 1, skipping the rest of the interpreter's teardown."""
    global _FAILED
    if not _FAILED:
        _FAILED = True
        atexit.register(_exit_now)


def _exit_now() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(1)


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
