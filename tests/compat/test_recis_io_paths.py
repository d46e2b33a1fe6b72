"""RecIS's ``recis.io.cuda_prefetch_dataset`` is the torch backend's pipeline prefetch module."""

from __future__ import annotations

import importlib

import pytest
import torch


def test_the_recis_path_is_the_backend_module_itself():
    from recis.io import cuda_prefetch_dataset

    backend = importlib.import_module("recis.backends.torch.cuda_prefetch")
    assert cuda_prefetch_dataset is backend
    assert importlib.import_module("recis.io.cuda_prefetch_dataset") is backend


def test_a_name_set_at_the_recis_path_reaches_the_code(monkeypatch):
    from recis.io import cuda_prefetch_dataset as prefetch

    monkeypatch.setattr(prefetch, "_MAX_COLLECT_DEPTH", 2)
    nested = [[torch.tensor([1])]]
    assert prefetch._holdables_of(nested)[0].tolist() == [1]
    with pytest.raises(ValueError, match="nesting limit"):
        prefetch._holdables_of([[[torch.tensor([1])]]])


def test_the_prefetch_iterator_at_the_recis_path_transforms_each_batch():
    from recis.io.cuda_prefetch_dataset import cuda_prefetch_iterator

    batches = cuda_prefetch_iterator(
        iter([torch.tensor([1.0]), torch.tensor([2.0])]), lambda b: b * 3
    )
    first = next(batches)
    batches.notify()
    second = next(batches)
    batches.close()
    assert (first.item(), second.item()) == (3.0, 6.0)
