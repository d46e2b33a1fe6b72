"""Mixed precision: low-precision table storage and autocast outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recis.backends.torch.initializers import NormalInitializer
from recis.nn import EmbeddingEngine, EmbeddingOption, filter_out_sparse_param
from recis.optim import SparseAdagrad


def _train(dtype, steps=150):
    engine = EmbeddingEngine(
        {
            "f": EmbeddingOption(
                embedding_dim=8,
                shared_name="f",
                dtype=dtype,
                initializer=NormalInitializer(std=0.1),
            )
        }
    )
    optimizer = SparseAdagrad(filter_out_sparse_param(engine), lr=0.1)
    rng = np.random.default_rng(0)
    truth = rng.normal(size=50)
    losses = []
    for _ in range(steps):
        ids = rng.integers(0, 50, (64, 3))
        labels = torch.from_numpy((truth[ids].sum(1) > 0).astype(np.float32))
        logits = engine({"f": torch.from_numpy(ids)})["f"].sum(1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    table = engine.tables["0"].table
    return np.mean(losses[-20:]), table.gather(table.find(np.arange(50)))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_storage_trains_like_float32(dtype):
    reference_loss, reference_rows = _train(torch.float32)
    loss, rows = _train(dtype)
    assert loss == pytest.approx(reference_loss, rel=0.03)
    assert reference_loss < 0.5  # it learned something
    np.testing.assert_allclose(rows, reference_rows, atol=0.05)
    assert not np.array_equal(rows, reference_rows)


def test_autocast_returns_the_autocast_dtype_and_float32_gradients():
    engine = EmbeddingEngine(
        {"f": EmbeddingOption(embedding_dim=4, shared_name="f", dtype=torch.bfloat16)}
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = engine({"f": torch.tensor([[1, 2]])})["f"]
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    table = engine.tables["0"].table
    _, grads = table.grads.summed(1)
    assert grads.dtype == np.float32 and grads.tolist() == [[1.0] * 4] * 2
    assert table.store.fields["embedding"].dtype.name == "bfloat16"
