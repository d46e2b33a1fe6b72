"""RecIS datasets under grain: the batches of an uninterrupted run, and a grain iterator
restored from its state after any batch (also through an orbax checkpoint) yields exactly the
batches that followed."""

from __future__ import annotations

import json

import numpy as np
import pytest

grain = pytest.importorskip("grain", reason="grain is in the jax extra")
ocp = pytest.importorskip("orbax.checkpoint", reason="grain states are saved with orbax")
pa = pytest.importorskip("pyarrow")

import pyarrow.parquet as pq  # noqa: E402

from recis.backends.jax.grain import RecisIterDataset  # noqa: E402
from recis.core.ragged import Ragged  # noqa: E402
from recis.io import ParquetDataset  # noqa: E402

ROWS = 230


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("grain")
    rng = np.random.default_rng(0)
    for part, start in enumerate(range(0, ROWS, 100)):
        rows = np.arange(start, min(start + 100, ROWS))
        ids = [
            list(range(r, r + int(n)))
            for r, n in zip(rows, rng.integers(0, 4, rows.size), strict=True)
        ]
        table = pa.table({"row": rows, "ids": pa.array(ids, pa.list_(pa.int64()))})
        pq.write_table(table, str(directory / f"part-{part}.parquet"), row_group_size=37)
    return directory


def dataset(files, **options):
    data = ParquetDataset(16, read_threads_num=2, prefetch=2, output="numpy", **options)
    data.add_path(str(files))
    data.fixedlen_feature("row", 0)
    data.varlen_feature("ids")
    return data


def summary(batch) -> tuple:
    """The rows of a batch and the ids of its ragged column."""
    assert isinstance(batch["ids"], Ragged)
    return tuple(batch["row"][:, 0].tolist()), tuple(batch["ids"].values.tolist())


def run(iterator) -> tuple[list, list]:
    batches, states = [], [iterator.get_state()]
    for batch in iterator:
        batches.append(batch)
        states.append(iterator.get_state())
    return batches, states


@pytest.mark.parametrize("options", [{}, {"shuffle": True, "seed": 3, "shuffle_buffer_size": 50}])
def test_a_restored_iterator_yields_exactly_the_remaining_batches(files, options):
    pipeline = RecisIterDataset(dataset(files, **options), num_epochs=2).map(summary)
    batches, states = run(iter(pipeline))
    assert len(batches) == 2 * 15  # 230 rows in batches of 16, two epochs
    first_epoch_rows = sorted(r for rows, _ in batches[:15] for r in rows)
    assert first_epoch_rows == list(range(ROWS))
    for k in (0, 1, 7, 14, 15, 22, 30):
        state = json.loads(json.dumps(states[k]))  # states are JSON, as grain saves them
        restored = iter(RecisIterDataset(dataset(files, **options), num_epochs=2).map(summary))
        restored.set_state(state)
        assert list(restored) == batches[k:], k


def test_grain_state_round_trips_through_an_orbax_checkpoint(files, tmp_path):
    iterator = iter(RecisIterDataset(dataset(files), num_epochs=1))
    for _ in range(5):
        next(iterator)
    manager = ocp.CheckpointManager(tmp_path / "run")
    manager.save(5, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(iterator)))
    manager.wait_until_finished()
    rest = [summary(b) for b in iterator]

    again = iter(RecisIterDataset(dataset(files), num_epochs=1))
    manager.restore(5, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(again)))
    assert [summary(b) for b in again] == rest
    assert len(rest) == 15 - 5


def test_only_recis_datasets_are_wrapped():
    with pytest.raises(TypeError, match="expected an OrcDataset or ParquetDataset, got list"):
        RecisIterDataset([1, 2])
