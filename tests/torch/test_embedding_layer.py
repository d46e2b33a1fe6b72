"""Embedding layer behaviour: inputs, combiners, admission and eviction, errors."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from recis.backends.torch.initializers import NormalInitializer
from recis.backends.torch.ragged import RaggedTensor
from recis.hooks import HashTableFilterHook
from recis.nn import DynamicEmbedding, EmbeddingEngine, EmbeddingOption, HashTable
from recis.nn.hashtable_hook import AdmitHook, FilterHook
from recis.optim import SparseSGD

INIT = NormalInitializer(std=0.1)


def _option(**kwargs):
    return EmbeddingOption(embedding_dim=4, initializer=INIT, **kwargs)


def _ragged(values, offsets, weight=None):
    weight = None if weight is None else torch.tensor(weight)
    return RaggedTensor(torch.tensor(values), [torch.tensor(offsets)], weight)


def test_hashtable_rows_follow_ids_and_gradients_reach_the_optimizer():
    table = HashTable([-1, 3], name="t", initializer=INIT)
    out = table(torch.tensor([[5, 6], [5, 5]]))
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[0, 0].detach(), out[1, 1].detach())
    optimizer = SparseSGD({"t": table}, lr=1.0)
    before = table(torch.tensor([5])).detach()
    out.sum().backward()
    optimizer.step()
    np.testing.assert_allclose(table(torch.tensor([5])).detach(), before - 3.0, rtol=1e-6)


def test_ragged_weights_are_honoured_by_dynamic_embedding():
    emb = DynamicEmbedding(_option(shared_name="w"))
    plain = emb(_ragged([1, 2], [0, 2])).detach()
    weighted = emb(_ragged([1, 2], [0, 2], [2.0, 0.0])).detach()
    single = emb(_ragged([1], [0, 1])).detach()
    np.testing.assert_allclose(weighted, 2 * single, rtol=1e-6)
    assert not torch.allclose(plain, weighted)


def test_dense_inputs_with_input_weights_and_tile_on_dense_is_flat():
    emb = DynamicEmbedding(
        _option(shared_name="d", combiner="tile", combiner_kwargs={"tile_len": 3})
    )
    out = emb(torch.tensor([[1, 2], [3, 3]]))
    assert out.shape == (2, 12)  # RecIS: [B, L * dim] for dense input
    assert out[0, 8:].abs().sum() == 0  # zero padding after the two ids
    mean = DynamicEmbedding(_option(shared_name="m", combiner="mean"))
    weights = torch.tensor([[1.0, 3.0]])
    rows = mean.hashtable(torch.tensor([7, 8])).detach()
    expected = (rows[0] + 3 * rows[1]) / 4
    np.testing.assert_allclose(
        mean(torch.tensor([[7, 8]]), weights)[0].detach(), expected, rtol=1e-6
    )


def test_padded_sequences_embed_per_position_and_unpadded_ones_are_rejected():
    engine = EmbeddingEngine({"seq": _option(shared_name="s")})
    sequence = RaggedTensor(
        torch.tensor([1, 2, 3]),
        [torch.tensor([0, 2, 4]), torch.tensor([0, 1, 1, 3, 3])],
        dense_shape=(2, 2, -1),
    )
    assert engine({"seq": sequence})["seq"].shape == (2, 2, 4)
    ragged_outer = RaggedTensor(
        torch.tensor([1, 2]), [torch.tensor([0, 1, 3]), torch.tensor([0, 1, 1, 2])]
    )
    with pytest.raises(ValueError, match=r"'seq': a ragged input with 2 levels must be padded"):
        engine({"seq": ragged_outer})


def test_engine_merges_tables_shares_rows_and_passes_other_inputs_through():
    engine = EmbeddingEngine(
        {
            "a": _option(shared_name="items"),
            "b": _option(shared_name="items", combiner="mean"),
            "c": _option(shared_name="users"),
            "d": EmbeddingOption(embedding_dim=2, shared_name="small"),
        }
    )
    assert len(engine.tables) == 2
    batch = {
        "a": torch.tensor([[4]]),
        "b": torch.tensor([[4]]),
        "c": torch.tensor([[4]]),
        "d": torch.tensor([[4]]),
        "dense": _ragged([1, 2], [0, 2]),
    }
    out = engine(batch)
    np.testing.assert_array_equal(out["a"].detach(), out["b"].detach())
    assert not torch.equal(out["a"], out["c"])  # same id, other logical table
    assert out["dense"].tolist() == [[1, 2]]
    assert engine.lookup_stats()["items+1"] == {"new": 2, "admitted": 2, "refused": 0, "evicted": 0}
    out = engine({"a": torch.tensor([[1]]), "b": torch.tensor([[1]]), "d": torch.tensor([[1]])})
    assert sorted(out) == ["a", "b", "d"]  # a missing feature is passed over, as in RecIS


def test_conflicting_options_for_one_shared_name_are_an_error():
    with pytest.raises(ValueError, match="shared_name 'x' is used by features with different"):
        EmbeddingEngine(
            {"a": _option(shared_name="x"), "b": EmbeddingOption(embedding_dim=8, shared_name="x")}
        )
    with pytest.raises(ValueError, match="tile combiner needs"):
        EmbeddingOption(combiner="tile")


def test_read_only_admission_drops_gradients_and_reads_zeros():
    engine = EmbeddingEngine({"f": _option(shared_name="ro", admit_hook=AdmitHook("ReadOnly"))})
    table = engine.tables["0"]
    table.table.find_or_insert(np.array([1]))
    optimizer = SparseSGD({"ro": table}, lr=1.0)
    out = engine({"f": torch.tensor([[1], [2]])})["f"]
    assert out[1].abs().sum() == 0
    before = table.table.gather(table.table.find(np.array([1])))
    out.sum().backward()
    optimizer.step()
    assert len(table.table) == 1
    np.testing.assert_allclose(table.table.gather(table.table.find(np.array([1]))), before - 1.0)
    assert engine.lookup_stats()["ro"]["refused"] == 1


def test_frequency_admission_through_the_engine():
    engine = EmbeddingEngine(
        {"f": _option(shared_name="freq", admit_hook=AdmitHook("Frequency", {"threshold": 2}))}
    )
    first = engine({"f": torch.tensor([[9]])})["f"]
    assert len(engine.tables["0"].table) == 0 and first.abs().sum() > 0  # reads its initial value
    second = engine({"f": torch.tensor([[9]])})["f"]
    assert len(engine.tables["0"].table) == 1
    np.testing.assert_array_equal(first.detach(), second.detach())


def test_global_step_filter_with_the_hook_and_lru_capacity():
    option = _option(
        shared_name="g", filter_hook=FilterHook("GlobalStepFilter", {"filter_step": 1})
    )
    engine = EmbeddingEngine({"f": option})
    table = engine.tables["0"]
    hook = HashTableFilterHook(filter_interval=2, tables=[table])
    for step, ids in enumerate([[1, 2], [2], [2]], start=1):
        engine({"f": torch.tensor([ids])})
        hook.after_step(global_step=step)
    assert sorted(table.table.ids.export().keys.tolist()) == [2] and hook.evicted == {"g": 1}

    lru = EmbeddingEngine(
        {"f": _option(shared_name="lru", filter_hook=FilterHook("LRU", {"max_size": 2}))}
    )
    for ids in ([1, 2], [1], [3]):
        lru({"f": torch.tensor([ids])})
    assert sorted(lru.tables["0"].table.ids.export().keys.tolist()) == [1, 3]
    assert lru.lookup_stats()["lru"]["evicted"] == 1


def test_untrainable_features_insert_ids_but_get_no_gradient():
    engine = EmbeddingEngine({"f": _option(shared_name="frozen", trainable=False)})
    out = engine({"f": torch.tensor([[3]])})["f"]
    assert not out.requires_grad and len(engine.tables["0"].table) == 1


def test_grad_reduce_by_id_averages_an_ids_occurrences():
    sums = HashTable([-1, 2], name="sum_grads")
    means = HashTable([-1, 2], name="mean_grads", grad_reduce_by="id")
    for table in (sums, means):
        table(torch.tensor([7, 7, 7, 8])).sum().backward()
    assert sums.table.grads.summed(1)[1].tolist() == [[3.0, 3.0], [1.0, 1.0]]
    assert means.table.grads.summed(1)[1].tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_evaluation_mode_never_inserts():
    engine = EmbeddingEngine({"f": _option(shared_name="ev")})
    engine.eval()
    out = engine({"f": torch.tensor([[3]])})["f"]
    assert len(engine.tables["0"].table) == 0 and out.abs().sum() == 0
    engine.train()
    with torch.no_grad():
        engine({"f": torch.tensor([[3]])})
    assert len(engine.tables["0"].table) == 0


def test_gpu_table_without_cupy_is_a_clear_error():
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed, so the table is created (tests/gpu covers GPU tables)")
    with pytest.raises(ImportError, match=r"HashTable 'gpu'.*needs the GPU engine.*recis\[cuda\]"):
        HashTable([-1, 2], name="gpu", device="cuda")
