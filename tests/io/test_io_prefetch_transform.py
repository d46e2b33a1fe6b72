"""``prefetch_transform``: the user's functions on a transform thread, ahead of the consumer.

The batches equal those of the consumer's thread, the functions run on one other thread and
finish the next batches while the consumer holds one, the state stays exact with batches
waiting in the transform queue, exceptions reach the consumer, and no thread outlives the
iterator."""

from __future__ import annotations

import contextlib
import gc
import threading
import time

import numpy as np
import pytest
from io_helpers import (
    assert_batches_equal,
    io_threads,
    make_dataset,
    rows_of,
    unwrap,
    wait_for_no_io_threads,
)

from recis.io import OrcDataset
from recis.io.prefetch import Prefetcher

EPOCHS = 2


def wait_for(condition, seconds: float = 5.0) -> bool:
    """Whether ``condition()`` became true within ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def first_row(batch) -> int:
    return int(unwrap(batch)["row"][0])


def all_batches(dataset) -> list:
    return [batch for _ in range(EPOCHS) for batch in dataset]


def with_functions(dataset):
    """A map, a filter that drops some batches, and a transform (pure functions)."""
    dataset.map(lambda batch: unwrap(batch) | {"row": unwrap(batch)["row"] * 10})
    dataset.filter(lambda batch: first_row(batch) % 3 == 0)
    return dataset


def ids_total(batch: dict) -> dict:
    return batch | {"ids_total": np.array([batch["ids"].values.sum()])}


EQUAL_CONFIGS = {
    "orc-prefetch-2-transform-2": dict(
        fmt="orc", read_threads_num=2, prefetch=2, prefetch_transform=2
    ),
    "parquet-no-prefetch-transform-1": dict(
        fmt="parquet", batch_size=50, prefetch=0, prefetch_transform=1
    ),
    "orc-shuffle-drop-transform-3": dict(
        fmt="orc", batch_size=40, prefetch=1, prefetch_transform=3, shuffle=True,
        shuffle_buffer_size=100, seed=5, drop_remainder=True,
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", EQUAL_CONFIGS)
def test_batches_equal_those_made_on_the_consumers_thread(name, shared_data):
    config = dict(EQUAL_CONFIGS[name])
    fmt = config.pop("fmt")
    directory, _ = shared_data(fmt)
    on_thread = with_functions(make_dataset(fmt, directory, transform_fn=ids_total, **config))
    config["prefetch_transform"] = 0
    inline = with_functions(make_dataset(fmt, directory, transform_fn=ids_total, **config))
    got, want = all_batches(on_thread), all_batches(inline)
    assert len(want) > 5 and "ids_total" in want[0]
    assert_batches_equal(got, want)
    assert on_thread.state_dict() == inline.state_dict()
    assert wait_for_no_io_threads() == []


@pytest.mark.parametrize("prefetch", [0, 2])
def test_the_functions_run_on_one_other_thread_ahead_of_the_consumer(shared_data, prefetch):
    directory, total = shared_data("orc")  # 12 batches of 64 rows
    threads, finished = [], [threading.Event() for _ in range(12)]

    def note(batch):
        threads.append(threading.current_thread())
        return batch

    def done(batch):
        note(batch)
        finished[first_row(batch) // 64].set()
        return batch

    dataset = make_dataset(
        "orc", directory, prefetch=prefetch, prefetch_transform=2, transform_fn=done
    )
    dataset.map(note)
    dataset.filter(lambda batch: note(batch) is None)
    batches = iter(dataset)
    held = next(batches)
    assert first_row(held) == 0
    # two finished batches wait in the queue, a third waits for a free slot
    assert all(finished[number].wait(5) for number in (1, 2, 3))
    assert not finished[4].wait(0.2)
    np.testing.assert_array_equal(rows_of([held, *batches]), np.arange(total))
    assert len(threads) == 3 * 12
    assert {thread.name for thread in threads} == {"recis-io-transform"}
    assert len({thread.ident for thread in threads}) == 1


@pytest.mark.parametrize("off", [None, 0])
def test_without_prefetch_transform_the_functions_run_on_the_consumers_thread(shared_data, off):
    directory, _ = shared_data("orc")
    threads, finished = [], []

    def done(batch):
        threads.append(threading.current_thread())
        finished.append(first_row(batch))
        return batch

    dataset = make_dataset("orc", directory, prefetch=2, prefetch_transform=off, transform_fn=done)
    batches = iter(dataset)
    next(batches)
    assert finished == [0]
    assert len(list(batches)) == 11 and threads == [threading.current_thread()] * 12


RESUME_CONFIGS = {
    "orc-prefetch-2-transform-2": dict(
        fmt="orc", read_threads_num=2, prefetch=2, prefetch_transform=2
    ),
    "orc-no-prefetch-transform-3-shuffle": dict(
        fmt="orc", prefetch=0, prefetch_transform=3, shuffle=True, shuffle_buffer_size=100,
        seed=3,
    ),
    "parquet-worker-1-of-2-transform-1-shuffle-drop": dict(
        fmt="parquet", batch_size=30, worker_idx=1, worker_num=2, read_threads_num=2,
        prefetch=1, prefetch_transform=1, shuffle=True, shuffle_buffer_size=64,
        drop_remainder=True,
    ),
}  # fmt: skip


def run_with_full_queue(dataset, started: list, epoch_sizes: list[int], depth: int):
    """All batches of the epochs and the state before the first and after every batch, each
    state taken once the transform thread has finished the next ``depth`` batches (or the rest
    of the epoch) and started the one after; ``started`` counts the batches it started."""
    batches, states = [], [dataset.state_dict()]
    for epoch_end in np.cumsum(epoch_sizes):
        for batch in dataset:
            batches.append(batch)
            ahead = min(len(batches) + depth + 1, epoch_end)
            assert wait_for(lambda ahead=ahead: len(started) >= ahead), "not ahead"
            states.append(dataset.state_dict())
    return batches, states


@pytest.mark.parametrize("name", RESUME_CONFIGS)
def test_states_taken_with_batches_in_the_transform_queue_resume_exactly(name, shared_data):
    config = dict(RESUME_CONFIGS[name])
    fmt, depth = config.pop("fmt"), config["prefetch_transform"]
    directory, _ = shared_data(fmt)
    started = []

    def counted(**options):
        dataset = make_dataset(fmt, directory, **(config | options))
        dataset.map(lambda batch: started.append(first_row(batch)) or batch)
        return dataset

    reference = counted(prefetch_transform=0)
    want = [list(reference) for _ in range(EPOCHS)]  # batches of each epoch
    started.clear()
    batches, states = run_with_full_queue(counted(), started, [len(e) for e in want], depth)
    assert_batches_equal(batches, [batch for epoch in want for batch in epoch])
    stops = {1, len(want[0]) // 2, len(want[0]), len(batches) - 2}
    for stop in sorted(stops):
        restored = counted()
        restored.load_state_dict(states[stop])
        resumed = []
        while restored.epoch < EPOCHS:
            resumed += list(restored)
        assert_batches_equal(resumed, batches[stop:])


def test_a_state_with_dropped_and_finished_batches_queued_resumes_exactly(shared_data):
    directory, _ = shared_data("orc")  # 12 batches of 64 rows; every third one is dropped
    started = []

    def counted(**options):
        dataset = make_dataset("orc", directory, prefetch=1, **options)
        dataset.map(lambda batch: started.append(first_row(batch) // 64) or batch)
        dataset.filter(lambda batch: first_row(batch) // 64 % 3 == 2)
        return dataset

    want = all_batches(counted(prefetch_transform=0))
    started.clear()
    dataset = counted(prefetch_transform=3)
    batches = iter(dataset)
    head = [next(batches) for _ in range(4)]  # batches 0, 1, 3, 4
    # 5 (dropped), 6 and 7 wait in the queue; 8 waits for a free slot
    assert wait_for(lambda: 8 in started)
    state = dataset.state_dict()
    dataset.close()
    restored = counted(prefetch_transform=3)
    restored.load_state_dict(state)
    rest = []
    while restored.epoch < EPOCHS:
        rest += list(restored)
    assert [first_row(batch) // 64 for batch in head] == [0, 1, 3, 4]
    assert_batches_equal(head + rest, want)


@pytest.mark.parametrize("where", ["map", "filter", "transform_fn"])
def test_an_exception_in_a_user_function_reaches_the_consumer(shared_data, where):
    directory, _ = shared_data("orc")

    def reject_the_third_batch(batch):
        if first_row(batch) == 128:
            raise ValueError(f"bad batch at row {first_row(batch)}")
        return False if where == "filter" else batch

    transform = reject_the_third_batch if where == "transform_fn" else None
    dataset = make_dataset("orc", directory, prefetch_transform=2, transform_fn=transform)
    if where != "transform_fn":
        getattr(dataset, where)(reject_the_third_batch)
    batches = iter(dataset)
    assert [first_row(next(batches)) for _ in range(2)] == [0, 64]
    state = dataset.state_dict()
    with pytest.raises(ValueError, match="bad batch at row 128") as caught:
        next(batches)
    assert "reject_the_third_batch" in [entry.name for entry in caught.traceback]
    assert dataset.state_dict() == state  # the failed batch was not delivered
    with pytest.raises(StopIteration):
        next(batches)
    assert wait_for_no_io_threads() == []


@pytest.mark.parametrize("prefetch", [0, 2])
@pytest.mark.parametrize("stop", ["close", "drop the iterator", "drop the dataset"])
def test_stopping_early_leaves_no_thread(shared_data, prefetch, stop):
    directory, _ = shared_data("parquet")
    dataset = make_dataset(
        "parquet", directory, batch_size=10, prefetch=prefetch, prefetch_transform=2
    )
    batches = iter(dataset)
    next(batches)
    assert "recis-io-transform" in {thread.name for thread in io_threads()}
    if stop == "close":
        dataset.close()
    elif stop == "drop the iterator":
        del batches
    else:
        del batches, dataset
    gc.collect()
    assert wait_for_no_io_threads() == []


def test_closing_a_prefetcher_ends_a_wait_for_it_on_another_thread():
    gate = threading.Event()

    def slow():
        gate.wait(10)
        yield 1

    items = Prefetcher(slow(), size=1)
    received = []
    waiter = threading.Thread(target=lambda: received.append(list(items)))
    waiter.start()
    time.sleep(0.05)  # the waiter is (most likely) waiting for the first item by now
    items.close()
    waiter.join(5)
    stuck = waiter.is_alive()
    gate.set()
    assert not stuck and received == [[]]
    assert wait_for_no_io_threads() == []


@pytest.mark.parametrize("value", [-1, 1.5, True])
def test_bad_prefetch_transform_values_are_rejected(value):
    with pytest.raises(ValueError, match="prefetch_transform: expected an integer >= 0"):
        OrcDataset(8, prefetch_transform=value)


def test_the_tensors_marked_for_the_consumers_stream_include_nested_and_ragged_ones():
    torch = pytest.importorskip("torch", reason="the hand-off of GPU batches walks torch tensors")
    from recis.backends.torch.io import data_tensors
    from recis.backends.torch.ragged import RaggedTensor

    dense, values, offsets, weight = (torch.arange(n) for n in (2, 3, 4, 3))
    ragged = RaggedTensor(values, [offsets], weight)
    sparse = torch.sparse_coo_tensor(torch.tensor([[0, 1]]), torch.tensor([5.0, 6.0]), (3,))
    batch = {"a": [dense, ("name", ragged)], "b": {"c": sparse}, "d": np.ones(2), "e": None}
    found = list(data_tensors(batch))
    assert [id(t) for t in found[:4]] == [id(dense), id(values), id(offsets), id(weight)]
    assert torch.equal(found[4], sparse._indices()) and torch.equal(found[5], sparse._values())
    assert len(found) == 6


def test_the_gpu_hand_off_orders_the_consumers_stream_after_the_transform_stream(monkeypatch):
    """``CudaHandOff`` against a stand-in for torch's CUDA streams and events (the real GPU
    runs it in tests/gpu): the work runs with a stream of its own current, an event is recorded
    on that stream after it, the consumer's stream waits for that event, and every tensor of
    the result is marked as used on the consumer's stream."""
    torch = pytest.importorskip("torch", reason="the GPU hand-off is for torch batches")
    from recis.backends.torch.io import CudaHandOff, data_tensors
    from recis.backends.torch.ragged import RaggedTensor

    streams = fake_cuda_streams(monkeypatch, torch)
    consumer = streams.current()
    handoff = CudaHandOff()
    work = []

    def finish():
        work.append(streams.current())
        return {"x": [torch.ones(2)], "r": RaggedTensor(torch.arange(3), [torch.arange(4)])}

    sent = []
    thread = threading.Thread(target=lambda: sent.append(handoff.send(finish)))
    thread.start()
    thread.join()
    [(batch, ready)] = sent
    assert handoff.receive((batch, ready)) is batch
    assert work[0] is not consumer and ready.recorded_on is work[0]
    assert consumer.waited == [ready] and work[0].waited == []
    marked = streams.marked
    assert [id(t) for t, _ in marked] == [id(t) for t in data_tensors(batch)] and len(marked) == 3
    assert all(stream is consumer for _, stream in marked)


