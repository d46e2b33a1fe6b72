"""A step whose loss or gradients (dense or sparse) are not finite is never applied, on either
backend: raised as one unit, or skipped whole; no checkpoint holds non-finite weights."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax import nnx

from recis.backends.jax import EmbeddingOption as JaxOption
from recis.backends.jax import SparseOptimizer as JaxSparse
from recis.backends.jax import rules
from recis.backends.jax.flax import SparseEmbedding
from recis.backends.jax.trainer import Trainer as JaxTrainer
from recis.backends.torch.trainer import Trainer, TrainingArguments
from recis.checkpoint import Checkpoint, CheckpointError
from recis.core.errors import NonFiniteGradientError
from recis.nn import EmbeddingEngine, EmbeddingOption, filter_out_sparse_param
from recis.optim import SparseAdagrad

POISONED = 2  # the index of the batch with an infinite dense feature


def batches(n: int = 5) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        x = rng.normal(size=(4, 1)).astype(np.float32)
        if i == POISONED:
            x[1, 0] = np.inf  # dense gradients turn NaN; the sparse ones stay finite
        ids = rng.integers(0, 10, (4, 1))
        label = rng.integers(0, 2, 4).astype(np.float32)
        out.append({"f": ids, "x": x, "label": label})
    return out


class TorchModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.engine = EmbeddingEngine({"f": EmbeddingOption(embedding_dim=2, shared_name="f")})
        self.linear = torch.nn.Linear(3, 1)

    def forward(self, batch):
        emb = self.engine({"f": batch["f"]})["f"]
        logits = self.linear(torch.cat([emb, batch["x"]], 1)).squeeze(1)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["label"])


class JaxModel(nnx.Module):
    def __init__(self):
        self.embedding = SparseEmbedding({"f": JaxOption(2, shared_name="f")})
        self.linear = nnx.Linear(3, 1, rngs=nnx.Rngs(0))

    def __call__(self, batch):
        x = jnp.concatenate([self.embedding(batch)["f"], batch["x"]], axis=1)
        logits = self.linear(x)[:, 0]
        return optax.sigmoid_binary_cross_entropy(logits, batch["label"]), logits


def torch_trainer(output_dir, on_nonfinite: str):
    model = TorchModel()
    data = [{k: torch.from_numpy(v) for k, v in b.items()} for b in batches()]
    args = TrainingArguments(
        output_dir=str(output_dir), save_steps=1, max_to_keep=10, on_nonfinite=on_nonfinite
    )
    return Trainer(
        model, args, data, dense_optimizers=(torch.optim.Adam(model.parameters(), 0.1), None),
        sparse_optimizer=SparseAdagrad(filter_out_sparse_param(model), lr=0.1),
    )  # fmt: skip


def jax_trainer(output_dir, on_nonfinite: str):
    model = JaxModel()
    args = TrainingArguments(
        output_dir=str(output_dir), save_steps=1, max_to_keep=10, on_nonfinite=on_nonfinite
    )
    sparse = JaxSparse(model.embedding, rules.Adagrad(), 0.1)
    return JaxTrainer(
        model, args, batches(), dense_optimizer=optax.adam(0.1), sparse_optimizer=sparse
    )


def saved_arrays_finite(path) -> bool:
    checkpoint = Checkpoint(path)
    return all(
        np.isfinite(checkpoint.read_tensor(name).astype(np.float64)).all()
        for name in checkpoint.tensor_names()
        if checkpoint.tensor_info(name)["dtype"].startswith(("float", "bfloat"))
    )


@pytest.mark.parametrize("make", [torch_trainer, jax_trainer])
def test_raise_applies_nothing_of_the_step_and_saves_nothing_poisoned(tmp_path, make):
    trainer = make(tmp_path, "raise")
    with pytest.raises(NonFiniteGradientError, match=f"step {POISONED + 1}.*not applied"):
        trainer.train(5)
    assert trainer.global_step == POISONED
    assert trainer.checkpoint_manager.directory.names() == ["ckpt_1", "ckpt_2"]
    assert all(saved_arrays_finite(tmp_path / n) for n in ("ckpt_1", "ckpt_2"))
    resumed = make(tmp_path, "raise")
    resumed.restore()
    assert resumed.global_step == POISONED


@pytest.mark.parametrize("make", [torch_trainer, jax_trainer])
def test_skip_drops_the_whole_step_and_every_checkpoint_stays_finite(tmp_path, make):
    trainer = make(tmp_path, "skip")
    trainer.train(5)
    assert trainer.global_step == 5
    assert trainer.skipped_steps == 1
    names = trainer.checkpoint_manager.directory.names()
    assert names == [f"ckpt_{s}" for s in range(1, 6)]
    assert all(saved_arrays_finite(tmp_path / n) for n in names)


def test_a_checkpoint_is_never_written_from_non_finite_weights(tmp_path):
    trainer = torch_trainer(tmp_path, "raise")
    trainer.train(1)
    with torch.no_grad():
        trainer.model.linear.weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match=r"linear\.weight.*not finite"):
        trainer.checkpoint_manager.step()  # saves ckpt_2
    assert trainer.checkpoint_manager.directory.names() == ["ckpt_1"]
