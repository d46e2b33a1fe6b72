"""The JAX front end's lookups and gradients against the torch front end, and zero-copy."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the JAX backend needs jax")
torch = pytest.importorskip("torch", reason="the torch front end is the reference")

import recis.backends.jax as recis_jax  # noqa: E402
import recis.embedding.embedder as jax_embedding  # noqa: E402
from recis import nn as recis_nn  # noqa: E402
from recis.backends.jax import BatchBuckets, Embedder, EmbeddingOption  # noqa: E402
from recis.backends.torch.ragged import RaggedTensor  # noqa: E402
from recis.core.initializers import NormalInitializer  # noqa: E402
from recis.core.ragged import Ragged  # noqa: E402
from recis.embedding.layout import feature_request, layout_run, pad_request  # noqa: E402
from recis.embedding.policy_hooks import AdmitHook, FilterHook  # noqa: E402

INIT = NormalInitializer(std=0.1)
BATCH = 5
# feature -> (option fields, input kind); kinds are built by _inputs
TILE3 = {"combiner": "tile", "combiner_kwargs": {"tile_len": 3}}
TILE2 = {"combiner": "tile", "combiner_kwargs": {"tile_len": 2}}
FEATURES = {
    "user": ({"shared_name": "user"}, "dense1"),
    "item": ({"shared_name": "item"}, "dense2"),
    "hist": ({"shared_name": "item", "combiner": "mean"}, "weighted"),
    "hist_plain": ({"shared_name": "item", "combiner": "mean", "use_weight": False}, "weighted"),
    "tags": ({"shared_name": "tag", **TILE3}, "ragged"),
    "flat_tags": ({"shared_name": "tag", **TILE2}, "dense2"),
    "seq": ({"shared_name": "seq"}, "sequence"),
    "bias": ({"shared_name": "bias", "embedding_dim": 1}, "ragged"),
    "avg": ({"shared_name": "avg", "grad_reduce_by": "id"}, "dense2"),
    "frozen": ({"shared_name": "frozen", "trainable": False}, "dense1"),
}


def _options(module, **extra):
    options = {}
    for feature, (fields, _) in FEATURES.items():
        fields = {"embedding_dim": 4, "initializer": INIT, "seed": 5, **fields, **extra}
        options[feature] = module.EmbeddingOption(**fields)
    return options


def _inputs(rng, batch=BATCH):
    """Each feature's input as engine arrays: ids, or (values, offsets, weights)."""
    inputs = {}
    for feature, (_, kind) in FEATURES.items():
        if kind.startswith("dense"):
            inputs[feature] = rng.integers(0, 6, (batch, int(kind[-1])))
        elif kind == "sequence":  # 2 positions per sample, each a list of ids
            lengths = rng.integers(0, 3, 2 * batch)
            inner = np.concatenate([[0], np.cumsum(lengths)])
            outer = np.arange(batch + 1) * 2
            inputs[feature] = (rng.integers(0, 6, inner[-1]), (outer, inner), None)
        else:
            lengths = rng.integers(0, 4, batch)
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            weights = rng.uniform(0.5, 2, offsets[-1]).astype(np.float32)
            values = rng.integers(-3, 3, offsets[-1]) * 10**15
            inputs[feature] = (values, (offsets,), weights if kind == "weighted" else None)
    return inputs


def _jax_batch(inputs):
    return {
        f: v if isinstance(v, np.ndarray) else Ragged(v[0], v[1], v[2]) for f, v in inputs.items()
    }


def _torch_batch(inputs):
    batch = {}
    for feature, value in inputs.items():
        if isinstance(value, np.ndarray):
            batch[feature] = torch.from_numpy(value)
            continue
        values, offsets, weights = value
        weights = None if weights is None else torch.from_numpy(weights)
        shape = (BATCH, 2, -1) if len(offsets) == 2 else None
        batch[feature] = RaggedTensor(
            torch.from_numpy(values), [torch.from_numpy(o) for o in offsets], weights, shape
        )
    return batch


def _grads(activations, rng):
    return {f: rng.normal(size=a.shape).astype(np.float32) for f, a in activations.items()}


def _torch_step(engine, batch, grads):
    out = engine(batch)
    loss = sum((out[f] * torch.from_numpy(g)).sum() for f, g in grads.items())
    loss.backward()
    return {f: out[f].detach().numpy() for f in grads}


def _table_state(tables):
    """Per table name: its ids/tags/rows and the gradients collected (cleared afterwards)."""
    state = {}
    for name, table in tables.items():
        rows, grads = table.grads.summed(1)
        table.grads.clear()
        state[name] = (table.state_dict(), rows, grads)
    return state


