"""GPU engine memory from a pool shared with the framework, on the stream that uses it."""

from __future__ import annotations

import gc

import pytest

from recis.core.cuda import memory
from recis.core.cuda.streams import on_stream
from recis.core.id_map import IdMap

pytestmark = pytest.mark.gpu


@pytest.fixture
def shared(cp):
    """A pool that records every allocation (bytes, stream) and free, over CUDA's own malloc."""
    calls = {"malloc": [], "free": []}

    def malloc(size: int, device: int, stream: int) -> int:
        address = cp.cuda.runtime.malloc(size)
        calls["malloc"].append((size, stream, address))
        return address

    def free(address: int, device: int, stream: int) -> None:
        calls["free"].append((address, stream))
        cp.cuda.runtime.free(address)

    memory.share_pool("test", malloc, free)
    yield calls
    memory.restore_cupy_pool()


def test_engine_arrays_come_from_the_shared_pool_on_the_callers_stream(cp, shared):
    assert memory.shared_pool() == "test"
    with pytest.raises(RuntimeError, match="already allocates from test's pool"):
        memory.share_pool("another", None, None)
    stream = cp.cuda.Stream(non_blocking=True)
    with on_stream(stream.ptr):
        ids = IdMap("user", device="cuda")
        rows = ids.find_or_insert(cp.arange(-500, 500)).rows
        assert cp.asnumpy(ids.find(cp.arange(-500, 500))).tolist() == cp.asnumpy(rows).tolist()
    stream.synchronize()
    assert len(shared["malloc"]) > 2
    assert {s for _, s, _ in shared["malloc"]} == {stream.ptr}  # nothing on another stream
    del ids, rows
    gc.collect()
    freed = {address for address, _ in shared["free"]}
    assert freed and freed <= {address for _, _, address in shared["malloc"]}
    assert {s for _, s in shared["free"]} == {stream.ptr}


def test_cupys_own_pool_comes_back(cp, shared):
    memory.restore_cupy_pool()
    assert memory.shared_pool() is None
    before = len(shared["malloc"])
    cp.zeros(1000)
    assert len(shared["malloc"]) == before
