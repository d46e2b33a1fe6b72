"""JAX training with storage tiers: a small RAM tier gives the same losses and tables, bit for
bit, as every row in RAM."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the JAX backend needs jax")
optax = pytest.importorskip("optax", reason="train steps use optax")
flax = pytest.importorskip("flax", reason="the layers are Flax modules")

import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from recis.backends.jax import EmbeddingOption, SparseOptimizer, rules  # noqa: E402
from recis.backends.jax.flax import SparseEmbedding, nnx_train_step  # noqa: E402
from recis.core.initializers import NormalInitializer  # noqa: E402
from recis.core.tiers import StorageTiers  # noqa: E402

DIM = 4


class Model(nnx.Module):
    def __init__(self, storage):
        init = NormalInitializer(std=0.1)
        options = {
            name: EmbeddingOption(
                embedding_dim=DIM, shared_name=name, initializer=init, storage=storage
            )
            for name in ("user", "item")
        }
        self.embedding = SparseEmbedding(options)
        self.linear = nnx.Linear(2 * DIM, 1, rngs=nnx.Rngs(0))

    def __call__(self, batch):
        out = self.embedding(batch)
        return self.linear(jnp.concatenate([out["user"], out["item"]], axis=1))[:, 0]


def _loss(model, batch):
    return optax.sigmoid_binary_cross_entropy(model(batch), batch["label"])


def _train(storage):
    model = Model(storage)
    sparse = SparseOptimizer(model.embedding, rules.Adam(), 1e-2)
    step = nnx_train_step(model, _loss, optax.adam(1e-2), sparse)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(15):
        batch = {
            "user": rng.integers(0, 60, (16, 1)),
            "item": rng.integers(0, 40, (16, 2)),
            "label": rng.integers(0, 2, 16).astype(np.float32),
        }
        losses.append(np.asarray(step(batch).loss))
    (table,) = model.embedding.tables.values()
    return losses, table


def test_a_small_ram_tier_trains_bit_identically_to_all_in_ram():
    ram_losses, in_ram = _train(None)
    tier_losses, tiered = _train(StorageTiers(ram_bytes=12 * 3 * DIM * 4))  # 12 rows of ~100
    assert len(tiered) > 8 * 12
    for a, b in zip(ram_losses, tier_losses, strict=True):
        np.testing.assert_array_equal(a, b)
    expected, state = in_ram.state_dict(), tiered.state_dict()
    assert state.keys() == expected.keys()
    for name, array in expected.items():
        np.testing.assert_array_equal(state[name], array, err_msg=name)
    stats = tiered.stats()["tiers"]
    assert stats["ram"]["rows"] <= 12 and stats["promotions"] > 0 and stats["demotions"] > 0
