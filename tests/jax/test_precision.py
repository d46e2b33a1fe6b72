"""Mixed precision on JAX: bf16 compute, fp16 with dynamic loss scaling, low-precision tables."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the JAX backend needs jax")
optax = pytest.importorskip("optax", reason="train steps use optax")
nnx = pytest.importorskip("flax.nnx", reason="the models are Flax NNX models")

import jax.numpy as jnp  # noqa: E402

from recis.backends.jax import (  # noqa: E402
    DynamicLossScale,
    Embedder,
    EmbeddingOption,
    Policy,
    SparseOptimizer,
    rules,
)
from recis.backends.jax.flax import SparseEmbedding, nnx_train_step  # noqa: E402
from recis.core.initializers import NormalInitializer  # noqa: E402

DIM, BATCH = 8, 32


class Model(nnx.Module):
    def __init__(self):
        option = EmbeddingOption(
            embedding_dim=DIM, shared_name="f", initializer=NormalInitializer(std=0.1)
        )
        self.embedding = SparseEmbedding({"f": option})
        self.hidden = nnx.Linear(DIM, 16, rngs=nnx.Rngs(0))
        self.out = nnx.Linear(16, 1, rngs=nnx.Rngs(1))
        self.seen_dtypes: list = []

    def __call__(self, batch):
        x = self.embedding(batch)["f"]
        self.seen_dtypes.append((x.dtype, self.hidden.kernel.dtype))
        return self.out(jax.nn.relu(self.hidden(x)))[:, 0]


def _loss(model, batch):
    return optax.sigmoid_binary_cross_entropy(model(batch), batch["label"])


def _batches(steps, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        ids = rng.integers(0, 40, (BATCH, 2))
        yield {"f": ids, "label": (ids[:, 0] % 2).astype(np.float32)}


def _train(steps, **kwargs):
    model = Model()
    sparse = SparseOptimizer(model.embedding, rules.Adagrad(), 0.1)
    step = nnx_train_step(model, _loss, optax.adam(1e-2), sparse, **kwargs)
    outputs = [step(batch) for batch in _batches(steps)]
    return model, step, outputs


def test_bf16_policy_computes_in_bfloat16_and_keeps_float32_state():
    model, step, outputs = _train(40, policy=Policy.bf16())
    assert model.seen_dtypes == [(jnp.bfloat16, jnp.bfloat16)]  # one trace, bf16 inside
    assert outputs[-1].embedding_grads["f"].dtype == jnp.float32
    assert {leaf.dtype for leaf in jax.tree.leaves(step.params)} == {jnp.dtype("float32")}
    _, _, reference = _train(40)
    ours, theirs = (np.mean([float(o.loss) for o in out[-10:]]) for out in (outputs, reference))
    assert ours == pytest.approx(theirs, abs=0.02)
    assert ours < 0.5  # it learned something (log 2 = 0.69 at the start)
    assert [float(o.loss) for o in outputs] != [float(o.loss) for o in reference]


def test_fp16_loss_scaling_skips_overflowing_steps_and_adapts_the_scale():
    model = Model()
    table = model.embedding.tables["f"]
    sparse = SparseOptimizer(model.embedding, rules.Adagrad(), 0.1)
    scale = DynamicLossScale.create(initial_scale=2.0**24, growth_interval=3)
    step = nnx_train_step(
        model, _loss, optax.adam(1e-2), sparse, policy=Policy.fp16(), loss_scale=scale
    )
    skipped = grown = good = 0
    for batch in _batches(30, seed=1):
        old_ids = table.state_dict()["id"]
        before = (nnx.state(model, nnx.Param), table.gather(table.find(old_ids)))
        scale_before = float(step.loss_scale.scale)
        applied = step(batch).applied
        scale_after = float(step.loss_scale.scale)
        after = (nnx.state(model, nnx.Param), table.gather(table.find(old_ids)))
        if not applied:
            skipped += 1
            good = 0
            assert scale_after == scale_before / 2
            jax.tree.map(np.testing.assert_array_equal, before, after)
            continue
        good += 1
        if good == 3:
            grown += 1
            good = 0
            assert scale_after == 2 * scale_before
        else:
            assert scale_after == scale_before
        assert not np.array_equal(before[1], after[1])
    assert skipped >= 3 and grown >= 2  # 2**24 overflows fp16; the scale grows back later
    assert model.seen_dtypes[0] == (jnp.float16, jnp.float16)


def test_dynamic_loss_scale_halves_to_its_floor_and_doubles_after_good_steps():
    scale = DynamicLossScale.create(initial_scale=4.0, growth_interval=2, min_scale=1.0)
    history = []
    for finite in (False, False, False, True, True, True, True):
        scale = scale.adjust(jnp.asarray(finite))
        history.append(float(scale.scale))
    assert history == [2.0, 1.0, 1.0, 1.0, 2.0, 2.0, 4.0]
    assert float(scale.scale_loss(jnp.asarray(0.5))) == 2.0
    assert float(scale.unscale({"g": jnp.asarray(8.0, jnp.float16)})["g"]) == 2.0
    with pytest.raises(ValueError, match="factor > 1"):
        DynamicLossScale.create(factor=1.0)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_tables_match_the_torch_backend(dtype):
    torch = pytest.importorskip("torch", reason="the torch backend is the reference")
    from recis import nn as recis_nn
    from recis.optim import SparseAdagrad

    init = NormalInitializer(std=0.1)
    embedder = Embedder(
        {"f": EmbeddingOption(embedding_dim=4, shared_name="f", dtype=dtype, initializer=init)}
    )
    engine = recis_nn.EmbeddingEngine(
        {"f": recis_nn.EmbeddingOption(
            embedding_dim=4, shared_name="f", dtype=getattr(torch, dtype), initializer=init
        )}
    )  # fmt: skip
    ours = SparseOptimizer(embedder, rules.Adagrad(), 0.1)
    theirs = SparseAdagrad(recis_nn.filter_out_sparse_param(engine), lr=0.1)
    rng = np.random.default_rng(4)
    for _ in range(3):
        ids = rng.integers(0, 9, (6, 2))
        grad = rng.normal(size=(6, 4)).astype(np.float32)
        out, context = embedder.lookup({"f": ids})
        embedder.apply_gradients(context, {"f": grad})
        ours.step()
        reference = engine({"f": torch.from_numpy(ids)})["f"]
        (reference * torch.from_numpy(grad)).sum().backward()
        theirs.step()
        np.testing.assert_array_equal(out["f"], reference.detach().numpy())
    ours_state = embedder.tables["f"].state_dict()
    theirs_state = engine.tables["0"].table.state_dict()
    assert ours_state["embedding"].dtype == np.dtype(jnp.dtype(dtype))
    for field in ("id", "embedding", "sum"):
        np.testing.assert_array_equal(ours_state[field], theirs_state[field])


def test_the_jax_loss_scale_follows_the_torch_trainers_policy_step_for_step():
    from recis.framework.loss_scale import DynamicLossScale as HostLossScale
    from recis.framework.loss_scale import LossScalePolicy

    policy = LossScalePolicy(initial_scale=2.0**10, growth_interval=3, min_scale=4.0)
    host, device = HostLossScale(policy), DynamicLossScale.from_policy(policy)
    pattern = np.random.default_rng(0).random(60) < 0.7
    for finite in pattern:
        host.update(bool(finite))
        device = device.adjust(jnp.asarray(finite))
        assert (float(device.scale), int(device.good_steps)) == (host.scale, host.good_steps)
    assert DynamicLossScale.create().policy == LossScalePolicy()  # one set of defaults


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan, None])
def test_all_finite_finds_any_nan_or_infinity_in_any_leaf(dtype, bad):
    from recis.backends.jax.precision import all_finite

    rng = np.random.default_rng(0)
    leaves = [rng.standard_normal((64, 4)) * 1e3, rng.standard_normal(7)]
    if bad is not None:
        leaves[1][3] = bad
    tree = {"a": jnp.asarray(leaves[0], dtype), "b": [jnp.asarray(leaves[1], dtype)]}
    expected = all(np.isfinite(leaf).all() for leaf in leaves)
    assert bool(all_finite(tree)) is expected
    assert bool(jax.jit(all_finite)(tree)) is expected
