"""RecIS's ``Saver(SaverOptions(...))``: any plain checkpoint id, a model bank, ``restore()``."""

import pytest
import torch

from recis.framework.checkpoint_manager import ExtraFields, Saver, SaverOptions
from recis.nn.modules.hashtable import HashTable, filter_out_sparse_param
from recis.optim import SparseRowWiseAdagrad


def _model():
    model = torch.nn.Module()
    model.table = HashTable([-1, 2], name="opt_table")
    model.dense = torch.nn.Linear(2, 1)
    return model


def test_save_under_an_id_then_restore_from_the_model_bank(tmp_path):
    model = _model()
    optimizer = SparseRowWiseAdagrad(filter_out_sparse_param(model), lr=0.1)
    step = torch.tensor(0)
    saver = Saver(SaverOptions(model, optimizer, str(tmp_path), None, 2, 1))
    saver.register_for_checkpointing(ExtraFields.global_step, step)
    model.table(torch.tensor([7])).sum().backward()
    optimizer.step()
    step.fill_(3)
    rows = model.table(torch.tensor([7])).detach().clone()
    path = saver.save("warm_start")
    assert path == tmp_path / "warm_start"
    model.table.clear()
    optimizer.reset_state_dict()
    step.fill_(0)
    saver._init_model_bank([{"path": str(path), "load": ["*"], "exclude": ["io_state"]}])
    saver.restore()
    assert torch.equal(model.table(torch.tensor([7])), rows)
    assert optimizer.table_steps["opt_table"] == 1 and step.item() == 3


def test_output_dir_can_be_set_after_construction(tmp_path):
    saver = Saver(SaverOptions(_model(), None, ""))
    saver.output_dir = tmp_path / "run"
    saver.save("ckpt_5")
    assert (tmp_path / "run" / "checkpoint").read_text() == "ckpt_5\n"


def test_options_this_format_cannot_honour_are_refused():
    with pytest.raises(ValueError, match="params_not_save"):
        Saver(SaverOptions(_model(), None, "", params_not_save=["x"]))
    with pytest.raises(ValueError, match="save_filter_fn"):
        Saver(SaverOptions(_model(), None, "", save_filter_fn=lambda names: names))
