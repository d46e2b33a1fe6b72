"""RecIS's pipeline prefetch on the CPU: ``cuda_prefetch_iterator`` in its three modes and the
helpers of ``recis.framework.pipeline_utils``."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from unittest import mock

import pytest
import torch

from recis.backends.torch import cuda_prefetch
from recis.backends.torch.cuda_prefetch import (
    StreamPriority,
    _holdables_of,
    cuda_prefetch_iterator,
)
from recis.framework import pipeline_utils
from recis.ragged.tensor import RaggedTensor

MODES = {
    "inline": {"enable_thread": False},
    "thread": {},
    "worker_fetch": {"fetch_in_thread": True},
}


class Source:
    def __init__(self, values, fail_at=None):
        self.values, self.fail_at, self.index, self.closed = list(values), fail_at, 0, 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.index == self.fail_at:
            raise ValueError("input failed")
        if self.index >= len(self.values):
            raise StopIteration
        self.index += 1
        return self.values[self.index - 1]

    def close(self):
        self.closed += 1


@pytest.fixture(autouse=True)
def short_gate(monkeypatch):
    monkeypatch.setattr(cuda_prefetch, "_GATE_FALLBACK_TIMEOUT", 0.05)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("notify", [False, True])
@pytest.mark.parametrize("lazy_start", [False, True])
def test_every_batch_is_transformed_once_in_order(mode, notify, lazy_start):
    calls = []

    def transform(raw):
        calls.append(raw)
        return {"x": torch.tensor([raw * 10])}

    source = Source(range(5))
    batches = cuda_prefetch_iterator(source, transform, lazy_start=lazy_start, **MODES[mode])
    seen = []
    for batch in batches:
        seen.append(int(batch["x"]))
        if notify:
            batches.notify()
    assert seen == [0, 10, 20, 30, 40] and calls == [0, 1, 2, 3, 4]
    assert batches._closed and source.closed == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("failure", ["input", "transform"])
def test_errors_reach_the_consumer_and_close(mode, failure):
    def transform(raw):
        if failure == "transform" and raw == 2:
            raise ValueError("transform failed")
        return raw

    source = Source(range(5), fail_at=2 if failure == "input" else None)
    batches = cuda_prefetch_iterator(source, transform, **MODES[mode])
    assert [next(batches), next(batches)] == [0, 1]
    with pytest.raises((ValueError, RuntimeError), match="failed") as caught:
        next(batches)
    error = caught.value if isinstance(caught.value, ValueError) else caught.value.__cause__
    assert str(error) == f"{failure} failed"
    assert batches._closed and source.closed == 1
    with pytest.raises(StopIteration):
        next(batches)


@pytest.mark.parametrize("mode", MODES)
def test_close_drops_queued_batches_and_holdables(mode):
    batches = cuda_prefetch_iterator(
        Source(range(9)), lambda raw: [torch.tensor(raw)], **MODES[mode]
    )
    first = next(batches)
    assert batches._prev_holdables == [first[0]]
    batches.close()
    batches.close()
    assert batches._prev_holdables is None and batches._input_iterator is None
    if mode != "inline":
        assert not batches._thread.is_alive() and batches._out_queue.empty()


def test_a_stuck_transform_makes_close_time_out_and_a_retry_succeed(monkeypatch):
    release, entered = threading.Event(), threading.Event()

    def transform(raw):
        if raw == 1:
            entered.set()
            release.wait(5)
        return raw

    batches = cuda_prefetch_iterator(Source(range(3)), transform)
    assert next(batches) == 0
    batches.notify()
    assert entered.wait(5)
    monkeypatch.setattr(cuda_prefetch, "_CLOSE_TIMEOUT", 0.05)
    with pytest.raises(TimeoutError, match="retry close"):
        batches.close()
    release.set()
    batches._thread.join(5)
    batches.close()
    assert batches._closed


def test_invalid_options():
    with pytest.raises(ValueError, match="enable_thread"):
        cuda_prefetch_iterator(iter([]), abs, enable_thread=False, fetch_in_thread=True)
    with pytest.raises(ValueError, match="buffer_size"):
        cuda_prefetch_iterator(iter([]), abs, buffer_size=0)
    assert [int(p) for p in StreamPriority] == [-2, -1, 0]


@dataclass
class Batch:
    ids: RaggedTensor
    label: torch.Tensor


def test_holdables_of_a_batch():
    ragged = RaggedTensor(torch.tensor([1, 2]), [torch.tensor([0, 2])])
    label = torch.tensor([1.0])
    assert _holdables_of({"b": Batch(ragged, label), "again": label}) == [
        ragged.values(),
        ragged.offsets()[0],
        label,
    ]


class WithStep(torch.nn.Module):
    def prefetch_step(self, data):
        return data * 2


def test_setup_pipeline_prefetch_finds_prefetch_step():
    model = torch.nn.Sequential(torch.nn.Linear(1, 1))
    model.add_module("other", WithStep())
    model.add_module("sparse", WithStep())
    assert pipeline_utils.resolve_prefetch_model(model) is model.sparse
    wrapper = mock.Mock(spec=["named_children", "module"])
    wrapper.named_children.return_value = []
    wrapper.module = model
    assert pipeline_utils.resolve_prefetch_model(wrapper) is model.sparse
    transform, size = pipeline_utils.setup_pipeline_prefetch(model, False, 3)
    assert size == 3 and transform((False, 4)) == (False, 8)
    assert pipeline_utils.setup_pipeline_prefetch(model, False, 0) == (None, 1)


def test_wrap_notify_and_close():
    transform, _ = pipeline_utils.setup_pipeline_prefetch(None, False, True, lambda x: x + 1)
    source = iter([(False, 1), (False, 2), (True, None)])
    batches = pipeline_utils.wrap_with_prefetch(source, transform)
    assert next(batches) == (False, 2)
    pipeline_utils.notify_prefetch(batches)
    assert next(batches) == (False, 3)
    pipeline_utils.close_prefetch(batches)
    assert batches._closed
    assert pipeline_utils.wrap_with_prefetch(source, None) is source
    with pytest.raises(ValueError, match="notify_position"):
        pipeline_utils.PrefetchArguments(notify_position="later")
