"""Training on 2 or 4 gloo ranks equals training on one process over the same global batches."""

from __future__ import annotations

import numpy as np
import pytest
import ranks_training
from launch import run_ranks


def by_id(states: list[dict]) -> dict[str, dict[tuple[int, int], dict[str, np.ndarray]]]:
    """Every (id, tag)'s fields, over the shards of all ranks."""
    merged: dict = {}
    for state in states:
        for table, arrays in state.items():
            fields = [
                k
                for k in arrays
                if k not in ("id", "tag", "row")
                and not k.startswith(("rows.", "eviction.", "admission."))
            ]
            rows = merged.setdefault(table, {})
            for i, key in enumerate(
                zip(arrays["id"].tolist(), arrays["tag"].tolist(), strict=True)
            ):
                assert key not in rows, f"id {key} of table {table} is on two ranks"
                rows[key] = {f: np.asarray(arrays[f][i], np.float64) for f in fields}
    return merged


def assert_same_tables(single: dict, sharded: list[dict]) -> None:
    expected, actual = by_id([single]), by_id(sharded)
    assert expected.keys() == actual.keys()
    for table in expected:
        assert expected[table].keys() == actual[table].keys(), table
        for key, fields in expected[table].items():
            for name, value in fields.items():
                np.testing.assert_allclose(
                    actual[table][key][name],
                    value,
                    rtol=1e-5,
                    atol=1e-6,
                    err_msg=f"{table} id {key} field {name}",
                )


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
