"""The pure step: ``state, metrics = step(state, batch)`` over a donated state pytree, its dense
part under ``jit`` and ``scan``, and the one loss signature of the NNX, Linen and pytree steps."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the JAX backend needs jax")
optax = pytest.importorskip("optax", reason="train steps use optax")
flax = pytest.importorskip("flax", reason="the NNX step trains a Flax module")

import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from recis.backends.jax import Embedder, EmbeddingOption, SparseOptimizer, rules  # noqa: E402
from recis.backends.jax.flax import SparseEmbedding, nnx_train_step  # noqa: E402
from recis.backends.jax.misuse import TracedLookupError  # noqa: E402
from recis.backends.jax.train import PureStep, TrainState, TrainStep  # noqa: E402
from recis.core.initializers import NormalInitializer  # noqa: E402


def _embedder():
    init = NormalInitializer(std=0.1)
    return Embedder({"f": EmbeddingOption(embedding_dim=3, shared_name="f", initializer=init)})


def _loss(params, batch):
    return (batch["f"] @ params["w"] + params["b"] - batch["y"]) ** 2


def _batch(seed, size=6):
    rng = np.random.default_rng(seed)
    return {"f": rng.integers(0, 20, (size, 2)), "y": rng.normal(size=size).astype(np.float32)}


def _step(embedder, optimizer=None):
    sparse = SparseOptimizer(embedder, rules.Adagrad(), 0.1)
    return PureStep(_loss, optimizer or optax.adam(0.05), sparse, [embedder])


PARAMS = {"w": np.array([0.5, -0.5, 1.0], np.float32), "b": np.zeros((), np.float32)}


def test_the_state_is_a_pytree_of_dense_leaves_with_the_tables_as_handles():
    embedder = _embedder()
    step = _step(embedder)
    state = step.init(PARAMS)
    assert isinstance(state, TrainState)
    assert [h.table for h in state.tables] == list(embedder.tables.values())
    leaves = jax.tree.leaves(state)
    # w and b, Adam's count, mu and nu: nothing of the tables is a leaf
    assert len(leaves) == 2 + 1 + 2 + 2
    state, metrics = step(state, _batch(0))
    assert metrics.applied and np.isfinite(float(metrics.loss))
    assert len(embedder.tables["f"]) > 0


def test_the_step_donates_the_state_it_is_given_and_keeps_the_callers_params():
    params = jax.tree.map(jnp.asarray, PARAMS)
    step = _step(_embedder())
    state = step.init(params)
    new, _ = step(state, _batch(0))
    assert state.params["w"].is_deleted() and state.opt_state[0].mu["w"].is_deleted()
    assert not new.params["w"].is_deleted()
    assert not params["w"].is_deleted()  # init copied the caller's arrays
    assert not np.array_equal(np.asarray(new.params["w"]), PARAMS["w"])


def test_the_train_step_is_the_pure_step_on_a_held_state():
    batches = [_batch(seed) for seed in range(4)]
    pure = _step(_embedder())
    state = pure.init(PARAMS)
    pure_losses = []
    for batch in batches:
        state, metrics = pure(state, batch)
        pure_losses.append(float(metrics.loss))
    embedder = _embedder()
    held = TrainStep(_loss, PARAMS, optax.adam(0.05),
                     SparseOptimizer(embedder, rules.Adagrad(), 0.1), [embedder])  # fmt: skip
    held_losses = [float(held(batch).loss) for batch in batches]
    assert pure_losses == held_losses
    for name in PARAMS:
        assert np.array_equal(np.asarray(held.params[name]), np.asarray(state.params[name]))


def test_the_whole_step_under_jit_names_the_fix():
    step = _step(_embedder())
    state = step.init(PARAMS)
    batch = _batch(0)
    with pytest.raises(TracedLookupError, match="Look the ids up outside the transformation"):
        jax.jit(step)(state, {k: jnp.asarray(v) for k, v in batch.items()})


def test_the_dense_part_runs_under_scan_like_a_loop():
    """Several dense updates of looked-up activations: ``step.dense`` in a scan body gives the
    states and metrics of calling it in a loop."""
    embedder = _embedder()
    step = _step(embedder, optax.sgd(0.1))
    batch = _batch(1)
    activations, context = embedder.lookup(batch)
    embedder.discard(context)
    dense, count = {"y": jnp.asarray(batch["y"])}, jnp.asarray(6, jnp.int32)

    def body(state, _):
        state, metrics = step.dense(state, activations, dense, count)
        return state, metrics.loss

    scanned, scan_losses = jax.lax.scan(body, step.init(PARAMS), length=3)
    state, losses = step.init(PARAMS), []
    for _ in range(3):
        state, metrics = step.dense(state, activations, dense, count)
        losses.append(metrics.loss)
    np.testing.assert_allclose(np.asarray(scan_losses), np.asarray(losses), rtol=1e-6)
    np.testing.assert_allclose(scanned.params["w"], state.params["w"], rtol=1e-6)
    assert losses[2] < losses[0]


def test_a_state_of_other_tables_is_refused():
    step = _step(_embedder())
    other = _step(_embedder()).init(PARAMS)
    with pytest.raises(ValueError, match=r"the state holds the tables \['f'\], not those"):
        step(other, _batch(0))


def test_a_scalar_loss_names_the_per_example_convention():
    embedder = _embedder()
    sparse = SparseOptimizer(embedder, rules.SGD(), 0.1)
    step = PureStep(lambda p, b: _loss(p, b).mean(), optax.sgd(0.1), sparse, [embedder])
    with pytest.raises(ValueError, match="return the per-example losses"):
        step(step.init(PARAMS), _batch(0))


class Model(nnx.Module):
    def __init__(self):
        self.embedding = SparseEmbedding({"f": EmbeddingOption(3, shared_name="f")})
        self.linear = nnx.Linear(3, 1, rngs=nnx.Rngs(0))

    def __call__(self, batch):
        return self.linear(self.embedding(batch)["f"])[:, 0]


def test_the_nnx_step_trains_the_models_current_weights():
    """An edit of the model between steps is what the next step starts from."""

    def loss_fn(model, batch):
        return (model(batch) - batch["y"]) ** 2

    model = Model()
    step = nnx_train_step(model, loss_fn, optax.sgd(0.0),
                          SparseOptimizer(model.embedding, rules.SGD(), 0.0))  # fmt: skip
    step(_batch(0))
    model.linear.bias[...] = jnp.full((1,), 7.0)
    step(_batch(1))
    assert float(model.linear.bias[...][0]) == 7.0  # lr 0: the edit is kept, not overwritten
    assert float(step.params["linear"]["bias"][...][0]) == 7.0


def _moves(clip):
    """SGD with learning rate 1 for one step: the dense and the row updates (minus the
    gradients, clipped together when ``clip`` is given)."""
    embedder = _embedder()
    sparse = SparseOptimizer(embedder, rules.SGD(), 1.0)
    step = PureStep(_loss, optax.sgd(1.0), sparse, [embedder], clip_global_norm=clip)
    batch = _batch(5)
    state = step.init(PARAMS)
    ids = np.unique(batch["f"])[:, None]
    embedder.discard(embedder.lookup({"f": ids})[1])  # inserts the rows
    before = np.asarray(embedder.lookup({"f": ids}, train=False)[0]["f"])
    state, metrics = step(state, batch)
    after = np.asarray(embedder.lookup({"f": ids}, train=False)[0]["f"])
    dense = np.concatenate([np.ravel(state.params[k] - PARAMS[k]) for k in sorted(PARAMS)])
    return dense, after - before, metrics


def test_global_norm_clipping_spans_dense_and_sparse_gradients():
    dense, rows, _ = _moves(None)
    norm = np.sqrt((dense**2).sum() + (rows**2).sum())
    clipped_dense, clipped_rows, metrics = _moves(0.5 * norm)
    assert metrics.applied
    np.testing.assert_allclose(clipped_dense, dense * 0.5, rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(clipped_rows, rows * 0.5, rtol=2e-5, atol=1e-7)
    same_dense, same_rows, _ = _moves(2.0 * norm)  # under the limit: untouched
    np.testing.assert_allclose(same_dense, dense, rtol=1e-6)
    np.testing.assert_allclose(same_rows, rows, rtol=1e-6)


def test_global_norm_clipping_refuses_gradient_accumulation():
    embedder = _embedder()
    sparse = SparseOptimizer(embedder, rules.SGD(), 1.0, accumulation_steps=2)
    with pytest.raises(ValueError, match="one process without gradient accumulation"):
        PureStep(_loss, optax.sgd(1.0), sparse, [embedder], clip_global_norm=1.0)


def test_the_gradients_of_features_combined_in_one_call_reach_the_engine_without_a_copy(
    monkeypatch,
):
    """Features of one option are combined by one call; the dense step returns their
    gradients as one buffer laid out like its output, which the engine reads in place."""
    from recis.embedding import embedder as engine

    received = []

    def recording(grads, *args, **kwargs):
        received.append(grads)
        return original(grads, *args, **kwargs)

    original = engine.segment_reduce_backward
    monkeypatch.setattr(engine, "segment_reduce_backward", recording)
    option = EmbeddingOption(embedding_dim=4, shared_name="t")  # 3 rows: 48 bytes, gaps
    embedder = Embedder({"a": option, "b": option, "c": option})
    sparse = SparseOptimizer(embedder, rules.SGD(), 0.1)

    def loss_fn(params, batch):
        return (batch["a"] + 2 * batch["b"] - batch["c"]) @ params["w"]

    step = PureStep(loss_fn, optax.sgd(0.1), sparse, [embedder])
    state = step.init({"w": jnp.ones(4)})
    batch = {f: np.arange(3)[:, None] + i for i, f in enumerate("abc")}
    for _ in range(2):
        state, metrics = step(state, batch)
        (grads,) = received[-1:]
        assert grads.ctypes.data == metrics.embedding_grads["a"].ctypes.data
        assert grads[4:7].ctypes.data == metrics.embedding_grads["b"].ctypes.data
        # the mean loss of 3 samples: d/db = 2/3, d/dc = -1/3
        np.testing.assert_allclose(metrics.embedding_grads["b"], np.full((3, 4), 2 / 3))
        np.testing.assert_allclose(grads[8:11], np.full((3, 4), -1 / 3))


def test_the_activations_of_features_combined_in_one_call_reach_jit_as_one_shared_buffer(
    monkeypatch,
):
    """The dense step gets one array per combine call, sharing the engine's output, and splits
    it into the features inside jit: same loss and gradients as with one array per feature."""
    from recis.backends.jax import train

    handed = []

    def recording(values, joined):
        out, kept = original(values, joined)
        handed.append((values, out, kept))
        return out, kept

    original = train.jax_activations
    monkeypatch.setattr(train, "jax_activations", recording)
    option = EmbeddingOption(embedding_dim=4, shared_name="t", initializer=NormalInitializer())
    losses = []
    for joinable in (True, False):
        embedder = Embedder({"a": option, "b": option, "c": option})
        sparse = SparseOptimizer(embedder, rules.SGD(), 0.1)

        def loss_fn(params, batch):
            return ((batch["a"] * batch["b"] - batch["c"]) @ params["w"]) ** 2

        step = PureStep(loss_fn, optax.sgd(0.1), sparse, [embedder])
        if not joinable:
            monkeypatch.setattr(step, "_joinable", lambda contexts: ())
        state = step.init({"w": jnp.ones(4)})
        batch = {f: np.arange(5)[:, None] + 3 * i for i, f in enumerate("abc")}
        run = []
        for _ in range(3):
            state, metrics = step(state, batch)
            run.append((float(metrics.loss), np.array(metrics.embedding_grads["c"])))
        losses.append(run)
        values, out, kept = handed[-1]
        if joinable:
            assert len(kept) == 1 and sorted(out) == ["a"]
            assert out["a"].unsafe_buffer_pointer() == values["a"].ctypes.data
            assert out["a"].shape[0] >= 15 and np.shares_memory(values["c"], np.asarray(out["a"]))
        else:
            assert kept == () and sorted(out) == ["a", "b", "c"]
    for (joined_loss, joined_grad), (loss, grad) in zip(*losses, strict=True):
        assert joined_loss == loss
        np.testing.assert_array_equal(joined_grad, grad)
