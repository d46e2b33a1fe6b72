"""EmbeddingEngine passes over configured features that a batch lacks, as RecIS does."""

import logging

import torch

from recis.nn import EmbeddingEngine, EmbeddingOption
from recis.nn.initializers import ConstantInitializer
from recis.ragged.tensor import RaggedTensor


def engine():
    ones = ConstantInitializer(1.0)
    return EmbeddingEngine(
        {
            "user": EmbeddingOption(embedding_dim=2, shared_name="user", initializer=ones),
            "item": EmbeddingOption(embedding_dim=2, shared_name="item", initializer=ones),
            "tag": EmbeddingOption(embedding_dim=3, shared_name="tag", combiner="mean"),
        }
    )


def test_a_missing_feature_has_no_output_and_the_others_are_right(caplog):
    module = engine()
    batch = {"user": torch.tensor([[1], [2]]), "label": torch.tensor([1.0, 0.0])}
    with caplog.at_level(logging.WARNING):
        out = module(batch)
        module(batch)
    assert sorted(out) == ["label", "user"]
    assert out["user"].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    missing = [r.getMessage() for r in caplog.records if "not in the batch" in r.getMessage()]
    assert len(missing) == 2 and "'item'" in missing[0] and "'tag'" in missing[1]  # once each


def test_gradients_reach_the_present_features_only():
    module = engine()
    out = module({"user": torch.tensor([[1], [2]])})
    (out["user"] * torch.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    tables = {table.name: table for table in module.tables.values()}
    user = next(t for name, t in tables.items() if "user" in t.children_names)
    grad = user.grad().to_dense()
    assert sorted(grad[grad.abs().sum(1) > 0].tolist()) == [[1.0, 2.0], [3.0, 4.0]]
    item_ids = [t.ids("item") for t in tables.values() if "item" in t.children_names]
    assert item_ids[0].numel() == 0


def test_int8_strings_pass_through_ragged():
    strings = RaggedTensor(torch.tensor([1, 2], dtype=torch.int8), torch.tensor([0, 2]))
    out = engine()({"user": torch.tensor([[1]]), "raw": strings})
    assert out["raw"] is strings


def test_a_batch_without_any_configured_feature_passes_through():
    out = engine()({"label": torch.tensor([1.0])})
    assert list(out) == ["label"]