def _assert_same_tables(ours, theirs):
    assert sorted(ours) == sorted(theirs)
    for name in ours:
        (ours_export, ours_rows, ours_grads), (their_export, their_rows, their_grads) = (
            ours[name],
            theirs[name],
        )
        for field in ("id", "tag", "row", "embedding"):
            np.testing.assert_array_equal(ours_export[field], their_export[field], err_msg=name)
        np.testing.assert_array_equal(ours_rows, their_rows, err_msg=name)
        np.testing.assert_allclose(ours_grads, their_grads, rtol=1e-6, atol=1e-6, err_msg=name)


def test_lookups_and_gradients_match_the_torch_front_end_over_steps():
    embedder = Embedder(_options(recis_jax))
    engine = recis_nn.EmbeddingEngine(_options(recis_nn))
    torch_tables = {t.name: t.table for t in engine.tables.values()}
    assert sorted(embedder.tables) == sorted(torch_tables)
    # dim-4 tables merged, but for grad_reduce_by='id' and the frozen logical table (as RecIS)
    assert len(embedder.tables) == 4
    rng = np.random.default_rng(0)
    for _ in range(3):
        inputs = _inputs(rng)
        out, context = embedder.lookup(_jax_batch(inputs))
        grads = _grads(out, rng)
        embedder.apply_gradients(context, grads)
        reference = _torch_step(engine, _torch_batch(inputs), grads)
        for feature, expected in reference.items():
            assert out[feature].shape == expected.shape, feature
            np.testing.assert_allclose(
                out[feature], expected, rtol=1e-6, atol=1e-7, err_msg=feature
            )
        _assert_same_tables(_table_state(embedder.tables), _table_state(torch_tables))
        assert embedder.lookup_stats() == engine.lookup_stats()


def test_padding_adds_zero_samples_that_insert_nothing_and_take_no_gradient():
    options = _options(recis_jax)
    padded, plain = (
        Embedder(options),
        Embedder(_options(recis_jax)),
    )
    rng = np.random.default_rng(1)
    batch = _jax_batch(_inputs(rng))
    out, context = padded.lookup(batch, batch_size=8)
    reference, reference_context = plain.lookup(batch)
    for feature, value in out.items():
        assert value.shape == (8, *reference[feature].shape[1:])
        np.testing.assert_array_equal(value[:BATCH], reference[feature])
        assert not np.asarray(value[BATCH:]).any()
    grads = _grads(out, rng)
    padded.apply_gradients(context, grads)
    plain.apply_gradients(reference_context, {f: g[:BATCH] for f, g in grads.items()})
    _assert_same_tables(_table_state(padded.tables), _table_state(plain.tables))
    assert context.num_samples == BATCH and context.batch_size == 8


def test_activations_are_views_of_the_engine_output(monkeypatch):
    combined = []

    def recording(*args, **kwargs):
        combined.append(original(*args, **kwargs))
        return combined[-1]

    original = jax_embedding.segment_reduce
    monkeypatch.setattr(jax_embedding, "segment_reduce", recording)
    option = EmbeddingOption(embedding_dim=4, shared_name="t")
    embedder = Embedder({"a": option, "b": option, "c": option})
    out, _ = embedder.lookup({f: np.arange(3)[:, None] + i for i, f in enumerate("abc")})
    assert len(combined) == 1  # one combine call for the three features
    base, row_bytes = combined[0].ctypes.data, 4 * 4
    starts = [out[f].unsafe_buffer_pointer() - base for f in "abc"]
    assert starts == [0, 4 * row_bytes, 8 * row_bytes]  # 3 rows each, aligned to 64 bytes
    np.testing.assert_array_equal(out["b"], combined[0][4:7])


def test_ids_and_gradients_enter_the_engine_without_copies():
    with jax.enable_x64(True):
        ids = jax.numpy.asarray(np.array([[2**62, -(2**63)], [5, 5]]))
        request = feature_request("f", ids)
    assert request.ids.ctypes.data == ids.unsafe_buffer_pointer()
    grad = jax.numpy.ones((2, 4))
    layout = layout_run(["f"], {"f": request}, dim=4)
    assert layout.join({"f": grad}, (4,)).ctypes.data == grad.unsafe_buffer_pointer()


def test_ragged_inputs_pad_and_sequences_must_be_padded():
    ragged = Ragged(np.array([7, 8, 9]), np.array([0, 2, 2, 3]))
    request = pad_request(feature_request("r", ragged), 5)
    assert request.prefix == (5,) and request.offsets.tolist() == [0, 2, 2, 3, 3, 3]
    uneven = Ragged(np.array([1, 2]), (np.array([0, 1, 3]), np.array([0, 1, 1, 2])))
    with pytest.raises(ValueError, match="'s': a ragged input with 2 levels must be padded"):
        feature_request("s", uneven)
    with pytest.raises(TypeError, match="'x': expected integer ids"):
        feature_request("x", np.ones((2, 1), np.float32))
    with pytest.raises(ValueError, match="'r': batch of 3 rows does not fit the padded size 2"):
        Embedder({"r": EmbeddingOption(shared_name="r")}).lookup({"r": ragged}, batch_size=2)


