"""Comparing tables trained in one process with the shards of several ranks, id by id."""

from __future__ import annotations

import numpy as np


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
