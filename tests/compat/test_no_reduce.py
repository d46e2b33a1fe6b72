"""``EmbeddingOption(no_reduce=True)``: a feature's distinct ids' rows, uncombined."""

import torch

from recis.nn import EmbeddingEngine, EmbeddingOption
from recis.nn.initializers import ConstantInitializer
from recis.nn.modules.embedding import NoReduceEmbedding
from recis.optim import SparseSGD
from recis.ragged.tensor import RaggedTensor


def _engine(trainable=True):
    return EmbeddingEngine(
        {
            "seq": EmbeddingOption(
                embedding_dim=2,
                shared_name="items",
                no_reduce=True,
                trainable=trainable,
                initializer=ConstantInitializer(init_val=1.0),
            ),
            "user": EmbeddingOption(embedding_dim=2, shared_name="users"),
        }
    )


def test_rows_of_distinct_ids_with_their_reverse_index_and_offsets():
    engine = _engine()
    seq = RaggedTensor(torch.tensor([30, 10, 30, 20]), torch.tensor([0, 3, 4]))
    out = engine({"seq": seq, "user": torch.tensor([[1], [2]])})
    result = out["seq"]
    assert isinstance(result, NoReduceEmbedding)
    assert result.emb.shape == (3, 2) and result.emb.requires_grad
    assert result.reverse_index.tolist() == [2, 0, 2, 1]
    assert result.offsets.tolist() == [0, 3, 4]
    assert out["user"].shape == (2, 2)


def test_gradients_reach_each_distinct_row_once_summed():
    engine = _engine()
    optimizer = SparseSGD(
        {t.name: t for t in engine._ht.values() if "items" in t.children_names}, lr=1.0
    )
    seq = RaggedTensor(torch.tensor([30, 10, 30]), torch.tensor([0, 3]))
    result = engine({"seq": seq, "user": torch.tensor([[1]])})["seq"]
    result.emb[result.reverse_index].sum().backward()  # id 30 used twice, id 10 once
    optimizer.step()
    engine.eval()
    after = engine({"seq": seq, "user": torch.tensor([[1]])})["seq"]
    assert after.emb.tolist() == [[0.0, 0.0], [-1.0, -1.0]]  # ids 10 and 30


def test_frozen_feature_rows_carry_no_gradient():
    engine = _engine(trainable=False)
    seq = RaggedTensor(torch.tensor([5]), torch.tensor([0, 1]))
    result = engine({"seq": seq, "user": torch.tensor([[1]])})["seq"]
    assert not result.emb.requires_grad and result.emb.tolist() == [[1.0, 1.0]]
