"""Training with storage tiers through the torch front end: a small RAM tier gives the same bits
as every row in RAM, and checkpoints of either layout load into the other."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from test_checkpoint_manager import assert_same_run
from torch_helpers import Run

from recis.core.tiers import StorageTiers

ROW_BYTES = 48  # bfloat16 [4] + AdamW's two float32 [4] moments + an int64 last use
TIERS = StorageTiers(ram_bytes=10 * ROW_BYTES)  # ten rows in RAM; a table holds up to 70


def _seeded_run(output_dir, storage, steps) -> Run:
    random.seed(0)
    np.random.seed(0)  # noqa: NPY002
    run = Run(output_dir, storage=storage)
    run.train_until(steps)
    return run


def test_a_small_ram_tier_trains_bit_identically_to_all_in_ram(tmp_path):
    in_ram = _seeded_run(tmp_path / "ram", None, 12)
    tiered = _seeded_run(tmp_path / "tiers", TIERS, 12)
    assert tiered.losses == in_ram.losses
    assert_same_run(in_ram, tiered)
    for table in tiered.tables().values():
        stats = table.table.stats()["tiers"]
        assert stats["ram"]["rows"] <= 10 < len(table.table)
        assert stats["promotions"] > 0 and stats["demotions"] > 0


@pytest.mark.parametrize(("saved", "loaded"), [(TIERS, None), (None, TIERS)])
def test_a_checkpoint_of_either_layout_resumes_in_the_other(tmp_path, saved, loaded):
    source = _seeded_run(tmp_path / "run", saved, 8)
    resumed = Run(tmp_path / "run", storage=loaded)
    assert resumed.manager.restore()
    assert_same_run(source, resumed)
    resumed.train_until(12)
    uninterrupted = _seeded_run(tmp_path / "reference", saved, 12)
    assert resumed.losses == uninterrupted.losses[8:]
    assert_same_run(uninterrupted, resumed)
    assert torch.equal(resumed.model.fc.weight, uninterrupted.model.fc.weight)