def test_admission_and_eviction_match_the_torch_front_end():
    hooks = {
        "ro": {"admit_hook": AdmitHook("ReadOnly")},
        "freq": {"admit_hook": AdmitHook("Frequency", {"threshold": 2})},
        "lru": {"filter_hook": FilterHook("LRU", {"max_size": 3})},
    }
    jax_options = {
        f: EmbeddingOption(embedding_dim=2, shared_name=f, initializer=INIT, **h)
        for f, h in hooks.items()
    }
    torch_options = {
        f: recis_nn.EmbeddingOption(embedding_dim=2, shared_name=f, initializer=INIT, **h)
        for f, h in hooks.items()
    }
    embedder, engine = Embedder(jax_options), recis_nn.EmbeddingEngine(torch_options)
    torch_tables = {t.name: t.table for t in engine.tables.values()}
    embedder.tables["ro"].find_or_insert(np.array([1]))
    torch_tables["ro"].find_or_insert(np.array([1]))
    rng = np.random.default_rng(2)
    for _ in range(4):
        ids = {f: rng.integers(0, 6, (3, 1)) for f in hooks}
        out, context = embedder.lookup(ids)
        grads = _grads(out, rng)
        embedder.apply_gradients(context, grads)
        reference = _torch_step(engine, {f: torch.from_numpy(v) for f, v in ids.items()}, grads)
        for feature in hooks:
            np.testing.assert_allclose(out[feature], reference[feature], rtol=1e-6)
        assert embedder.lookup_stats() == engine.lookup_stats()
        _assert_same_tables(_table_state(embedder.tables), _table_state(torch_tables))
    assert len(embedder.tables["ro"]) == 1 and len(embedder.tables["lru"]) == 3
    assert embedder.tables["lru"].stats_total.evicted > 0
    assert embedder.tables["freq"].stats_total.refused > 0


def test_evaluation_lookups_insert_nothing_and_take_no_gradients():
    embedder = Embedder({"f": EmbeddingOption(shared_name="f", initializer=INIT)})
    out, context = embedder.lookup({"f": np.array([[3]])}, train=False)
    assert len(embedder.tables["f"]) == 0 and not np.asarray(out["f"]).any()
    with pytest.raises(ValueError, match="not a training lookup"):
        embedder.apply_gradients(context, {"f": np.ones((1, 16), np.float32)})
    out, context = embedder.lookup({"f": np.array([[3]])})
    embedder.apply_gradients(context, {"f": np.ones((1, 16), np.float32)})
    with pytest.raises(ValueError, match="were applied"):
        embedder.apply_gradients(context, {"f": np.ones((1, 16), np.float32)})


def test_errors_name_the_feature():
    embedder = Embedder(
        {"f": EmbeddingOption(shared_name="f"), "g": EmbeddingOption(shared_name="g")}
    )
    with pytest.raises(KeyError, match="no feature 'g'"):
        embedder.lookup({"f": np.array([[1]])})
    with pytest.raises(ValueError, match="different batch sizes"):
        embedder.lookup({"f": np.array([[1]]), "g": np.array([[1], [2]])})
    out, context = embedder.lookup({"f": np.array([[1]]), "g": np.array([[1]])})
    with pytest.raises(KeyError, match="no gradient for feature 'g'"):
        embedder.apply_gradients(context, {"f": out["f"]})
    with pytest.raises(ValueError, match=r"'f': gradient of shape \(2, 16\)"):
        embedder.apply_gradients(context, {"f": np.ones((2, 16), np.float32), "g": out["g"]})
    with pytest.raises(TypeError, match=r"expected a recis\.backends\.jax EmbeddingOption"):
        Embedder({"t": recis_nn.EmbeddingOption()})
    with pytest.raises(ValueError, match="shared_name 'x' is used by features with different"):
        Embedder(
            {
                "a": EmbeddingOption(shared_name="x"),
                "b": EmbeddingOption(embedding_dim=8, shared_name="x"),
            }
        )
    with pytest.raises(TypeError, match="dtype must be float32, float16 or bfloat16"):
        EmbeddingOption(dtype=np.int32)


def test_batch_buckets_fixed_sizes_and_adaptive():
    assert [BatchBuckets([8, 32])(n) for n in (1, 8, 9, 32)] == [8, 8, 32, 32]
    with pytest.raises(ValueError, match="exceeds the largest bucket 32"):
        BatchBuckets([8, 32])(33)
    adaptive = BatchBuckets()
    assert [adaptive(n) for n in (100, 7, 100, 300, 200)] == [100, 100, 100, 300, 300]