def fake_cuda_streams(monkeypatch, torch):
    """Stand-ins for torch's CUDA streams, events and device tensors; the returned object gives
    the calling thread's current stream (``current()``) and the marked tensors (``marked``)."""

    class Stream:
        def __init__(self, device=None) -> None:
            self.waited = []

        def wait_event(self, event) -> None:
            self.waited.append(event)

    class Event:
        def record(self, stream) -> None:
            self.recorded_on = stream

    class Streams:
        def __init__(self) -> None:
            self.default, self.marked, self._local = Stream(), [], threading.local()

        def current(self, device=None):
            return getattr(self._local, "stream", self.default)

        @contextlib.contextmanager
        def use(self, stream):
            previous, self._local.stream = self.current(), stream
            try:
                yield
            finally:
                self._local.stream = previous

        def mark(self, tensor, stream) -> None:
            self.marked.append((tensor, stream))

    streams = Streams()
    for name, value in (
        ("is_available", lambda: True),
        ("current_device", lambda: 0),
        ("Stream", Stream),
        ("Event", Event),
        ("stream", streams.use),
        ("device", lambda device: contextlib.nullcontext()),
        ("current_stream", streams.current),
    ):
        monkeypatch.setattr(torch.cuda, name, value)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda tensor: True))
    monkeypatch.setattr(torch.Tensor, "record_stream", lambda tensor, on: streams.mark(tensor, on))
    return streams
