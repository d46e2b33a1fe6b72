"""Null values of fixedlen columns become the default, and are counted and warned about."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.orc as orc

from recis.io import OrcDataset


def test_null_labels_are_counted_and_warned_about(tmp_path, caplog):
    table = pa.table(
        {"label": pa.array([1.0, None, 0.0, None]), "x": pa.array([[1.0], [], [2.0], [3.0]])}
    )
    orc.write_table(table, tmp_path / "part-0.orc")
    dataset = OrcDataset(4, transform_fn=[lambda tables: tables[0]])
    dataset.add_path(str(tmp_path))
    dataset.fixedlen_feature("label", [0.0])
    dataset.fixedlen_feature("x", [9.0])
    with caplog.at_level(logging.WARNING, logger="recis.io"):
        (batch,) = list(dataset)
    np.testing.assert_array_equal(batch["label"].reshape(-1), [1.0, 0.0, 0.0, 0.0])
    assert dataset.defaults_filled == {"label": 2, "x": 1}
    assert "column 'label': 2 null or empty values" in caplog.text
    assert "part-0.orc" in caplog.text
