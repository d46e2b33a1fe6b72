"""Trainer: exact step counts, hooks, accumulation, evaluation, mixed precision, exact resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from trainer_helpers import build, dataset, final_state, make_data

from recis.backends.torch.trainer import Trainer, TrainingArguments
from recis.hooks import Hook
from recis.utils.parser import ArgumentParser


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_data(str(tmp_path_factory.mktemp("data")))


class Recorder(Hook):
    def __init__(self):
        self.calls, self.metrics = [], []

    def __getattribute__(self, name):
        if name.startswith(("before_", "after_")) or name == "end":
            calls = object.__getattribute__(self, "calls")
            return lambda *args: (
                calls.append(name) or (name == "after_step" and self.metrics.append(args[0]))
            )
        return object.__getattribute__(self, name)


def _trainer(data_dir, output_dir, **kwargs):
    """A trainer whose ``train(n)`` trains up to global step n, unless ``exact_steps=False``."""
    kwargs.setdefault("exact_steps", True)
    model, dense, sparse = build()
    args = TrainingArguments(output_dir=str(output_dir), log_steps=1000, **kwargs)
    train = dataset(data_dir)
    evaluation = dataset(data_dir, shuffle=False)
    trainer = Trainer(
        model, args, train, evaluation, dense_optimizers=(dense, None), sparse_optimizer=sparse
    )
    return trainer, model


def test_train_runs_exactly_the_requested_steps_across_epochs_and_calls_every_hook(
    data_dir, tmp_path
):
    trainer, _ = _trainer(data_dir, tmp_path, save_steps=0)
    recorder = Recorder()
    trainer.add_hooks([recorder])
    trainer.train(40)  # 2000 rows / 64 = 31 batches per epoch, so this crosses an epoch
    assert trainer.global_step == 40
    assert recorder.calls.count("after_step") == 40 and recorder.calls.count("before_step") == 40
    assert recorder.calls[0] == "before_train" and recorder.calls[-2:] == ["after_train", "end"]
    assert recorder.calls.count("before_epoch") == 2 and recorder.calls.count("after_epoch") == 1
    last = recorder.metrics[-1]
    assert {"loss", "auc", "epoch", "batch_size"} <= set(last) and last["epoch"] == 1
    assert (tmp_path / "ckpt_40").is_dir()  # the final save


BATCHES_PER_EPOCH = 2000 // 64 + 1  # the last batch is partial


@pytest.mark.parametrize(
    ("train_steps", "train_epoch", "steps"),
    [(10, 2, 20), (None, 2, 2 * BATCHES_PER_EPOCH), (40, 2, 2 * BATCHES_PER_EPOCH)],
)
def test_recis_epochs_end_at_the_data_end_or_after_train_steps(
    data_dir, tmp_path, train_steps, train_epoch, steps
):
    trainer, _ = _trainer(
        data_dir, tmp_path, save_steps=0, train_steps=train_steps, train_epoch=train_epoch,
        exact_steps=False,
    )  # fmt: skip
    recorder = Recorder()
    trainer.add_hooks([recorder])
    trainer.train()
    assert trainer.global_step == steps and trainer.epoch == train_epoch
    epochs = [metrics["epoch"] for metrics in recorder.metrics]
    assert epochs == [0] * (steps // 2) + [1] * (steps // 2)
    assert recorder.calls.count("after_epoch") == 2
    assert trainer.train_dataset.state_dict()["epoch"] == 2  # each epoch read from the start


def test_a_resumed_recis_epoch_counts_the_steps_it_already_ran(data_dir, tmp_path):
    first, _ = _trainer(data_dir, tmp_path, save_steps=0, train_steps=6)
    first.train()
    second, _ = _trainer(
        data_dir, tmp_path, save_steps=0, train_steps=10, train_epoch=2, exact_steps=False
    )
    second.train()
    assert second.global_step == 20 and second.epoch == 2


def test_one_epoch_without_a_step_limit(data_dir, tmp_path):
    trainer, _ = _trainer(data_dir, tmp_path, save_steps=0, train_epoch=1)
    trainer.train()
    assert trainer.global_step == 2000 // 64 + 1  # the last batch is partial


def test_gradient_accumulation_updates_every_n_steps_with_the_mean(data_dir, tmp_path):
    trainer, model = _trainer(data_dir, tmp_path, save_steps=0, gradient_accumulation_steps=2)
    trainer.train(6)
    assert trainer.sparse_optimizer.table_steps == {"C1+2": 3}  # one merged table
    state = trainer.dense_optimizer.state[next(iter(model.mlp.parameters()))]
    assert int(state["step"]) == 3


def test_save_steps_must_align_with_accumulation(data_dir, tmp_path):
    with pytest.raises(ValueError, match="multiple of gradient_accumulation_steps"):
        _trainer(data_dir, tmp_path, save_steps=3, gradient_accumulation_steps=2)


def test_evaluate_and_train_and_evaluate(data_dir, tmp_path):
    trainer, model = _trainer(data_dir, tmp_path, save_steps=0)
    sizes = {t.name: len(t.table) for t in model.engine.tables.values()}
    result = trainer.evaluate(eval_steps=3)
    assert result["steps"] == 3 and np.isfinite(result["loss"]) and "auc" in result
    assert {t.name: len(t.table) for t in model.engine.tables.values()} == sizes  # no inserts
    results = trainer.train_and_evaluate(epochs=2, train_steps=5, eval_steps=2)
    assert trainer.global_step == 10 and len(results) == 2


def test_training_reduces_the_loss(data_dir, tmp_path):
    trainer, _ = _trainer(data_dir, tmp_path, save_steps=0)
    recorder = Recorder()
    trainer.add_hooks([recorder])
    trainer.train(90)
    losses = [m["loss"] for m in recorder.metrics]
    assert np.mean(losses[-20:]) < np.mean(losses[:20])


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains(data_dir, tmp_path, precision):
    trainer, _ = _trainer(data_dir, tmp_path, save_steps=0, mixed_precision=precision)
    recorder = Recorder()
    trainer.add_hooks([recorder])
    trainer.train(10)
    assert all(np.isfinite(m["loss"]) for m in recorder.metrics)
    if precision == "fp16":
        assert trainer.loss_scale.scale == 2.0**16  # no overflow on this small problem


def test_fp16_overflow_skips_the_update_and_backs_off(data_dir, tmp_path):
    trainer, model = _trainer(data_dir, tmp_path, save_steps=0, mixed_precision="fp16")
    trainer.train(2)
    before = final_state(model)
    trainer.loss_scale.scale = float("inf")  # the scaled loss, and every gradient, overflow
    trainer.train(3)
    assert trainer.loss_scale.good_steps == 0
    after = final_state(model)
    for key in (k for k in before if k.startswith("dense.")):
        assert torch.equal(before[key], after[key]), key
    for table in model.engine.tables.values():
        ids, tags = before[f"{table.name}.id"].numpy(), before[f"{table.name}.tag"].numpy()
        rows = table.table.find(ids, tags)
        np.testing.assert_array_equal(
            table.table.gather(rows), before[f"{table.name}.embedding"].numpy()
        )


def test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one(data_dir, tmp_path):
    straight, model = _trainer(data_dir, tmp_path / "straight", save_steps=4)
    straight.train(20)
    expected = final_state(model)

    first, _ = _trainer(data_dir, tmp_path / "resumed", save_steps=4)
    first.train(10)  # saves at 4 and 8, and at the end (10)
    second, resumed_model = _trainer(data_dir, tmp_path / "resumed", save_steps=4)
    second.train(20)  # resumes from step 10
    assert second.global_step == 20
    actual = final_state(resumed_model)
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key


def test_training_arguments_from_the_command_line():
    parser = ArgumentParser()
    parser.add_arguments(TrainingArguments, dest="train_args")
    args = parser.parse_args(
        ["--train_steps", "7", "--mixed_precision", "bf16", "--output_dir", "x"]
    )
    assert args.train_args == TrainingArguments(
        train_steps=7, mixed_precision="bf16", output_dir="x"
    )
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        TrainingArguments(mixed_precision="fp8")
