"""RecIS's run-level ``Saver`` and ``CheckpointManager(saver, save_interval)``: what is saved when,
the files kept, and restoring a run exactly."""

from __future__ import annotations

import pytest
import torch

from recis.backends.torch.initializers import UniformInitializer
from recis.checkpoint.files import CheckpointError
from recis.framework.checkpoint_manager import CheckpointManager, Saver, SaverCheckpointManager
from recis.nn import HashTable
from recis.optim import SparseAdamWTF

IDS = torch.tensor([1, 2, 3, 2])


class Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = HashTable([-1, 2], name="item", initializer=UniformInitializer(-1, 1))
        self.fc = torch.nn.Linear(2, 1)

    def forward(self, ids):
        return self.fc(self.emb(ids)).sum()


def _run(output_dir, max_keep=2, save_interval=2):
    model = Model()
    sparse = SparseAdamWTF({"item": model.emb}, lr=0.1)
    dense = torch.optim.Adam(model.fc.parameters(), lr=0.1)
    saver = Saver(model, sparse_optim=sparse, output_dir=str(output_dir), max_keep=max_keep)
    saver.register_for_checkpointing("dense_optim", dense)
    manager = CheckpointManager(saver=saver, save_interval=save_interval)
    return model, sparse, dense, saver, manager


def _train(model, sparse, dense, manager, steps):
    for _ in range(steps):
        model(IDS).backward()
        sparse.step()
        dense.step()
        sparse.zero_grad()
        dense.zero_grad()
        manager.step()


def test_saves_every_save_interval_steps_and_keeps_max_keep(tmp_path):
    model, sparse, dense, _, manager = _run(tmp_path, max_keep=2, save_interval=2)
    assert isinstance(manager, SaverCheckpointManager) and manager.save_interval == 2
    _train(model, sparse, dense, manager, 5)
    assert (tmp_path / "checkpoint").read_text() == "ckpt_2\nckpt_4\n"
    manager.save()  # at step 5
    assert (tmp_path / "checkpoint").read_text() == "ckpt_4\nckpt_5\n"
    assert sorted(p.name for p in tmp_path.glob("ckpt_*")) == ["ckpt_4", "ckpt_5"]


def test_restore_resumes_the_run_exactly(tmp_path):
    model, sparse, dense, _, manager = _run(tmp_path)
    _train(model, sparse, dense, manager, 4)  # saves ckpt_2, ckpt_4

    again, sparse2, dense2, _, manager2 = _run(tmp_path)
    assert not torch.equal(again.fc.weight, model.fc.weight)
    step = manager2.restore()
    assert step.dtype == torch.int64 and step.item() == 4
    assert manager2.global_step == 4
    torch.testing.assert_close(again.emb(IDS), model.emb(IDS))
    torch.testing.assert_close(again.fc.weight, model.fc.weight)
    assert sparse2.table_steps == sparse.table_steps == {"item": 4}
    # the sparse and dense optimizers' states came back: the next steps agree
    _train(model, sparse, dense, manager, 2)
    _train(again, sparse2, dense2, manager2, 2)
    torch.testing.assert_close(again.emb(IDS), model.emb(IDS))
    torch.testing.assert_close(again.fc.weight, model.fc.weight)


def test_restore_of_a_given_step_and_of_an_empty_run(tmp_path):
    model, sparse, dense, _, manager = _run(tmp_path, max_keep=3)
    _train(model, sparse, dense, manager, 2)
    at_two = model.fc.weight.detach().clone()
    _train(model, sparse, dense, manager, 2)
    again, *_, manager2 = _run(tmp_path)
    assert manager2.restore(2).item() == 2
    torch.testing.assert_close(again.fc.weight, at_two)
    *_, empty = _run(tmp_path / "empty")
    assert empty.restore().item() == 0


