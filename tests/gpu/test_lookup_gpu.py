"""The fused training lookup of GPU tables (``cuda/lookup.cu``) against its NumPy twin on a CPU
table: rows, values, index and counts of every step, and the tables' states afterwards."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from recis.core.cuda.lookup import train_lookup, train_lookup_reference
from recis.core.initializers import (
    ConstantInitializer,
    TruncNormalInitializer,
    UniformInitializer,
    XavierNormalInitializer,
)
from recis.core.optim import Adam, RowWiseAdagrad
from recis.core.policies import FrequencyAdmission
from recis.core.table import EmbeddingTable

pytestmark = pytest.mark.gpu


def tables(cp, dtype, initializer, rule):
    """A CPU and a GPU table of two logical tables, small blocks, with ``rule``'s slots."""
    made = []
    for device in ("cpu", "cuda"):
        table = EmbeddingTable(
            "t", dim=6, initializer=initializer, seed=3, dtype=dtype, block_rows=16,
            capacity=16, children=["a", "b"], device=device,
        )  # fmt: skip
        for name, spec in rule.slots(6).items():
            table.store.add_slot(name, spec.shape, spec.dtype, spec.init)
        made.append(table)
    return made


@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16])
@pytest.mark.parametrize(
    "initializer",
    [TruncNormalInitializer(std=0.1), UniformInitializer(-0.5, 0.5), ConstantInitializer(0.25),
     XavierNormalInitializer()],
    ids=lambda i: type(i).__name__,
)  # fmt: skip
def test_fused_lookup_equals_its_numpy_twin_over_steps(cp, dtype, initializer):
    cpu, gpu = tables(cp, dtype, initializer, Adam(amsgrad=True))
    rng = np.random.default_rng(0)
    for step in range(5):
        ids = rng.integers(-40, 40, 90)
        tags = rng.integers(0, 2, ids.size)
        if step == 3:  # erased ids free rows, which the next lookup reuses
            gone = ids[:10]
            for table, xp in ((cpu, np), (gpu, cp)):
                table.erase(xp.asarray(gone), xp.asarray(tags[:10]))
        expected = train_lookup_reference(cpu, ids, tags)
        got = train_lookup(gpu, cp.asarray(ids), cp.asarray(tags))
        assert got is not None
        for field in ("rows", "index", "counts"):
            np.testing.assert_array_equal(cp.asnumpy(getattr(got, field)), getattr(expected, field))
        np.testing.assert_array_equal(cp.asnumpy(got.values), expected.values)
        assert int(got.new) == int(expected.new) == int(gpu.last_stats.new)
    assert gpu.stats_total.as_dict() == cpu.stats_total.as_dict()
    cpu_state, gpu_state = cpu.state_dict(), gpu.state_dict()
    assert sorted(cpu_state) == sorted(gpu_state)
    for name, value in cpu_state.items():
        np.testing.assert_array_equal(gpu_state[name], value, err_msg=name)
    assert len(gpu) == len(cpu)


def test_fused_lookup_with_one_tag_grows_the_id_map_and_the_store(cp):
    cpu, gpu = tables(cp, np.float32, TruncNormalInitializer(std=0.1), RowWiseAdagrad())
    ids = np.arange(300) * 7919  # more than the id map's 16 slots and many blocks
    expected = train_lookup_reference(cpu, ids, 1)
    got = train_lookup(gpu, cp.asarray(ids), 1)
    np.testing.assert_array_equal(cp.asnumpy(got.rows), expected.rows)
    np.testing.assert_array_equal(cp.asnumpy(got.values), expected.values)
    np.testing.assert_array_equal(gpu.state_dict()["sum"], cpu.state_dict()["sum"])
    again = train_lookup(gpu, cp.asarray(ids[::-1].copy()), 1)  # all present now
    assert int(again.new) == 0
    np.testing.assert_array_equal(cp.asnumpy(again.values), expected.values[::-1])


def test_fused_lookup_leaves_tables_with_policies_to_the_general_path(cp):
    table = EmbeddingTable("t", dim=4, admission=FrequencyAdmission(2), device="cuda")
    assert train_lookup(table, cp.asarray(np.array([1, 2])), None) is None
