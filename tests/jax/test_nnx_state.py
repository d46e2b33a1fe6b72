"""A Flax NNX model written as the Flax docs teach (nnx.Module, nnx.jit, nnx.value_and_grad,
nnx.Optimizer with optax) training with RecIS tables: tables as NNX state, orbax round trips,
clones, and the loud errors of misuse."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the JAX backend needs jax")
optax = pytest.importorskip("optax", reason="the dense optimizer is optax")
flax = pytest.importorskip("flax", reason="the model is a Flax NNX module")
ocp = pytest.importorskip("orbax.checkpoint", reason="checkpoints are written with orbax")

import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from recis.backends.jax import EmbeddingOption, SparseOptimizer, rules  # noqa: E402
from recis.backends.jax.flax import SparseEmbedding  # noqa: E402
from recis.backends.jax.misuse import TracedLookupError, UnappliedGradientsError  # noqa: E402
from recis.backends.jax.nnx_state import SparseTable  # noqa: E402
from recis.backends.jax.orbax import TablesRestore, TablesSave  # noqa: E402
from recis.checkpoint import Checkpoint  # noqa: E402
from recis.core.initializers import NormalInitializer  # noqa: E402
from recis.core.ragged import Ragged  # noqa: E402


class Model(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        init = NormalInitializer(std=0.1)
        self.embedding = SparseEmbedding(
            {
                "user": EmbeddingOption(embedding_dim=4, shared_name="user", initializer=init),
                "tags": EmbeddingOption(
                    embedding_dim=4,
                    shared_name="tags",
                    initializer=init,
                    combiner="mean",
                    seed=3,
                ),  # another seed: a physical table of its own
            }
        )
        self.linear = nnx.Linear(8, 1, rngs=rngs)

    def __call__(self, features):
        x = self.embedding(features)
        return self.linear(jnp.concatenate([x["user"], x["tags"]], axis=-1))[:, 0]


@nnx.jit
def train_step(model, optimizer, features, labels):
    def loss_fn(model, features):
        logits = model(features)
        return optax.sigmoid_binary_cross_entropy(logits, labels).mean()

    grad_fn = nnx.value_and_grad(loss_fn, argnums=(0, 1))
    loss, (grads, feature_grads) = grad_fn(model, features)
    optimizer.update(model, grads)
    return loss, feature_grads


SPARSE_RULES = {
    "engine rule": lambda tables: SparseOptimizer(tables, rules.Adam(), 0.05),
    "optax chain": lambda tables: SparseOptimizer(
        tables, optax.chain(optax.clip_by_global_norm(0.5), optax.adagrad(0.05))
    ),
}


def make(seed=0, sparse_rule="engine rule"):
    model = Model(nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    sparse = SPARSE_RULES[sparse_rule](model.embedding)
    return model, optimizer, sparse


def batches(count, size=16, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        lengths = rng.integers(0, 4, size)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        user = rng.integers(0, 40, (size, 1))
        out.append(
            {
                "user": user,
                "tags": Ragged(rng.integers(0, 12, offsets[-1]), offsets),
                "label": (user[:, 0] % 2).astype(np.float32),
            }
        )
    return out


def train(model, optimizer, sparse, data) -> list[float]:
    losses = []
    for batch in data:
        features, context = model.embedding.lookup(batch)
        loss, feature_grads = train_step(model, optimizer, features, batch["label"])
        model.embedding.apply_gradients(context, feature_grads)
        sparse.step()
        losses.append(float(loss))
    return losses


def table_states(model) -> dict:
    return {name: t.state_dict() for name, t in model.embedding.tables.items()}


def assert_same_tables(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].keys() == b[name].keys(), name
        for key in a[name]:
            assert np.array_equal(a[name][key], b[name][key]), (name, key)


def test_flax_model_learns_with_recis_tables():
    model, optimizer, sparse = make()
    losses = train(model, optimizer, sparse, batches(40))
    assert np.mean(losses[-5:]) < 0.6 * losses[0]  # ln 2 at first: the label is user parity
    assert len(model.embedding.tables["user"]) == 40
    saved = model.embedding.tables["user"].state_dict()
    assert set(saved) > {"id", "embedding"}  # Adam's slots beside the rows


def test_nnx_sees_the_tables_as_state(capsys):
    model, optimizer, sparse = make()
    train(model, optimizer, sparse, batches(2))
    tables = nnx.state(model, SparseTable)
    assert {k for k, _ in nnx.to_flat_state(tables)} == {
        ("embedding", "table_state", "user"),
        ("embedding", "table_state", "tags"),
    }
    assert tables["embedding"]["table_state"]["user"].table is model.embedding.tables["user"]
    graphdef, state = nnx.split(model)
    merged = nnx.merge(graphdef, state)
    assert merged.embedding.tables["user"] is model.embedding.tables["user"]  # no copy asked
    nnx.display(model)
    shown = capsys.readouterr().out
    assert "SparseTable" in shown and "EmbeddingTable('user', dim=4, ids=" in shown


def test_clone_copies_the_tables():
    model, optimizer, sparse = make()
    train(model, optimizer, sparse, batches(2))
    before = table_states(model)
    clone = nnx.clone(model)
    assert clone.embedding.tables["user"] is not model.embedding.tables["user"]
    assert_same_tables(table_states(clone), before)  # rows, slots and policy state
    clone_optimizer = nnx.Optimizer(clone, optax.adam(1e-2), wrt=nnx.Param)
    clone_sparse = SparseOptimizer(clone.embedding, rules.Adam(), 0.05)
    train(clone, clone_optimizer, clone_sparse, batches(2, seed=5))
    assert_same_tables(table_states(model), before)  # the original's tables are untouched
    assert len(clone.embedding.tables["user"]) > len(model.embedding.tables["user"])


@pytest.mark.parametrize("sparse_rule", sorted(SPARSE_RULES))
def test_orbax_round_trip_is_bit_identical(tmp_path, sparse_rule):
    data = batches(6, seed=1)
    model, optimizer, sparse = make(sparse_rule=sparse_rule)
    train(model, optimizer, sparse, data[:3])
    manager = ocp.CheckpointManager(tmp_path / "run")
    manager.save(
        3,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(nnx.state(model)),
            optimizer=ocp.args.StandardSave(nnx.state(optimizer)),
            tables=TablesSave(model, sparse),
        ),
    )
    manager.wait_until_finished()
    saved = Checkpoint(tmp_path / "run" / "3" / "tables" / "tables")
    assert sorted(saved.read_tensor("user/id").tolist()) == sorted(
        model.embedding.tables["user"].state_dict()["id"].tolist()
    )
    straight = train(model, optimizer, sparse, data[3:])

    again, again_optimizer, again_sparse = make(7, sparse_rule)  # other initial weights
    restored = manager.restore(
        manager.latest_step(),
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(nnx.state(again)),
            optimizer=ocp.args.StandardRestore(nnx.state(again_optimizer)),
            tables=TablesRestore(again, again_sparse),
        ),
    )
    nnx.update(again, restored.state)
    nnx.update(again_optimizer, restored.optimizer)
    resumed = train(again, again_optimizer, again_sparse, data[3:])

    assert resumed == straight
    assert_same_tables(table_states(again), table_states(model))
    for a, b in zip(
        jax.tree.leaves(nnx.state(again, nnx.Param)),
        jax.tree.leaves(nnx.state(model, nnx.Param)),
        strict=True,
    ):
        assert np.array_equal(a, b)


def test_raw_ids_inside_value_and_grad_are_a_named_error():
    model, _, _ = make()
    batch = batches(1)[0]

    def loss_fn(model):
        return optax.sigmoid_binary_cross_entropy(model(batch), batch["label"]).mean()

    with pytest.raises(TracedLookupError, match=r"embedding\.lookup"):
        nnx.value_and_grad(loss_fn)(model)
    with pytest.raises(TracedLookupError, match="inside a JAX transformation"):
        nnx.jit(lambda m, ids: m({"user": ids, "tags": batch["tags"]}))(model, batch["user"])
    assert all(len(t) == 0 for t in model.embedding.tables.values())
    assert model(batch).shape == (16,)  # eagerly, outside transformations: evaluation


def test_unapplied_gradients_are_a_named_error():
    model, optimizer, sparse = make()
    first, second = batches(2)
    _, context = model.embedding.lookup(first)
    with pytest.raises(UnappliedGradientsError, match="before the next training lookup"):
        model.embedding.lookup(second)
    with pytest.raises(UnappliedGradientsError, match="before the sparse optimizer's step"):
        sparse.step()
    model.embedding.lookup(second, train=False)  # evaluation lookups are fine
    model.embedding.embedder.discard(context)
    assert train(model, optimizer, sparse, [second])
