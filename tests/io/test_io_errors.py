"""Bad input never hangs and never passes silently; errors name the file and column; early
stops and failures release the reader threads."""

from __future__ import annotations

import gc

import numpy as np
import pyarrow as pa
import pytest
from io_helpers import (
    SUFFIXES,
    WRITERS,
    io_threads,
    make_dataset,
    make_table,
    rows_of,
    wait_for_no_io_threads,
    write_files,
)

from recis.io import DataError


@pytest.fixture(autouse=True)
def no_leftover_threads():
    yield
    assert wait_for_no_io_threads() == []


def corrupt_middle(path) -> None:
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    data[len(data) // 8 : len(data) // 2] = rng.integers(
        0, 256, len(data) // 2 - len(data) // 8, np.uint8
    ).tobytes()
    path.write_bytes(bytes(data))


def truncate(path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_missing_column_names_the_file_and_column(fmt, tmp_path):
    write_files(tmp_path, fmt, sizes=(50,))
    dataset = make_dataset(fmt, tmp_path)
    dataset.varlen_feature("clicks")
    with pytest.raises(DataError, match=f"part-0{SUFFIXES[fmt]}: column 'clicks' is missing"):
        iter(dataset)


@pytest.mark.parametrize("damage", [corrupt_middle, truncate, lambda path: path.write_bytes(b"")])
def test_damaged_files_name_the_file(fmt, tmp_path, damage):
    write_files(tmp_path, fmt, sizes=(300, 300))
    damage(tmp_path / f"part-1{SUFFIXES[fmt]}")
    dataset = make_dataset(fmt, tmp_path, read_threads_num=2, prefetch=2)
    with pytest.raises(DataError, match=f"part-1{SUFFIXES[fmt]}: "):
        list(dataset)


def test_a_corrupt_stripe_names_the_file_and_stripe(tmp_path):
    write_files(tmp_path, "orc", sizes=(300,))
    corrupt_middle(tmp_path / "part-0.orc")
    with pytest.raises(DataError, match=r"part-0\.orc: stripe \d+: "):
        list(make_dataset("orc", tmp_path))


def test_a_type_mismatch_names_the_file_and_column(fmt, tmp_path):
    write_files(tmp_path, fmt, sizes=(40,))
    table = make_table(40, 40, np.random.default_rng(1))
    table = table.set_column(2, "ids", pa.array([[1.5]] * 40))
    WRITERS[fmt](tmp_path / f"part-9{SUFFIXES[fmt]}", table)
    with pytest.raises(DataError, match=r"part-9.*column 'ids' is list<double>, but list<int64>"):
        iter(make_dataset(fmt, tmp_path))


def test_nulls_inside_lists_reach_the_consumer_after_the_good_batches(fmt, tmp_path):
    write_files(tmp_path, fmt, sizes=(300,))
    table = make_table(40, 300, np.random.default_rng(1))
    table = table.set_column(2, "ids", pa.array([[1, None]] * 40))
    WRITERS[fmt](tmp_path / f"part-1{SUFFIXES[fmt]}", table)
    dataset = make_dataset(fmt, tmp_path, batch_size=50, read_threads_num=2, prefetch=2)
    batches = iter(dataset)
    good = [next(batches) for _ in range(6)]
    np.testing.assert_array_equal(rows_of(good), np.arange(300))
    with pytest.raises(DataError, match=r"part-1.*column 'ids': null values inside lists"):
        next(batches)
    with pytest.raises(StopIteration):
        next(batches)


def test_empty_directories_and_missing_paths_are_named(fmt, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: directory holds no"):
        make_dataset(fmt, tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="missing: no such file"):
        make_dataset(fmt, tmp_path / "missing")


def test_skip_mode_reads_the_good_files_and_reports_the_bad_ones(tmp_path):
    total = write_files(tmp_path, "orc", sizes=(200, 150, 120, 90))
    corrupt_middle(tmp_path / "part-1.orc")
    truncate(tmp_path / "part-3.orc")
    dataset = make_dataset("orc", tmp_path, on_error="skip", read_threads_num=2)
    rows = rows_of(list(dataset))
    assert set(range(200)) <= set(rows) and set(range(350, 470)) <= set(rows)
    assert not set(range(470, total)) & set(rows)
    skipped = {path.rsplit("/", 1)[-1] for path, _ in dataset.skipped_files}
    assert skipped == {"part-1.orc", "part-3.orc"}
    assert all("part-" in reason for _, reason in dataset.skipped_files)


def test_stopping_early_releases_the_threads(fmt, shared_data):
    directory, _ = shared_data(fmt)
    dataset = make_dataset(fmt, directory, batch_size=10, read_threads_num=2, prefetch=2)
    batches = iter(dataset)
    next(batches)
    assert io_threads()
    del batches
    gc.collect()
    assert wait_for_no_io_threads() == []
    assert next(iter(dataset)) is not None
    dataset.close()
    assert wait_for_no_io_threads() == []


def test_a_failing_user_function_reaches_the_consumer(shared_data):
    directory, _ = shared_data("orc")
    dataset = make_dataset("orc", directory, read_threads_num=2, prefetch=2)

    def fail(batch):
        raise KeyError("boom")

    dataset.map(fail)
    batches = iter(dataset)
    with pytest.raises(KeyError, match="boom"):
        next(batches)
    batches.close()


def test_valid_files_without_rows_are_read_as_empty(fmt, tmp_path):
    write_files(tmp_path, fmt, sizes=(0, 5, 0))
    assert rows_of(list(make_dataset(fmt, tmp_path))).tolist() == list(range(5))
    write_files(tmp_path / "none", fmt, sizes=(0,))
    assert list(make_dataset(fmt, tmp_path / "none")) == []
