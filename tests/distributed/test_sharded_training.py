"""Training on 2 or 4 gloo ranks equals training on one process over the same global batches."""

from __future__ import annotations

import numpy as np
import pytest
import ranks_training
from launch import run_ranks
from table_checks import assert_same_tables


@pytest.fixture(scope="module")
def single():
    return ranks_training.train_both(0, 1)


@pytest.mark.parametrize("world_size", [2, 4])
def test_sharded_training_equals_one_process(single, world_size):
    by_mode = run_ranks(world_size, "ranks_training:train_both")
    for grad_reduce_by, expected in single.items():
        results = [r[grad_reduce_by] for r in by_mode]
        assert_same_tables(expected["tables"], [r["tables"] for r in results])
        for result in results:  # DDP keeps the dense replicas equal to the single process
            for name, value in expected["dense"].items():
                np.testing.assert_allclose(result["dense"][name], value, rtol=1e-5, atol=1e-6)
        sizes = [sum(t["id"].size for t in r["tables"].values()) for r in results]
        assert all(size > 0 for size in sizes), f"a rank owns no ids: {sizes}"