def test_saver_save_and_load_with_a_load_configuration(tmp_path):
    model, sparse, dense, saver, _ = _run(tmp_path)
    _train(model, sparse, dense, CheckpointManager(saver, save_interval=100), 1)
    path = saver.save("ckpt_7")
    assert path == tmp_path / "ckpt_7"
    assert (tmp_path / "checkpoint").read_text() == "ckpt_7\n"

    fresh, _, _, fresh_saver, _ = _run(tmp_path / "other")
    before = fresh.fc.weight.detach().clone()
    loaded = fresh_saver.load(
        ckpt_path=str(path), load_conf={"exclude": ["dense"]}, direct_path=True
    )
    assert loaded == path
    torch.testing.assert_close(fresh.emb(IDS), model.emb(IDS))  # sparse loaded
    torch.testing.assert_close(fresh.fc.weight, before)  # dense excluded
    assert fresh_saver.get_extra_data("global_step").item() == 7
    # without direct_path: ckpt_id of run ckpt_path, or its newest
    fresh_saver.load(ckpt_path=str(tmp_path), ckpt_id="ckpt_7")
    torch.testing.assert_close(fresh.fc.weight, model.fc.weight)
    assert fresh_saver.load(ckpt_path=str(tmp_path / "nothing")) is None


def test_registered_values_without_state_dict(tmp_path):
    model = Model()
    counter, label = torch.tensor([3.0, 4.0]), {"epoch": 2}
    saver = Saver(model, output_dir=str(tmp_path))
    saver.register_for_checkpointing("counter", counter)
    saver.register_for_checkpointing("label", label)
    with pytest.raises(ValueError, match="'label' is already registered"):
        saver.register_for_checkpointing("label", {})
    saver.save("ckpt_1")

    other_counter = torch.zeros(2)
    other = Saver(Model(), output_dir=str(tmp_path))
    other.register_for_checkpointing("counter", other_counter)
    other.register_for_checkpointing("label", None)
    other.load()
    assert other_counter.tolist() == [3.0, 4.0]  # a tensor is restored in place
    assert other.get_extra_data("label") == {"epoch": 2}
    assert other.get_extra_data("missing") is None


class RecISStyleDataset:
    """A dataset with RecIS's ``dump_io_state``/``load_io_state`` only."""

    def __init__(self, position: int) -> None:
        self.position = position

    def dump_io_state(self):
        return {"position": self.position}

    def load_io_state(self, state) -> None:
        self.position = state["position"]


def test_io_state_of_a_recis_style_dataset(tmp_path):
    saver = Saver(Model(), output_dir=str(tmp_path))
    saver.register_io_state("train_io", RecISStyleDataset(41))
    saver.save("ckpt_3")
    dataset = RecISStyleDataset(0)
    other = Saver(Model(), output_dir=str(tmp_path))
    other.register_io_state("train_io", dataset)
    other.load()
    assert dataset.position == 41
    skipped = RecISStyleDataset(0)
    third = Saver(Model(), output_dir=str(tmp_path))
    third.register_io_state("train_io", skipped)
    third.load(load_conf={"load": ["*"], "exclude": ["io_state"]})
    assert skipped.position == 0


def test_window_saving_replaces_step_saving(tmp_path):
    model = Model()
    manager = CheckpointManager(
        saver=Saver(model, output_dir=str(tmp_path), max_keep=5),
        save_interval=1,
        save_every_n_windows=2,
    )
    for _ in range(3):
        manager.step()
        assert manager.window_step() is None or manager.global_step == 2
    assert (tmp_path / "checkpoint").read_text() == "ckpt_2\n"


def test_bad_checkpoint_ids_and_shards_are_errors_naming_them(tmp_path):
    saver = Saver(Model(), output_dir=str(tmp_path))
    assert saver.save("best") == tmp_path / "best"  # any plain name, as RecIS
    assert (tmp_path / "checkpoint").read_text() == "best\n"
    with pytest.raises(CheckpointError, match=r"'\.\./best', which is not a plain file name"):
        saver.save("../best")
    with pytest.raises(ValueError, match="shard 1 of 2 does not match"):
        saver.save("ckpt_1", shard_id=1, shard_num=2)
    with pytest.raises(ValueError, match="'weights' names nothing"):
        saver.load(load_conf={"load": ["weights"]})


def test_our_constructor_keeps_our_manager(tmp_path):
    model = Model()
    manager = CheckpointManager(str(tmp_path), model, save_steps=1)
    assert type(manager) is not SaverCheckpointManager
    manager.step()
    again = CheckpointManager(str(tmp_path), Model())
    assert again.restore() is True and again.global_step == 1
