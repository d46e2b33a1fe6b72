"""stats() reports the bytes a table really holds, per id, and the peak while its id map grows.

Rows and slots are NumPy arrays, which tracemalloc sees; the id map's slots live in a memory map
(HostSlots), whose size is checked directly, and whose growth is checked on the process's
resident memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

from recis.core.optim import Adagrad
from recis.core.optim.updater import SparseUpdater
from recis.core.table import EmbeddingTable


def warm_up() -> None:
    EmbeddingTable("warm", dim=8).find_or_insert(np.arange(1000))  # loads the kernels


def test_bytes_per_id_is_what_the_table_holds_with_its_optimizer_slots():
    warm_up()
    ids = np.random.default_rng(0).integers(0, 2**62, 300_000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        table = EmbeddingTable("t", dim=8)
        SparseUpdater(Adagrad(), [table])  # adds its slot to every row
        for batch in np.array_split(ids, 6):
            table.find_or_insert(batch)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    stats = table.stats()
    slots = table.ids._host_slots
    assert len(slots._map) == slots.array.nbytes == 16 * stats["capacity"]
    assert stats["bytes"] - 16 * stats["capacity"] == pytest.approx(held, rel=0.03)
    assert stats["bytes_per_id"] == pytest.approx(stats["bytes"] / 300_000)
    # the formula of the README: 16 B per id-map slot, dim × 4 B of rows and of Adagrad state
    rows = table.store.capacity * 8 * 4 * 2
    assert stats["bytes"] == 16 * stats["capacity"] + rows + table.ids.rows.nbytes


GROWTH_SCRIPT = textwrap.dedent(
    """
    import json, numpy as np
    from recis.core.table import EmbeddingTable

    def status(field):  # kB
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))

    table = EmbeddingTable("t", dim=1, block_rows=1 << 20)
    for start in range(0, 2**21, 2**16):  # to exactly the maximum load: 2**22 slots, 64 MiB
        table.find_or_insert(np.arange(start, start + 2**16))
    stats = table.stats()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak resident memory starts again from here
    before = status("VmRSS:")
    table.find_or_insert(np.arange(2**21, 2**21 + 100))  # grows the id map
    print(json.dumps({
        "held": stats["bytes"], "predicted": stats["growth_peak_bytes"],
        "capacity": table.stats()["capacity"], "peak_growth": status("VmHWM:") - before,
    }))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_growth_peak_is_reported_before_the_id_map_grows():
    """The id map doubles in place: resident memory grows by the new half of the slots only,
    where a copy into a new array would hold the old 64 MiB and the new 128 MiB at once."""
    done = subprocess.run(
        [sys.executable, "-c", GROWTH_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["capacity"] == 2**23
    assert result["predicted"] - result["held"] == 16 * 2**22 + 4 * 2**20  # new half, a block
    assert 16 * 2**22 <= result["peak_growth"] <= result["predicted"] - result["held"] + (8 << 20)
