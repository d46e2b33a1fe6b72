"""MemoryAccessTracker: the ops of torch.ops.recis and HashTable.forward, patched only inside a
context, with the bytes of the tensors each call reads and writes."""

from __future__ import annotations

import torch

from recis.nn.modules.hashtable import HashTable
from recis.utils import MemoryAccessTracker, setup_memory_access_tracking


def test_bytes_of_each_call_and_per_op_totals():
    setup_memory_access_tracking()
    assert {"fused_bucketized", "tile_with_sample_counts", "HashTable.forward"} <= set(
        MemoryAccessTracker.list_registered_ops()
    )
    table = HashTable([8], name="tracked")
    ids = torch.tensor([4, 5, 6], dtype=torch.int64)
    counts = torch.tensor([1, 0, 2])
    with MemoryAccessTracker.context("step") as ctx:
        assert MemoryAccessTracker.is_patched() and MemoryAccessTracker.is_enabled()
        table(ids)
        torch.ops.recis.tile_with_sample_counts(ids, counts)
        torch.ops.recis.tile_with_sample_counts(ids, counts)
    assert not MemoryAccessTracker.is_patched() and not MemoryAccessTracker.is_enabled()
    summary = ctx.summary()
    lookup = 3 * 8 + 3 * 8 * 4  # ids read, float32 rows written
    tile = 3 * 8 + 3 * 8 + 6 * 8  # ids and counts read, 6 ids written
    assert summary["ops"]["HashTable.forward"]["bytes"] == lookup
    assert summary["ops"]["tile_with_sample_counts"]["count"] == 2
    assert summary["ops"]["tile_with_sample_counts"]["bytes"] == 2 * tile
    assert summary["total_bytes"] == lookup + 2 * tile
    assert [d["op_name"] for d in summary["execution_details"]] == [
        "HashTable.forward",
        "tile_with_sample_counts",
        "tile_with_sample_counts",
    ]
    assert summary["total_time_ms"] > 0


def test_calls_outside_a_context_are_not_counted():
    setup_memory_access_tracking()
    ids = torch.tensor([1, 2])
    original = torch.ops.recis.tile_with_sample_counts
    with MemoryAccessTracker.context("empty") as ctx:
        pass
    assert torch.ops.recis.tile_with_sample_counts is original  # restored
    torch.ops.recis.tile_with_sample_counts(ids, torch.tensor([0, 0]))
    assert ctx.total_bytes == 0 and ctx.summary()["ops"] == {}
