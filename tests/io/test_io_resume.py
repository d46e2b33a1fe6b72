"""The shared resume test: a reader restored from the state after batch k yields exactly the
batches k+1, k+2, ... of an uninterrupted run, for every configuration, across epochs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from io_helpers import assert_batches_equal, make_dataset, rows_of

EPOCHS = 2
CONFIGS = {
    "orc-1-thread-no-prefetch": dict(fmt="orc", read_threads_num=1, prefetch=0),
    "orc-2-threads-prefetch-2": dict(fmt="orc", read_threads_num=2, prefetch=2),
    "orc-shuffle": dict(
        fmt="orc", read_threads_num=2, prefetch=2, shuffle=True, shuffle_buffer_size=100, seed=3
    ),
    "orc-shuffle-order-only-drop": dict(
        fmt="orc", read_threads_num=1, prefetch=2, shuffle=True, shuffle_buffer_size=0,
        drop_remainder=True,
    ),
    "orc-shuffle-drop-no-prefetch": dict(
        fmt="orc", batch_size=50, read_threads_num=1, prefetch=0, shuffle=True,
        shuffle_buffer_size=77, drop_remainder=True,
    ),
    "orc-worker-1-of-3-shuffle": dict(
        fmt="orc", worker_idx=1, worker_num=3, read_threads_num=2, prefetch=1, shuffle=True,
        shuffle_buffer_size=50,
    ),
    "parquet-2-threads-drop": dict(
        fmt="parquet", batch_size=100, read_threads_num=2, prefetch=0, drop_remainder=True
    ),
    "parquet-shuffle-prefetch-2": dict(
        fmt="parquet", read_threads_num=1, prefetch=2, shuffle=True, shuffle_buffer_size=120
    ),
    "parquet-worker-0-of-2": dict(fmt="parquet", worker_idx=0, worker_num=2, prefetch=2),
    "parquet-worker-1-of-2-shuffle-drop": dict(
        fmt="parquet", batch_size=30, worker_idx=1, worker_num=2, read_threads_num=2,
        prefetch=1, shuffle=True, shuffle_buffer_size=64, drop_remainder=True,
    ),
}  # fmt: skip


def run(dataset) -> tuple[list, list[dict]]:
    """All batches of ``EPOCHS`` epochs, and the state before the first and after every batch."""
    batches, states = [], [dataset.state_dict()]
    for _ in range(EPOCHS):
        for batch in dataset:
            batches.append(batch)
            states.append(dataset.state_dict())
    return batches, states


@pytest.mark.parametrize("name", CONFIGS)
def test_restored_reader_yields_exactly_the_remaining_batches(name, shared_data):
    config = dict(CONFIGS[name])
    fmt = config.pop("fmt")
    directory, _ = shared_data(fmt)
    batches, states = run(make_dataset(fmt, directory, **config))
    assert len(batches) > 4
    rng = np.random.default_rng(len(name))
    stops = {0, 1, len(batches) // EPOCHS, len(batches) - 1, *rng.integers(0, len(batches), 3)}
    for stop in sorted(stops):
        restored = make_dataset(fmt, directory, **config)
        restored.load_state_dict(json.loads(json.dumps(states[stop])))
        resumed = []
        while restored.epoch < EPOCHS:
            resumed += list(restored)
        assert_batches_equal(resumed, batches[stop:])


@pytest.mark.parametrize("name", CONFIGS)
def test_every_epoch_delivers_each_row_of_the_worker_once(name, shared_data):
    config = dict(CONFIGS[name])
    fmt = config.pop("fmt")
    directory, total = shared_data(fmt)
    dataset = make_dataset(fmt, directory, **config)
    epochs = [rows_of(list(dataset)) for _ in range(EPOCHS)]
    batch_size = config.get("batch_size", 64)
    for rows in epochs:
        assert len(np.unique(rows)) == len(rows)
        assert set(rows) <= set(range(total))
    if config.get("drop_remainder"):
        assert all(len(rows) % batch_size == 0 for rows in epochs)
    else:
        np.testing.assert_array_equal(np.sort(epochs[0]), np.sort(epochs[1]))
    if config.get("shuffle"):
        assert not np.array_equal(epochs[0], epochs[1])
    if config.get("worker_num", 1) == 1 and not config.get("drop_remainder"):
        np.testing.assert_array_equal(np.sort(epochs[0]), np.arange(total))
