"""The NCCL transport of ``TorchCommunicator``: CuPy arrays go through NCCL as CUDA tensors that
share their memory over DLPack (no copy through the host) and come back as CuPy arrays; a GPU
table's sharded lookup and gradient push run through it. A world of one rank (all-to-all to
itself): what it checks is the device path, not the scaling."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import on_standin
from recis.core.table import EmbeddingTable
from recis.distributed.exchange import LookupRequest, ShardedTable, lookup, push_gradients

pytestmark = pytest.mark.gpu


def missing_nccl() -> str | None:
    """Why the NCCL transport cannot run here, or None."""
    if on_standin():
        return "needs a CUDA device and NCCL (CuPy is the host stand-in here)"
    try:
        import torch
    except ImportError:
        return "needs torch with NCCL (torch is not installed)"
    if not torch.cuda.is_available():
        return "needs a CUDA build of torch that sees a CUDA device"
    if not torch.distributed.is_nccl_available():
        return "needs a build of torch with NCCL"
    return None


@pytest.fixture
def nccl(cp, tmp_path):
    reason = missing_nccl()
    if reason:
        pytest.skip(reason)
    import torch.distributed as dist

    from recis.backends.torch.communicator import TorchCommunicator

    dist.init_process_group("nccl", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        yield TorchCommunicator()
    finally:
        dist.destroy_process_group()


def test_cupy_arrays_cross_nccl_on_the_device(cp, nccl):
    send = cp.arange(12, dtype=cp.int64).reshape(4, 3)
    received = nccl.all_to_all(send, np.array([4]), np.array([4]), "all-to-all of ids").wait()
    assert isinstance(received, cp.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(received), np.arange(12).reshape(4, 3))
    assert nccl.traffic["all-to-all"] == {"calls": 1, "bytes": send.nbytes}


def test_a_gpu_table_is_looked_up_and_updated_through_nccl(cp, nccl):
    shard = ShardedTable(EmbeddingTable("item", 4, device="cuda"), nccl)
    ids = cp.asarray([3, 9, 5])
    (reply,) = lookup([LookupRequest(shard, ids, None, cp.asarray([1, 2, 1]))], True)
    assert isinstance(reply.values, cp.ndarray) and reply.values.shape == (3, 4)
    shard.add_gradients(reply, cp.ones((3, 4), cp.float32))
    assert push_gradients([shard]) == ["item"]
    _, grads = shard.table.grads.summed(1)
    np.testing.assert_array_equal(cp.asnumpy(grads), np.ones((3, 4), np.float32))
