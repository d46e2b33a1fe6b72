"""Tables sharded over two gloo ranks export collectively: rank 0 gathers every shard into one
bundle (base and delta), which one Predictor loads to score what the ranks' evaluation scored."""

from __future__ import annotations

import numpy as np
from launch import run_ranks
from ranks_export import batches

from recis.serving import Predictor
from recis.tools.synthetic import write_dataset


def test_two_ranks_export_one_bundle_that_scores_as_their_evaluation(tmp_path):
    write_dataset(str(tmp_path / "train"), rows=448, files=1, seed=1)
    write_dataset(str(tmp_path / "eval"), rows=64, files=1, seed=2)
    ranks = run_ranks(2, "ranks_export:export_and_evaluate", str(tmp_path), timeout=240)
    assert [r["wrote"] for r in ranks] == [[True, True], [False, False]]
    for got, want in zip(ranks[0]["scores"], ranks[1]["scores"], strict=True):
        np.testing.assert_array_equal(got, want)  # the ranks agree
    assert all(r["rows"] > 0 for r in ranks)  # both ranks hold rows

    predictor = Predictor(tmp_path / "base", deltas=[tmp_path / "delta"])
    assert predictor.step == 6
    assert (
        predictor.bundle.kind == "delta" and len(predictor.bundle.manifest["lineage"]["ranks"]) == 2
    )
    state = predictor.bundle.state()
    assert sum(len(rows) for rows in state.values()) == sum(r["rows"] for r in ranks)
    written = sum(table["rows"] for table in predictor.bundle.tables.values())
    assert 0 < written < sum(len(rows) for rows in state.values())  # changed rows only
    for raw, want in zip(batches(str(tmp_path / "eval"), "numpy"), ranks[0]["scores"], strict=True):
        np.testing.assert_array_equal(predictor.predict(raw), want)
