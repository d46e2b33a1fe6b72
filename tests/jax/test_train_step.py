"""Train steps: one compilation per bucket, schedules, Flax NNX and Linen models, errors."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the JAX backend needs jax")
optax = pytest.importorskip("optax", reason="train steps use optax")
flax = pytest.importorskip("flax", reason="the layers are Flax modules")

import jax.numpy as jnp  # noqa: E402
from flax import linen, nnx  # noqa: E402

from recis.backends.jax import (  # noqa: E402
    BatchBuckets,
    Embedder,
    EmbeddingOption,
    SparseOptimizer,
    TrainStep,
    rules,
)
from recis.backends.jax.flax import (  # noqa: E402
    SparseEmbedding,
    SparseFeatures,
    linen_train_step,
    nnx_train_step,
)
from recis.backends.jax.misuse import TracedLookupError  # noqa: E402
from recis.core.initializers import NormalInitializer  # noqa: E402
from recis.core.ragged import Ragged  # noqa: E402

DIM = 4


def _options():
    init = NormalInitializer(std=0.1)
    return {
        "user": EmbeddingOption(embedding_dim=DIM, shared_name="user", initializer=init),
        "tags": EmbeddingOption(
            embedding_dim=DIM, shared_name="tags", initializer=init, combiner="mean"
        ),
    }


def _batch(rng, size):
    lengths = rng.integers(0, 3, size)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return {
        "user": rng.integers(0, 50, (size, 1)),
        "tags": Ragged(rng.integers(0, 9, offsets[-1]), offsets),
        "dense": rng.normal(size=(size, 2)).astype(np.float32),
        "label": rng.integers(0, 2, size).astype(np.float32),
    }


class NnxModel(nnx.Module):
    def __init__(self, seed=0):
        rngs = nnx.Rngs(seed)
        self.embedding = SparseEmbedding(_options())
        self.linear = nnx.Linear(2 * DIM + 2, 1, rngs=rngs)
        self.calls = nnx.BatchStat(jnp.zeros((), jnp.int32))

    def __call__(self, batch):
        out = self.embedding(batch)
        self.calls[...] += 1
        x = jnp.concatenate([out["user"], out["tags"], batch["dense"]], axis=1)
        return self.linear(x)[:, 0]


def _nnx_loss(model, batch):
    return optax.sigmoid_binary_cross_entropy(model(batch), batch["label"])


def test_one_compilation_for_a_fixed_batch_size_and_its_short_tail():
    model = NnxModel()
    step = nnx_train_step(
        model, _nnx_loss, optax.adam(1e-2), SparseOptimizer(model.embedding, rules.Adam(), 1e-2)
    )
    rng = np.random.default_rng(0)
    losses = [float(step(_batch(rng, size)).loss) for size in (16, 16, 16, 5, 16, 3)]
    assert step.trace_count == 1 and step.dense._cache_size() == 1
    assert all(np.isfinite(losses)) and len(set(losses)) == len(losses)
    assert int(model.calls[...]) == 6  # non-trainable state is threaded through the steps
    assert step.buckets.sizes == [16]
    step(_batch(rng, 20))  # a larger batch: one more compilation, then a new bucket
    assert step.trace_count == 2 and step.buckets.sizes == [16, 20]


def test_padded_samples_do_not_change_the_loss_or_the_update():
    rng = np.random.default_rng(1)
    batch = _batch(rng, 5)
    results = []
    for buckets in (BatchBuckets([5]), BatchBuckets([8])):
        model = NnxModel()
        sparse = SparseOptimizer(model.embedding, rules.SGD(), 0.5)
        step = nnx_train_step(model, _nnx_loss, optax.sgd(0.5), sparse, buckets=buckets)
        loss = float(step(batch).loss)
        (table,) = (t.state_dict() for t in model.embedding.tables.values())
        results.append((loss, model.linear.kernel[...], table["embedding"]))
    (loss5, kernel5, rows5), (loss8, kernel8, rows8) = results
    assert loss5 == pytest.approx(loss8, rel=1e-6)
    np.testing.assert_allclose(kernel5, kernel8, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(rows5, rows8, rtol=1e-5, atol=1e-7)


def test_optax_schedules_drive_the_sparse_learning_rate():
    embedder = Embedder({"f": EmbeddingOption(embedding_dim=1, shared_name="f")})
    schedule = optax.exponential_decay(1.0, transition_steps=1, decay_rate=0.5)
    optimizer = SparseOptimizer(embedder, rules.SGD(), schedule)
    for _ in range(3):
        _, context = embedder.lookup({"f": np.array([[7]])})
        embedder.apply_gradients(context, {"f": np.ones((1, 1), np.float32)})
        optimizer.step()
    out, _ = embedder.lookup({"f": np.array([[7]])}, train=False)
    assert float(out["f"][0, 0]) == pytest.approx(-(1.0 + 0.5 + 0.25))
    assert optimizer.count == 3 and optimizer.current_learning_rate() == pytest.approx(0.125)


def test_linen_and_nnx_models_train_alike():
    class LinenModel(linen.Module):
        embedder: Embedder

        @linen.compact
        def __call__(self, batch):
            out = SparseFeatures(self.embedder)(batch)
            x = jnp.concatenate([out["user"], out["tags"], batch["dense"]], axis=1)
            return linen.Dense(1)(x)[:, 0]

    nnx_model = NnxModel()
    linen_embedder = Embedder(_options())
    module = LinenModel(linen_embedder)
    kernel, bias = nnx_model.linear.kernel[...], nnx_model.linear.bias[...]
    variables = {"params": {"Dense_0": {"kernel": kernel, "bias": bias}}}

    def linen_loss(model, batch):
        return optax.sigmoid_binary_cross_entropy(model(batch), batch["label"])

    steps = [
        nnx_train_step(
            nnx_model, _nnx_loss, optax.adam(1e-2),
            SparseOptimizer(nnx_model.embedding, rules.Adagrad(), 0.1),
        ),
        linen_train_step(
            module, variables, linen_loss, optax.adam(1e-2),
            SparseOptimizer(linen_embedder, rules.Adagrad(), 0.1), [linen_embedder],
        ),
    ]  # fmt: skip
    rng = np.random.default_rng(2)
    for _ in range(4):
        batch = _batch(rng, 8)
        nnx_loss, linen_loss_value = (float(step(batch).loss) for step in steps)
        assert nnx_loss == pytest.approx(linen_loss_value, rel=1e-6)
    np.testing.assert_allclose(
        steps[1].params["Dense_0"]["kernel"], nnx_model.linear.kernel[...], rtol=1e-6
    )


def test_layers_look_ids_up_eagerly_for_evaluation_but_not_under_jit():
    model = NnxModel()
    rng = np.random.default_rng(3)
    batch = _batch(rng, 4)
    assert model(batch).shape == (4,)
    assert all(len(t) == 0 for t in model.embedding.tables.values())  # evaluation: no inserts
    with pytest.raises(TracedLookupError, match="inside a JAX transformation"):
        nnx.jit(lambda m, b: m(b))(
            model, {k: batch[k] for k in ("user", "dense")} | {"tags": batch["user"]}
        )


def test_train_step_errors():
    embedder = Embedder(_options())
    sparse = SparseOptimizer(embedder, rules.SGD(), 0.1)
    with pytest.raises(ValueError, match=r"features \['tags', 'user'\] are embedded by two"):
        TrainStep(lambda p, b: b["user"], {}, optax.sgd(0.1), sparse, [embedder, embedder])
    step = TrainStep(lambda p, b: b["label"], {}, optax.sgd(0.1), sparse, [embedder])
    batch = _batch(np.random.default_rng(4), 3)
    with pytest.raises(ValueError, match="different numbers of rows"):
        step({**batch, "label": np.zeros(4, np.float32)})


def test_has_aux_returns_the_losses_outputs_padded_to_the_bucket():
    model = NnxModel()

    def loss_and_logits(model, batch):
        logits = model(batch)
        return optax.sigmoid_binary_cross_entropy(logits, batch["label"]), logits

    sparse = SparseOptimizer(model.embedding, rules.SGD(), 0.1)
    step = nnx_train_step(model, loss_and_logits, optax.sgd(0.1), sparse, has_aux=True)
    rng = np.random.default_rng(5)
    assert step(_batch(rng, 8)).aux.shape == (8,)
    out = step(_batch(rng, 5))  # padded to the bucket of 8
    assert out.aux.shape == (8,) and step.trace_count == 1
    assert np.isfinite(np.asarray(out.aux)).all()
