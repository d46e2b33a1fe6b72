"""Padded ids: dense ids with a mask or a declared padding id embed, train and count like the
Ragged of their real ids, and padding never reaches a table."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the JAX backend needs jax")

from recis.backends.jax import Embedder, EmbeddingOption, Padded  # noqa: E402
from recis.core.initializers import NormalInitializer  # noqa: E402
from recis.core.ragged import Ragged  # noqa: E402

PAD = -1
IDS = np.array([[3, PAD, 4], [PAD, PAD, PAD], [5, 3, PAD], [7, 7, 7]])
RAGGED = Ragged(np.array([3, 4, 5, 3, 7, 7, 7]), np.array([0, 2, 2, 4, 7]))


def embedder(combiner: str, padding_id=None) -> Embedder:
    option = EmbeddingOption(
        embedding_dim=3, shared_name="f", combiner=combiner, padding_id=padding_id,
        initializer=NormalInitializer(std=1.0), seed=4,
    )  # fmt: skip
    return Embedder({"f": option})


def lookup_and_train(emb: Embedder, value):
    out, context = emb.lookup({"f": value})
    grads = np.arange(out["f"].size, dtype=np.float32).reshape(out["f"].shape)
    emb.apply_gradients(context, {"f": grads})
    table = emb.tables["f"]
    rows, summed = table.grads.summed(1)
    ids = table.state_dict()["id"][np.argsort(table.state_dict()["row"])]
    return np.asarray(out["f"]), dict(zip(ids[rows].tolist(), summed.tolist(), strict=True))


@pytest.mark.parametrize("combiner", ["sum", "mean"])
@pytest.mark.parametrize("form", ["padding_id", "mask", "mask_and_padding_id"])
def test_padded_ids_match_the_ragged_of_their_real_ids(combiner, form):
    mask = IDS != PAD
    value = IDS if form == "padding_id" else Padded(np.where(mask, IDS, 99), mask)
    padding_id = None if form == "mask" else PAD
    if form == "mask_and_padding_id":
        value = Padded(IDS, np.ones(IDS.shape, bool))
    out, grads = lookup_and_train(embedder(combiner, padding_id), value)
    ragged_out, ragged_grads = lookup_and_train(embedder(combiner), RAGGED)
    np.testing.assert_array_equal(out, ragged_out)
    assert grads == ragged_grads
    assert sorted(grads) == [3, 4, 5, 7]  # neither -1 nor the masked 99 got a row
    assert not out[1].any()  # an all-padding sample embeds as zeros


def test_mean_counts_only_real_ids():
    emb = embedder("mean", PAD)
    out, _ = emb.lookup({"f": np.array([[3, PAD], [3, 3]])}, train=False)
    np.testing.assert_array_equal(np.asarray(out["f"])[0], np.asarray(out["f"])[1])


def test_a_mask_unlike_the_ids_names_the_feature():
    with pytest.raises(ValueError, match="feature 'f': the mask must be boolean and shaped"):
        embedder("sum").lookup({"f": Padded(IDS, np.ones((4, 2), bool))})
    with pytest.raises(ValueError, match="feature 'f': the mask must be boolean"):
        embedder("sum").lookup({"f": Padded(IDS, np.ones(IDS.shape, np.int32))})


def test_a_train_step_takes_padded_ids():
    import jax.numpy as jnp
    import optax

    from recis.backends.jax import SparseOptimizer, TrainStep, rules

    emb = embedder("mean")

    def loss_fn(params, batch):
        return (batch["f"] @ params["w"] - batch["y"]) ** 2

    sparse = SparseOptimizer(emb, rules.SGD(), 0.1)
    step = TrainStep(loss_fn, {"w": jnp.ones(3)}, optax.sgd(0.1), sparse, [emb])
    out = step({"f": Padded(IDS, IDS != PAD), "y": np.ones(4, np.float32)})
    assert out.applied and out.embedding_grads["f"].shape == (4, 3)
    assert sorted(emb.tables["f"].state_dict()["id"].tolist()) == [3, 4, 5, 7]
