"""What train() resumes from is explicit: logged, warned about when the run's list and its
directories disagree, falling back to the newest intact checkpoint."""

from __future__ import annotations

import shutil

import pytest
from trainer_helpers import build, dataset, make_data

from recis.backends.torch.trainer import Trainer, TrainingArguments


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_data(str(tmp_path_factory.mktemp("data")), rows=600)


def trainer(data_dir, output_dir, steps: int) -> Trainer:
    model, dense, sparse = build()
    args = TrainingArguments(
        output_dir=str(output_dir), train_steps=steps, save_steps=2, log_steps=100
    )
    return Trainer(
        model, args, dataset(data_dir), dense_optimizers=(dense, None), sparse_optimizer=sparse
    )


def test_fresh_start_and_resume_are_logged(data_dir, tmp_path, capsys):
    trainer(data_dir, tmp_path / "run", 2).train()
    assert "starting from step 0: no checkpoint" in capsys.readouterr().out
    again = trainer(data_dir, tmp_path / "run", 4)
    again.train()
    assert f"resuming from step 2 ({tmp_path / 'run' / 'ckpt_2'})" in capsys.readouterr().out
    assert again.global_step == 4


@pytest.mark.parametrize("listing", ["missing", "empty"])
def test_checkpoints_the_list_does_not_name_are_resumed_with_a_warning(data_dir, tmp_path, listing):
    trainer(data_dir, tmp_path / "run", 2).train()
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copytree(tmp_path / "run" / "ckpt_2", copy / "ckpt_2")
    if listing == "empty":
        (copy / "checkpoint").write_text("")
    resumed = trainer(data_dir, copy, 2)
    with pytest.warns(UserWarning, match=r"does not name: \['ckpt_2'\]"):
        resumed.restore()
    assert resumed.global_step == 2


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(data_dir, tmp_path, capsys):
    trainer(data_dir, tmp_path / "run", 4).train()
    damaged = next((tmp_path / "run" / "ckpt_4").glob("sparse-*.safetensors"))
    damaged.write_bytes(damaged.read_bytes()[:-8])
    resumed = trainer(data_dir, tmp_path / "run", 4)
    with pytest.warns(UserWarning, match=rf"falling back to checkpoint 'ckpt_2'.*{damaged.name}"):
        resumed.restore()
    assert resumed.global_step == 2
    assert "resuming from step 2" in capsys.readouterr().out
