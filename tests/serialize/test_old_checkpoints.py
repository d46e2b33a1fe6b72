"""Checkpoints written before the one-pipeline layout (sparse optimizer counters in ``extra.pt``)
still restore, strictly, into today's modules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from recis.framework.checkpoint_manager import CheckpointManager
from recis.nn import EmbeddingEngine, EmbeddingOption, filter_out_sparse_param
from recis.nn.initializers import NormalInitializer
from recis.optim import SparseAdam

SAVED = Path(__file__).parent / "data" / "pre_pipeline_torch"


def _model():
    init = NormalInitializer(std=0.1)
    engine = EmbeddingEngine(
        {
            "user": EmbeddingOption(embedding_dim=4, shared_name="user", initializer=init),
            "item": EmbeddingOption(
                embedding_dim=4, shared_name="item", combiner="mean", initializer=init
            ),
        }
    )
    return torch.nn.ModuleDict({"engine": engine, "fc": torch.nn.Linear(8, 1)})


def test_a_checkpoint_of_the_previous_layout_restores_strictly(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(SAVED, run)
    expected = json.loads((run / "expected.json").read_text())
    model = _model()
    dense = torch.optim.Adam(model["fc"].parameters(), lr=0.01)
    sparse = SparseAdam(filter_out_sparse_param(model), lr=0.01)
    manager = CheckpointManager(
        run, model, dense_optimizer=dense, sparse_optimizer=sparse, allow_pickle=True
    )  # its extra.pt and model.pt are pickles, as checkpoints of that version wrote them
    assert manager.restore()
    (table,) = filter_out_sparse_param(model).values()
    state = table.table.state_dict()
    order = np.lexsort((state["id"], state["tag"]))
    assert state["id"][order].tolist() == expected["ids"]
    assert state["tag"][order].tolist() == expected["tags"]
    np.testing.assert_array_equal(state["embedding"][order], np.float32(expected["embedding"]))
    assert sparse.table_steps == expected["sparse_steps"] == {"item+1": 3}
    assert manager.global_step == expected["global_step"] == 3
    np.testing.assert_array_equal(model["fc"].weight.detach(), np.float32(expected["fc_weight"]))
