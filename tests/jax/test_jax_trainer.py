"""JAX Trainer: exact step counts, hooks, accumulation, evaluation, mixed precision, exact resume,
model bank, and hash tables shared with the torch front end's checkpoints."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the JAX backend needs jax")
optax = pytest.importorskip("optax", reason="the trainer's dense optimizer is optax's")
nnx = pytest.importorskip("flax.nnx", reason="the trainer trains Flax NNX models")

import jax.numpy as jnp  # noqa: E402
from jax_trainer_helpers import (  # noqa: E402
    COLUMNS,
    TinyModel,
    build,
    dataset,
    embedding_options,
    final_state,
    make_data,
)

from recis.backends.jax import SparseOptimizer, rules  # noqa: E402
from recis.backends.jax.named_arrays import named_arrays  # noqa: E402
from recis.backends.jax.trainer import Trainer, TrainingArguments  # noqa: E402
from recis.checkpoint import Checkpoint  # noqa: E402
from recis.hooks.hook import Hook  # noqa: E402

BATCHES_PER_EPOCH = 2000 // 64 + 1  # the last batch is partial


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_data(str(tmp_path_factory.mktemp("data")))


class Recorder(Hook):
    """Records every hook call, the metrics of each step, and keeps a JSON-able state."""

    def __init__(self):
        self.calls, self.metrics = [], []

    def __getattribute__(self, name):
        if name.startswith(("before_", "after_")) or name == "end":
            calls = object.__getattribute__(self, "calls")
            return lambda *args: (
                calls.append(name) or (name == "after_step" and self.metrics.append(args[0]))
            )
        return object.__getattribute__(self, name)

    def state_dict(self):
        return {"steps_seen": self.calls.count("after_step")}

    def load_state_dict(self, state):
        self.calls += ["after_step"] * state["steps_seen"]


def _table_states(trainer) -> dict:
    return {n: t.state_dict() for n, t in trainer.model.embedding.tables.items()}


def _assert_same(expected: dict, actual: dict) -> None:
    assert expected.keys() == actual.keys()
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


def test_train_runs_exactly_the_requested_steps_across_epochs_and_calls_every_hook(
    data_dir, tmp_path
):
    trainer = build(data_dir, tmp_path, save_steps=0)
    recorder = Recorder()
    trainer.add_hooks([recorder])
    trainer.train(40)  # 32 batches per epoch, so this crosses an epoch
    assert trainer.global_step == 40
    assert recorder.calls.count("after_step") == 40 and recorder.calls.count("before_step") == 40
    assert recorder.calls[0] == "before_train" and recorder.calls[-2:] == ["after_train", "end"]
    assert recorder.calls.count("before_epoch") == 2 and recorder.calls.count("after_epoch") == 1
    last = recorder.metrics[-1]
    assert {"loss", "auc", "epoch", "batch_size", "step_seconds"} <= set(last)
    assert last["epoch"] == 1 and last["batch_size"] == 64
    assert recorder.metrics[BATCHES_PER_EPOCH - 1]["batch_size"] == 2000 % 64
    assert trainer.train_step.trace_count == 1  # the short last batch was padded
    losses = [m["loss"] for m in recorder.metrics]
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    assert Checkpoint(tmp_path / "ckpt_40").metadata["step"] == 40  # the final save


def test_one_epoch_without_a_step_limit(data_dir, tmp_path):
    trainer = build(data_dir, tmp_path, save_steps=0, train_epoch=1)
    trainer.train()
    assert trainer.global_step == BATCHES_PER_EPOCH and trainer.epoch == 1


def test_gradient_accumulation_updates_every_n_steps(data_dir, tmp_path):
    trainer = build(data_dir, tmp_path, accumulation=2, save_steps=0)
    initial = named_arrays(trainer.train_step.params, "params")
    with pytest.warns(UserWarning, match="between gradient-accumulation boundaries"):
        trainer.train(1)  # the final save comes mid-accumulation
    _assert_same(initial, named_arrays(trainer.train_step.params, "params"))
    assert trainer.sparse_optimizer.state_dict()["tables"]["steps"] == {"C1+2": 0}
    trainer.train(6)
    assert trainer.sparse_optimizer.state_dict()["tables"]["steps"] == {"C1+2": 3}
    opt_state = trainer.train_step.opt_state
    assert int(opt_state.gradient_step) == 3 and int(opt_state.mini_step) == 0


def test_the_accumulation_of_both_optimizers_must_agree(data_dir, tmp_path):
    with pytest.raises(ValueError, match="multiple of gradient_accumulation_steps"):
        build(data_dir, tmp_path, accumulation=2, save_steps=3)
    model = TinyModel()
    args = TrainingArguments(output_dir=str(tmp_path), gradient_accumulation_steps=2)
    sparse = SparseOptimizer(model.embedding, rules.SGD(), 0.1)
    with pytest.raises(ValueError, match="accumulation_steps=2"):
        Trainer(model, args, sparse_optimizer=sparse)
    with pytest.raises(ValueError, match="needs a sparse_optimizer"):
        Trainer(model, TrainingArguments(output_dir=str(tmp_path)))


def test_evaluate_inserts_nothing_and_train_and_evaluate_alternates(data_dir, tmp_path):
    trainer = build(data_dir, tmp_path, save_steps=0)
    recorder = Recorder()
    trainer.add_hook(recorder)
    sizes = {n: len(t) for n, t in trainer.model.embedding.tables.items()}
    result = trainer.evaluate(eval_steps=3)
    assert result["steps"] == 3 and np.isfinite(result["loss"]) and 0 <= result["auc"] <= 1
    assert {n: len(t) for n, t in trainer.model.embedding.tables.items()} == sizes
    assert recorder.calls == ["before_evaluate", "after_evaluate"]
    results = trainer.train_and_evaluate(epochs=2, train_steps=5, eval_steps=2)
    assert trainer.global_step == 10 and [r["steps"] for r in results] == [2, 2]
    assert trainer.eval_step._forward._cache_size() == 1


def test_evaluation_switches_dropout_off(data_dir, tmp_path):
    trainer = build(data_dir, tmp_path, save_steps=0)
    batch = next(iter(dataset(data_dir, shuffle=False)))
    losses = {float(trainer.eval_step(batch)[0]) for _ in range(3)}
    assert len(losses) == 1  # no dropout noise, and the dropout stream is not advanced


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains(data_dir, tmp_path, precision):
    trainer = build(data_dir, tmp_path, save_steps=0, mixed_precision=precision)
    recorder = Recorder()
    trainer.add_hook(recorder)
    trainer.train(10)
    assert all(np.isfinite(m["loss"]) for m in recorder.metrics)
    assert trainer.evaluate(eval_steps=1)["auc"] >= 0
    if precision == "fp16":
        assert float(trainer.loss_scale.scale) == 2.0**16  # no overflow on this small problem


def test_fp16_overflow_skips_the_update_dense_and_sparse(data_dir, tmp_path):
    trainer = build(data_dir, tmp_path, save_steps=0, mixed_precision="fp16")
    trainer.train(2)
    before = final_state(trainer)
    step = trainer.train_step
    step.loss_scale = dataclasses.replace(step.loss_scale, scale=jnp.asarray(jnp.inf))
    trainer.train(5)
    assert int(step.loss_scale.good_steps) == 0
    after = final_state(trainer)
    for key in before:
        if not key.startswith("C1+2/"):  # new ids were still inserted: compared below
            np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    tables = trainer.model.embedding.tables["C1+2"]
    rows = tables.find(before["C1+2/id"], before["C1+2/tag"])
    np.testing.assert_array_equal(tables.gather(rows), before["C1+2/embedding"])


def test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one(data_dir, tmp_path):
    straight = build(data_dir, tmp_path / "straight", save_steps=4)
    straight.train(40)
    expected = final_state(straight)

    first = build(data_dir, tmp_path / "resumed", save_steps=4)
    first.add_hook(Recorder())
    first.train(34)  # saves at 4, 8, ..., 32 and at the end (34, after the epoch's short batch)
    second = build(data_dir, tmp_path / "resumed", save_steps=4)
    recorder = Recorder()
    second.add_hook(recorder)
    second.train(40)  # resumes from step 34
    assert second.global_step == 40 and second.epoch == 1
    assert recorder.calls.count("after_step") == 34 + 6  # the hook's state was restored
    assert second.train_step.trace_count == 1  # restored arrays reuse the compiled step
    _assert_same(expected, final_state(second))


def test_model_bank_warm_starts_the_parts_asked_for(data_dir, tmp_path):
    source = build(data_dir, tmp_path / "source", save_steps=0)
    source.train(6)
    bank = [{"path": str(tmp_path / "source"), "load": ["sparse", "dense"], "exclude": ["C3"]}]
    target = build(data_dir, tmp_path / "target", save_steps=0, model_bank=bank)
    target.restore()
    assert target.global_step == 0
    expected, actual = final_state(source), final_state(target)
    for key in (k for k in expected if k.startswith(("params/", "state/"))):
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)
    assert not np.array_equal(
        actual["opt_state/0/mu/out/bias"], expected["opt_state/0/mu/out/bias"]
    )
    (table,) = target.model.embedding.tables.values()
    loaded = table.ids.export()
    assert set(np.unique(loaded.tags)) == {0, 1}  # C1 and C2; C3 was excluded
    with pytest.raises(ValueError, match="unknown parts"):
        build(data_dir, tmp_path / "x", model_bank=[{"path": "p", "load": ["rows"]}]).restore()


def test_checkpoint_layout(data_dir, tmp_path):
    trainer = build(data_dir, tmp_path, save_steps=0)
    trainer.train(3)
    checkpoint = Checkpoint(tmp_path / "ckpt_3")
    metadata = checkpoint.metadata
    assert metadata["step"] == 3 and metadata["backend"] == "jax"
    assert metadata["io_state"]["dataset"] == trainer.train_dataset.state_dict()
    assert metadata["objects"]["trainer"] == {"epoch": 0, "epoch_steps": 3, "skipped_steps": 0}
    assert metadata["buckets"] == [64]
    assert metadata["sparse_optimizer"]["tables"]["steps"] == {"C1+2": 3}
    dense = checkpoint.index["dense"]
    assert {"params/hidden/kernel", "params/out/bias", "opt_state/0/count"} <= set(dense)
    assert {"state/dropout/rngs/key", "rng/numpy", "rng/python"} <= set(dense)
    assert set(checkpoint.logical) == set(COLUMNS)
    kernel = checkpoint.read_tensor("params/hidden/kernel")
    np.testing.assert_array_equal(kernel, trainer.model.hidden.kernel[...])
    json.dumps(metadata)  # plain JSON


def _torch_engine():
    from recis import nn as torch_nn

    return torch_nn.EmbeddingEngine(embedding_options(torch_nn))


def _train_torch_tables(engine, data_dir, steps: int):
    """A few sparse Adagrad steps of the torch engine on the data; returns its dataset."""
    from recis.optim import SparseAdagrad

    optimizer = SparseAdagrad(_torch_tables(engine), lr=0.05)
    data = dataset(data_dir, output="torch")
    for _, batch in zip(range(steps), data, strict=False):
        out = engine({c: batch[c] for c in COLUMNS})
        sum((out[c] * (c_index + 1)).sum() for c_index, c in enumerate(COLUMNS)).backward()
        optimizer.step()
        optimizer.zero_grad()
    return data


def _torch_tables(engine):
    from recis.nn import filter_out_sparse_param

    return filter_out_sparse_param(engine)


def test_tables_and_data_position_written_by_torch_load_into_jax(data_dir, tmp_path):
    torch = pytest.importorskip("torch", reason="the torch front end writes the checkpoint")
    from recis.backends.torch.checkpoint import CheckpointManager as TorchManager

    engine = _torch_engine()
    data = _train_torch_tables(engine, data_dir, steps=5)
    model = torch.nn.ModuleDict({"engine": engine})
    manager = TorchManager(tmp_path / "torch", model, dataset=data, save_steps=5)
    for _ in range(5):
        manager.step()  # saves ckpt_5
    parts = ["sparse", "sparse_opt", "extra", "io_state"]  # what a torch checkpoint offers
    bank = [{"path": str(tmp_path / "torch"), "load": parts, "strict": False}]
    trainer = build(data_dir, tmp_path / "jax", save_steps=0, model_bank=bank)
    trainer.restore()
    (torch_table,) = (t.table for t in _torch_tables(engine).values())
    (jax_table,) = trainer.model.embedding.tables.values()
    assert len(jax_table) == len(torch_table) > 0
    _assert_same(torch_table.state_dict(), jax_table.state_dict())
    assert trainer.train_dataset.state_dict() == data.state_dict()
    assert trainer.global_step == 5


def test_tables_and_data_position_written_by_jax_load_into_torch(data_dir, tmp_path):
    torch = pytest.importorskip("torch", reason="the torch front end reads the checkpoint")
    from recis.backends.torch.checkpoint import CheckpointManager as TorchManager

    trainer = build(data_dir, tmp_path / "jax", save_steps=0)
    trainer.train(5)
    engine = _torch_engine()
    data = dataset(data_dir, output="torch")
    manager = TorchManager(
        tmp_path / "torch", torch.nn.ModuleDict({"engine": engine}), dataset=data
    )
    manager.load_model_bank([{"path": str(tmp_path / "jax"), "load": ["sparse", "io_state"]}])
    (torch_table,) = (t.table for t in _torch_tables(engine).values())
    (jax_table,) = trainer.model.embedding.tables.values()
    state = jax_table.state_dict()
    loaded = torch_table.state_dict()
    for key in ("id", "tag", "row", "embedding"):
        np.testing.assert_array_equal(loaded[key], state[key], err_msg=key)
    assert data.state_dict() == trainer.train_dataset.state_dict()


PORTABLE = ["sparse", "sparse_opt", "io_state"]  # what a checkpoint of the other backend holds


def test_torch_checkpoint_resumes_in_jax_with_optimizer_counters_strictly(data_dir, tmp_path):
    torch = pytest.importorskip("torch", reason="the torch front end writes the checkpoint")
    from recis.backends.torch.checkpoint import CheckpointManager as TorchManager
    from recis.optim import SparseAdagrad

    engine = _torch_engine()
    optimizer = SparseAdagrad(_torch_tables(engine), lr=0.05)
    data = dataset(data_dir, output="torch")
    for _, batch in zip(range(3), data, strict=False):
        out = engine({c: batch[c] for c in COLUMNS})
        sum(out[c].sum() for c in COLUMNS).backward()
        optimizer.step()
    model = torch.nn.ModuleDict({"engine": engine})
    manager = TorchManager(tmp_path / "torch", model, dataset=data, sparse_optimizer=optimizer)
    manager.save()
    trainer = build(data_dir, tmp_path / "jax", save_steps=0)
    trainer.checkpoint_manager.load(
        Checkpoint(tmp_path / "torch" / "ckpt_0"), PORTABLE, (), strict=True
    )
    jax_optimizer = trainer.train_step.sparse_optimizer
    assert jax_optimizer.state_dict()["tables"] == optimizer.core.state_dict()["tables"]
    assert jax_optimizer.state_dict()["tables"]["steps"] == {"C1+2": 3}
    (jax_table,) = trainer.model.embedding.tables.values()
    _assert_same(optimizer.core.tables[0].state_dict(), jax_table.state_dict())


def test_jax_checkpoint_resumes_in_torch_with_optimizer_counters_strictly(data_dir, tmp_path):
    torch = pytest.importorskip("torch", reason="the torch front end reads the checkpoint")
    from recis.backends.torch.checkpoint import CheckpointManager as TorchManager
    from recis.optim import SparseAdagrad

    trainer = build(data_dir, tmp_path / "jax", save_steps=0)
    trainer.train(4)
    engine = _torch_engine()
    optimizer = SparseAdagrad(_torch_tables(engine), lr=0.05)
    data = dataset(data_dir, output="torch")
    manager = TorchManager(
        tmp_path / "torch", torch.nn.ModuleDict({"engine": engine}), dataset=data,
        sparse_optimizer=optimizer,
    )  # fmt: skip
    manager.load(Checkpoint(tmp_path / "jax" / "ckpt_4"), PORTABLE, (), strict=True)
    jax_state = trainer.train_step.sparse_optimizer.state_dict()
    assert optimizer.core.state_dict()["tables"] == jax_state["tables"]
    assert jax_state["tables"]["steps"] == {"C1+2": 4}
    assert optimizer.param_groups[0]["lr"] == 0.05  # the torch optimizer's own
    (jax_table,) = trainer.model.embedding.tables.values()
    _assert_same(jax_table.state_dict(), optimizer.core.tables[0].state_dict())
    assert data.state_dict() == trainer.train_dataset.state_dict()


def test_the_jax_trainer_and_its_hooks_import_no_torch():
    code = (
        "import sys, recis.backends.jax.trainer, recis.hooks.plot_hook, "
        "recis.hooks.tensorboard_hook; print(sorted(m for m in sys.modules if m == 'torch'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
