"""Batches bound for the GPU, checked on the CPU: ``device="pin"`` packs batches straight into
the memory of the pinned allocator (no host copy), and ``"pin"``/``"cuda"`` fail at once, naming
the device, where torch sees no CUDA device. The GPU itself is tested in ``tests/gpu``."""

from __future__ import annotations

import numpy as np
import pytest
from io_helpers import make_dataset

from recis.core.ragged import Ragged
from recis.io.row_ops import gather_ranges

torch = pytest.importorskip("torch", reason="pinned batches are torch tensors")


def test_gather_ranges_writes_numeric_arrays_into_the_allocators_memory():
    made = []

    def allocate(shape, dtype):
        made.append(np.zeros(shape, dtype))
        return made[-1]

    ragged = Ragged(np.arange(5), np.array([0, 2, 5]), np.ones(5, np.float32))
    gathered = gather_ranges([(ragged, 1, 2), (ragged, 0, 1)], allocate)
    assert gathered.values.tolist() == [2, 3, 4, 0, 1] and gathered.offsets[0].tolist() == [0, 3, 5]
    assert {id(a) for a in made} == {
        id(gathered.values),
        id(gathered.offsets[0]),
        id(gathered.weights),
    }
    strings = np.array(["a", "b"], dtype=object)
    assert gather_ranges([(strings, 0, 2)], allocate).tolist() == ["a", "b"] and len(made) == 3


@pytest.fixture
def fake_pinned_memory(monkeypatch):
    """torch on this CPU pretending to pin memory; yields the data pointers it handed out."""
    handed_out = set()
    empty = torch.empty

    def pinned_empty(*args, pin_memory=False, **kwargs):
        tensor = empty(*args, **kwargs)
        if pin_memory:
            handed_out.add(tensor.data_ptr())
        return tensor

    monkeypatch.setattr(torch, "empty", pinned_empty)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.Tensor, "is_pinned", lambda self, *a: self.data_ptr() in handed_out)
    return handed_out


def test_pinned_batches_are_the_allocators_tensors_not_copies(fake_pinned_memory, shared_data):
    directory, total = shared_data("orc")
    pinned = make_dataset("orc", directory, batch_size=64, output="torch", device="pin")
    plain = make_dataset("orc", directory, batch_size=64, output="torch")
    rows = 0
    for [batch], [expected] in zip(pinned, plain, strict=True):
        assert batch.keys() == expected.keys()
        for name, value in batch.items():
            tensors = _tensors(value)
            for tensor, want in zip(tensors, _tensors(expected[name]), strict=True):
                assert tensor.data_ptr() in fake_pinned_memory, name
                assert torch.equal(tensor, want), name
        rows += len(batch["row"])
    assert rows == total


def _tensors(value) -> list:
    if isinstance(value, torch.Tensor):
        return [value]
    weight = [] if value.weight() is None else [value.weight()]
    return [value.values(), *value.offsets(), *weight]


@pytest.mark.parametrize("device", ["pin", "cuda"])
def test_gpu_devices_without_cuda_fail_at_the_first_batch(shared_data, device):
    if torch.cuda.is_available():
        pytest.skip("this checks the error raised where torch sees no CUDA device")
    directory, _ = shared_data("orc")
    dataset = make_dataset("orc", directory, batch_size=64, output="torch", device=device)
    with pytest.raises(RuntimeError, match=f"device='{device}' needs a CUDA device"):
        next(iter(dataset))
