"""RecIS's view of a run's checkpoints: its pickled files beside ours, its tensor names, its
model-bank name patterns and ``oname`` renames, ``recis.framework.filesystem`` and
``load_pt_file``."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from recis.framework.checkpoint_manager import ExtraFields, Saver, SaverOptions
from recis.framework.filesystem import get_file_system
from recis.framework.model_bank import load_pt_file
from recis.nn import HashTable
from recis.optim import SparseAdamWTF
from recis.serialize import CheckpointReader

IDS = torch.tensor([3, 5, 8])


class Model(torch.nn.Module):
    def __init__(self, names=("a", "b"), width: int = 1) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.first = HashTable([-1, 2], name=names[0])
        self.second = HashTable([-1, 2], name=names[1])
        self.fc = torch.nn.Linear(2, width)

    def forward(self, ids):
        return self.fc(self.first(ids) + 2 * self.second(ids)).sum()


class Dataset:
    def __init__(self, position: int) -> None:
        self.position = position

    def dump_io_state(self):
        return {"position": self.position}

    def load_io_state(self, state) -> None:
        self.position = state["position"]


def _run(tmp_path, steps: int, names=("a", "b")):
    """A model, its optimizers and a saver that saved ``ckpt_<n>`` after each of ``steps``."""
    model = Model(names)
    sparse = SparseAdamWTF(
        {n: t for n, t in zip(names, (model.first, model.second), strict=True)}, lr=0.1
    )
    dense = torch.optim.Adam(model.fc.parameters(), lr=0.1)
    step = torch.tensor(0)
    saver = Saver(SaverOptions(model, sparse, str(tmp_path), None, 10, 1))
    saver.register_for_checkpointing(ExtraFields.recis_dense_optim, dense)
    saver.register_for_checkpointing(ExtraFields.global_step, step)
    saver.register_io_state(ExtraFields.train_io, Dataset(7))
    for _ in range(steps):
        model(IDS).backward()
        sparse.step()
        dense.step()
        sparse.zero_grad()
        dense.zero_grad()
        step.add_(1)
        saver.save(f"ckpt_{step.item()}")
    return model, sparse, dense, saver


def _rows(table, ids=IDS):
    return table(ids).detach().clone()


def test_a_checkpoint_holds_recis_pickled_files(tmp_path):
    model, _, dense, _ = _run(tmp_path, 2)
    path = tmp_path / "ckpt_2"
    state = torch.load(path / "model.pt")
    assert sorted(state) == ["fc.bias", "fc.weight"]
    assert torch.equal(state["fc.weight"], model.fc.weight)
    extra = torch.load(path / "extra.pt")
    assert extra[ExtraFields.global_step].item() == 2
    saved_optimizer = extra[ExtraFields.recis_dense_optim]
    assert torch.equal(
        saved_optimizer["state"][0]["exp_avg"], dense.state_dict()["state"][0]["exp_avg"]
    )
    assert torch.load(path / "io_state_0.pt") == {ExtraFields.train_io: {"position": 7}}
    assert (path / "io_state_count").read_text() == "1"


def test_the_reader_gives_recis_names_of_tables_and_optimizer_entries(tmp_path):
    _, sparse, _, _ = _run(tmp_path, 3)
    reader = CheckpointReader(tmp_path / "ckpt_3")
    assert torch.equal(reader.read_tensor("a@id"), reader.read_tensor("a/id"))
    assert torch.equal(reader.read_tensor("b@embedding"), reader.read_tensor("b/embedding"))
    moment = reader.read_tensor("a@sparse_adamw_tf_exp_avg_sq")
    assert torch.equal(moment, reader.read_tensor("a/exp_avg_sq")) and moment.abs().sum() > 0
    state = sparse.state_dict()
    for name in ("sparse_adamw_tf_step", "sparse_adamw_tf_beta1", "sparse_adamw_tf_beta2"):
        assert torch.allclose(reader.read_tensor(name), state[name])
    assert reader.read_tensor("sparse_adamw_tf_beta1").item() == pytest.approx(0.9**3)


def test_model_bank_patterns_choose_what_each_entry_loads(tmp_path):
    model, sparse, _, saver = _run(tmp_path, 3)
    saved = {n: CheckpointReader(tmp_path / f"ckpt_{n}") for n in (1, 2, 3)}
    saver.output_dir = ""
    saver._init_model_bank(
        [
            {"path": str(tmp_path / "ckpt_1"), "load": ["*"], "exclude": ["io_state"]},
            {"path": str(tmp_path / "ckpt_2"), "load": ["b*"], "exclude": ["b@*avg*"]},
        ]
    )
    saver.restore()
    assert torch.equal(
        _rows(model.first), saved[1].read_tensor("a@embedding")[_order(saved[1], "a")]
    )
    assert torch.equal(
        _rows(model.second), saved[2].read_tensor("b@embedding")[_order(saved[2], "b")]
    )
    # b's slots were excluded from the second entry: its rows were cleared and refilled with
    # ids and embeddings only, so their optimizer state starts afresh (RecIS's hashtable_clear)
    slot = model.second.slot_group().slot_by_name("sparse_adamw_tf_exp_avg").value()
    assert not slot[_table_rows(model.second)].any()
    assert torch.equal(model.fc.weight, torch.load(tmp_path / "ckpt_1" / "model.pt")["fc.weight"])
    assert sparse.state_dict()["sparse_adamw_tf_step"].item() == 1


def test_dense_patterns_bring_the_dense_optimizer_with_them(tmp_path):
    model, _, dense, saver = _run(tmp_path, 2)
    saver._init_model_bank([{"path": str(tmp_path / "ckpt_1"), "load": ["fc*"]}])
    saver.restore()
    saved = torch.load(tmp_path / "ckpt_1" / "extra.pt")[ExtraFields.recis_dense_optim]
    assert torch.equal(model.fc.bias, torch.load(tmp_path / "ckpt_1" / "model.pt")["fc.bias"])
    assert torch.equal(dense.state_dict()["state"][0]["exp_avg"], saved["state"][0]["exp_avg"])


def test_oname_loads_tables_and_dense_entries_from_other_names(tmp_path):
    _run(tmp_path / "old", 2, names=("old_x", "old_y"))
    reader = CheckpointReader(tmp_path / "old" / "ckpt_2")
    model, _, _, saver = _run(tmp_path / "new", 1, names=("new_x", "new_y"))
    saver._init_model_bank(
        [
            {
                "path": str(tmp_path / "old" / "ckpt_2"),
                "load": ["*"],
                "oname": [{"new_x*": "old_y*"}, {"new_y@id": "old_x@id"}],
            }
        ]
    )
    saver.restore()
    assert torch.equal(
        _rows(model.first), reader.read_tensor("old_y@embedding")[_order(reader, "old_y")]
    )
    assert torch.equal(
        _rows(model.second), reader.read_tensor("old_x@embedding")[_order(reader, "old_x")]
    )


def test_a_dense_oname_renames_state_dict_keys(tmp_path):
    class Renamed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first, self.second = Model().first, Model().second
            self.head = torch.nn.Linear(2, 1)

    _, _, _, _ = _run(tmp_path, 1)
    model = Renamed()
    saver = Saver(SaverOptions(model, None, ""))
    saver._init_model_bank(
        [{"path": str(tmp_path / "ckpt_1"), "load": ["*"], "oname": [{"head*": "fc*"}]}]
    )
    saver.restore()
    assert torch.equal(model.head.weight, torch.load(tmp_path / "ckpt_1" / "model.pt")["fc.weight"])


def test_names_that_name_nothing_and_shape_mismatches_are_errors(tmp_path):
    _run(tmp_path, 1)
    model = Model(width=3)  # the dense layer no longer fits
    saver = Saver(SaverOptions(model, None, ""))
    with pytest.raises(ValueError, match="'table_9@id' names nothing"):
        saver.load(str(tmp_path / "ckpt_1"), load_conf={"load": ["table_9@id"]}, direct_path=True)
    saver.load(
        str(tmp_path / "ckpt_1"),
        load_conf={"load": ["table_9@id", "a*"], "ignore_error": True},
        direct_path=True,
    )
    assert model.first.ids_map()[0].numel() == 3
    with pytest.raises(RuntimeError, match="size mismatch"):
        saver.load(str(tmp_path / "ckpt_1"), load_conf={"load": ["*"]}, direct_path=True)


def test_load_pt_file_reads_pt_then_pkl(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "model.pt")
    (tmp_path / "extra.pkl").write_bytes(pickle.dumps({"step": np.array([4])}))
    data, from_pickle = load_pt_file(str(tmp_path), "model")
    assert torch.equal(data["w"], torch.ones(2)) and not from_pickle
    data, from_pickle = load_pt_file(str(tmp_path), "extra")
    assert torch.equal(data["step"], torch.tensor([4])) and from_pickle
    assert load_pt_file(str(tmp_path), "io_state_0") == ({}, False)


def test_the_file_system_serves_local_paths_only(tmp_path):
    fs = get_file_system(f"file://{tmp_path}")
    with fs.open(str(tmp_path / "sub" / "checkpoint"), "w") as f:
        f.write("ckpt_1\n")
    assert fs.ls(str(tmp_path / "sub")) == ["checkpoint"] and fs.isdir(str(tmp_path / "sub"))
    fs.mv(str(tmp_path / "sub" / "checkpoint"), str(tmp_path / "moved"))
    assert fs.open(str(tmp_path / "moved"), "r").read() == "ckpt_1\n"
    with pytest.raises(IsADirectoryError):
        fs.rm(str(tmp_path / "sub"))
    fs.rm(str(tmp_path / "sub"), recursive=True)
    assert not fs.exists(str(tmp_path / "sub"))
    with pytest.raises(ValueError, match="scheme 'oss' is not supported"):
        get_file_system("oss://bucket/run")


def _order(reader: CheckpointReader, table: str) -> torch.Tensor:
    """Positions of IDS among a table's saved ids."""
    saved = reader.read_tensor(f"{table}@id").tolist()
    return torch.tensor([saved.index(i) for i in IDS.tolist()])


def _table_rows(table) -> torch.Tensor:
    ids, rows = table.ids_map()
    position = {i: r for i, r in zip(ids.tolist(), rows.tolist(), strict=True)}
    return torch.tensor([position[i] for i in IDS.tolist()])
