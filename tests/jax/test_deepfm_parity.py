"""A DeepFM trained on the JAX backend and on the torch backend ends in the same state.

Same batches (dense and ragged sparse inputs, merged and shared tables, a short last batch), the
same per-id initial rows (both use the engine's initializers) and the same initial dense weights
(copied from torch into the Flax model); after 20 steps the losses and every table's ids, rows
and optimizer slots agree to 1e-5 in float32.
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the JAX backend needs jax")
torch = pytest.importorskip("torch", reason="the torch backend is the reference")
optax = pytest.importorskip("optax", reason="the dense optimizer is optax's")
nnx = pytest.importorskip("flax.nnx", reason="the JAX model is a Flax NNX model")

import recis.backends.jax as recis_jax  # noqa: E402
from recis import nn as recis_nn  # noqa: E402
from recis import optim as recis_optim  # noqa: E402
from recis.backends.jax.flax import SparseEmbedding, nnx_train_step  # noqa: E402
from recis.backends.torch.ragged import RaggedTensor  # noqa: E402
from recis.core.initializers import UniformInitializer  # noqa: E402
from recis.core.ragged import Ragged  # noqa: E402

STEPS, BATCH, LAST_BATCH, DIM, NUM_DENSE, HIDDEN = 20, 16, 11, 4, 3, 8
SPARSE = ["user", "item", "city", "history"]  # history: ragged weighted mean over items
OPTIMIZERS = {  # name -> (torch sparse optimizer, engine rule, learning rate)
    "adam": (recis_optim.SparseAdam, recis_jax.rules.Adam(), 0.02),
    "adagrad": (recis_optim.SparseAdagrad, recis_jax.rules.Adagrad(), 0.1),
}


def _options(module):
    init = UniformInitializer(-0.1, 0.1)
    shared = {"user": "user", "item": "item", "city": "city", "history": "item"}
    return {
        f: module.EmbeddingOption(
            embedding_dim=DIM, shared_name=shared[f], initializer=init, seed=11,
            combiner="mean" if f == "history" else "sum",
        )
        for f in SPARSE
    }  # fmt: skip


def _batches():
    rng = np.random.default_rng(3)
    for step in range(STEPS):
        size = LAST_BATCH if step == STEPS - 1 else BATCH
        lengths = rng.integers(0, 4, size)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        yield {
            "user": rng.integers(0, 40, (size, 1)),
            "item": rng.integers(0, 30, (size, 1)) * 2**40,
            "city": rng.integers(-5, 5, (size, 1)),
            "history": (
                rng.integers(0, 30, offsets[-1]) * 2**40,
                offsets,
                rng.uniform(0.5, 2.0, offsets[-1]).astype(np.float32),
            ),
            "dense": rng.normal(size=(size, NUM_DENSE)).astype(np.float32),
            "label": rng.integers(0, 2, size).astype(np.float32),
        }


class TorchDeepFM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.engine = recis_nn.EmbeddingEngine(_options(recis_nn))
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(len(SPARSE) * DIM + NUM_DENSE, HIDDEN),
            torch.nn.ReLU(),
            torch.nn.Linear(HIDDEN, 1),
        )

    def forward(self, batch):
        inputs = {f: torch.from_numpy(batch[f]) for f in SPARSE[:-1]}
        values, offsets, weights = batch["history"]
        inputs["history"] = RaggedTensor(
            torch.from_numpy(values), [torch.from_numpy(offsets)], torch.from_numpy(weights)
        )
        out = self.engine(inputs)
        stacked = torch.stack([out[f] for f in SPARSE], dim=1)
        fm = 0.5 * (stacked.sum(1).pow(2) - stacked.pow(2).sum(1)).sum(1)
        dense = torch.from_numpy(batch["dense"])
        return self.mlp(torch.cat([stacked.flatten(1), dense], 1)).squeeze(1) + fm


class FlaxDeepFM(nnx.Module):
    def __init__(self, reference: TorchDeepFM):
        rngs = nnx.Rngs(0)
        self.embedding = SparseEmbedding(_options(recis_jax))
        self.hidden = nnx.Linear(len(SPARSE) * DIM + NUM_DENSE, HIDDEN, rngs=rngs)
        self.out = nnx.Linear(HIDDEN, 1, rngs=rngs)
        for ours, theirs in ((self.hidden, reference.mlp[0]), (self.out, reference.mlp[2])):
            ours.kernel[...] = jax.numpy.asarray(theirs.weight.detach().numpy().T)
            ours.bias[...] = jax.numpy.asarray(theirs.bias.detach().numpy())

    def __call__(self, batch):
        out = self.embedding(batch)
        stacked = jax.numpy.stack([out[f] for f in SPARSE], axis=1)
        fm = 0.5 * (stacked.sum(1) ** 2 - (stacked**2).sum(1)).sum(1)
        flat = jax.numpy.concatenate([stacked.reshape(stacked.shape[0], -1), batch["dense"]], 1)
        return self.out(jax.nn.relu(self.hidden(flat)))[:, 0] + fm


def _jax_batch(batch):
    values, offsets, weights = batch["history"]
    return {**batch, "history": Ragged(values, offsets, weights)}


def _train_torch(name):
    sparse_class, _, lr = OPTIMIZERS[name]
    model = TorchDeepFM()
    initial = TorchDeepFM()  # an untouched copy whose weights the Flax model starts from
    optimizers = [
        sparse_class(recis_nn.filter_out_sparse_param(model), lr=lr),
        torch.optim.Adam(model.mlp.parameters(), lr=0.01),
    ]
    losses = []
    for batch in _batches():
        for optimizer in optimizers:
            optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            model(batch), torch.from_numpy(batch["label"])
        )
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        losses.append(loss.item())
    tables = {t.name: t.table for t in model.engine.tables.values()}
    return initial, losses, tables


def _train_jax(name, reference):
    _, rule, lr = OPTIMIZERS[name]
    model = FlaxDeepFM(reference)

    def loss_fn(model, batch):
        return optax.sigmoid_binary_cross_entropy(model(batch), batch["label"])

    sparse = recis_jax.SparseOptimizer(model.embedding, rule, lr)
    step = nnx_train_step(model, loss_fn, optax.adam(0.01), sparse)
    losses = [float(step(_jax_batch(batch)).loss) for batch in _batches()]
    return losses, model.embedding.tables, step


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_deepfm_on_jax_matches_torch_after_20_steps(name):
    initial, torch_losses, torch_tables = _train_torch(name)
    jax_losses, jax_tables, step = _train_jax(name, initial)
    assert step.trace_count == 1  # the short last batch was padded to the first one's size
    np.testing.assert_allclose(jax_losses, torch_losses, rtol=0, atol=1e-5)
    assert torch_losses[-1] != torch_losses[0]
    assert list(jax_tables) == list(torch_tables) == ["item+2"]  # one merged physical table
    for table_name, table in jax_tables.items():
        ours, theirs = table.state_dict(), torch_tables[table_name].state_dict()
        assert sorted(ours) == sorted(theirs)
        for field in ("id", "tag", "row"):
            np.testing.assert_array_equal(ours[field], theirs[field])
        for field in ours.keys() - {"id", "tag", "row"}:
            np.testing.assert_allclose(ours[field], theirs[field], rtol=0, atol=1e-5, err_msg=field)
