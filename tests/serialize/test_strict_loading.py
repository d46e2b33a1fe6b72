"""Strict loading is strict both ways: tables the model lacks, and dtype changes (unless
``cast=True``), are errors."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from recis.checkpoint import Checkpoint, CheckpointError, load_tables, plan_load, save_tables
from recis.core.table import EmbeddingTable


def table(name: str, dtype=np.float32) -> EmbeddingTable:
    t = EmbeddingTable(name, dim=3, dtype=dtype)
    t.find_or_insert(np.arange(5))
    t.store.scatter(np.arange(5), np.full((5, 3), 1 / 3, np.float32))
    return t


def test_a_saved_table_the_model_lacks_is_an_error_under_strict(tmp_path):
    path = save_tables(tmp_path / "ckpt", {"a": table("a"), "b": table("b")})
    only_a = {"a": EmbeddingTable("a", dim=3)}
    with pytest.raises(CheckpointError, match=r"holds table 'b'.*no table given"):
        plan_load(Checkpoint(path), only_a)
    assert set(plan_load(Checkpoint(path), only_a, strict=False)) == {"a"}
    assert set(plan_load(Checkpoint(path), only_a, exclude=["b"])) == {"a"}


def test_a_dtype_change_needs_cast(tmp_path):
    path = save_tables(tmp_path / "ckpt", {"a": table("a")})
    bf16 = {"a": EmbeddingTable("a", dim=3, dtype=ml_dtypes.bfloat16)}
    with pytest.raises(CheckpointError, match=r"'embedding'.*float32.*bfloat16.*cast=True"):
        plan_load(Checkpoint(path), bf16)
    with pytest.raises(CheckpointError, match="cast=True"):
        plan_load(Checkpoint(path), bf16, strict=False)
    plan = plan_load(Checkpoint(path), bf16, cast=True)
    load_tables(Checkpoint(path), bf16, plan)
    rows = bf16["a"].find(np.arange(5))
    values = bf16["a"].gather(rows).astype(np.float32)
    np.testing.assert_array_equal(values, np.float32(1 / 3).astype(ml_dtypes.bfloat16))


def test_restore_refuses_a_checkpoint_with_a_table_the_model_lacks(tmp_path):
    import torch

    from recis.backends.torch.checkpoint import CheckpointManager
    from recis.nn import HashTable

    saved = torch.nn.ModuleDict(
        {"a": HashTable([-1, 2], name="a"), "b": HashTable([-1, 2], name="b")}
    )
    manager = CheckpointManager(tmp_path, saved)
    manager.save()
    smaller = torch.nn.ModuleDict({"a": HashTable([-1, 2], name="a")})
    with pytest.raises(CheckpointError, match="holds table 'b'"):
        CheckpointManager(tmp_path, smaller).restore()
    bank = [{"path": str(tmp_path), "exclude": ["b"], "load": ["sparse"]}]
    CheckpointManager(tmp_path / "other", smaller).load_model_bank(bank)
