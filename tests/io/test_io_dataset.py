"""OrcDataset / ParquetDataset end to end: exact batches, contents, sharding, shuffle, epochs,
outputs, user functions, state handling and argument checks."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest
from io_helpers import (
    DATASETS,
    SUFFIXES,
    WRITERS,
    assert_batches_equal,
    column_parts,
    declare_all,
    make_dataset,
    rows_of,
    unwrap,
)

from recis.io import OrcDataset, ParquetDataset
from recis.io.columns import convert_column
from recis.io.dataset_base import DatasetBase
from recis.io.row_ops import gather_ranges, num_rows


def read_reference(fmt: str, directory) -> pa.Table:
    files = sorted(directory.glob(f"*{SUFFIXES[fmt]}"))
    read = orc.read_table if fmt == "orc" else pq.read_table
    return pa.concat_tables([read(str(path)) for path in files])


def reference_columns(dataset, table: pa.Table) -> dict:
    specs = dataset._specs.values()
    return {spec.name: convert_column(spec, table.column(spec.name), np.float32) for spec in specs}


def as_numpy(batch) -> dict:
    """A torch batch as NumPy arrays and Ragged (other batches unchanged)."""
    return {
        name: value.to_engine() if hasattr(value, "to_engine") else value
        for name, value in unwrap(batch).items()
    }


def concatenated(batches) -> dict:
    names = unwrap(batches[0]).keys()
    return {
        name: gather_ranges([(unwrap(b)[name], 0, num_rows(unwrap(b)[name])) for b in batches])
        for name in names
    }


@pytest.mark.parametrize("batch_size", [64, 1000, 7])
def test_batches_are_exact_across_file_boundaries_and_match_the_files(fmt, shared_data, batch_size):
    directory, total = shared_data(fmt)
    dataset = make_dataset(fmt, directory, batch_size=batch_size, read_threads_num=2)
    batches = list(dataset)
    sizes = [len(unwrap(b)["row"]) for b in batches]
    assert sizes == [batch_size] * (total // batch_size) + (
        [total % batch_size] if total % batch_size else []
    )
    expected = reference_columns(dataset, read_reference(fmt, directory))
    actual = concatenated(batches)
    for name in expected:
        for a, b in zip(column_parts(actual[name]), column_parts(expected[name]), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_drop_remainder_drops_only_the_last_partial_batch(fmt, shared_data):
    directory, total = shared_data(fmt)
    batches = list(make_dataset(fmt, directory, batch_size=100, drop_remainder=True))
    assert [len(unwrap(b)["row"]) for b in batches] == [100] * (total // 100)
    np.testing.assert_array_equal(rows_of(batches), np.arange(total // 100 * 100))


def row_consistent(batch) -> bool:
    """Every row's ids, kv and seq are derived from its row number (see conftest.make_table)."""
    columns = unwrap(batch)
    rows, ids, kv = columns["row"], columns["ids"], columns["kv"]
    starts = ids.offsets[0][:-1]
    filled = np.diff(ids.offsets[0]) > 0
    ok = np.array_equal(ids.values[starts[filled]], rows[filled])
    kv_starts = kv.offsets[0][:-1][np.diff(kv.offsets[0]) > 0]
    kv_rows = rows[np.diff(kv.offsets[0]) > 0]
    return ok and np.array_equal(kv.values[kv_starts], kv_rows)


def test_shuffle_permutes_rows_per_epoch_reproducibly_keeping_rows_intact(shared_data):
    directory, total = shared_data("orc")
    options = dict(shuffle=True, shuffle_buffer_size=150, seed=11, read_threads_num=2)
    dataset = make_dataset("orc", directory, **options)
    first, second = list(dataset), list(dataset)
    for epoch in (first, second):
        np.testing.assert_array_equal(np.sort(rows_of(epoch)), np.arange(total))
        assert all(row_consistent(batch) for batch in epoch)
    assert not np.array_equal(rows_of(first), rows_of(second))
    assert_batches_equal(list(make_dataset("orc", directory, **options)), first)
    other_seed = make_dataset("orc", directory, **(options | {"seed": 12}))
    assert not np.array_equal(rows_of(list(other_seed)), rows_of(first))


def test_shuffle_buffer_mixes_rows_beyond_a_fragment(shared_data):
    directory, _ = shared_data("parquet")
    plain = rows_of(list(make_dataset("parquet", directory, shuffle=True, shuffle_buffer_size=0)))
    mixed = rows_of(list(make_dataset("parquet", directory, shuffle=True, shuffle_buffer_size=400)))
    run_lengths = [np.sum(np.diff(rows) == 1) for rows in (plain, mixed)]
    assert run_lengths[1] < run_lengths[0] / 4


@pytest.mark.parametrize("worker_num", [2, 3, 7])
def test_workers_read_every_row_exactly_once_balanced_by_rows(fmt, shared_data, worker_num):
    directory, total = shared_data(fmt)
    per_worker = [
        rows_of(list(make_dataset(fmt, directory, worker_idx=i, worker_num=worker_num)))
        for i in range(worker_num)
    ]
    np.testing.assert_array_equal(np.sort(np.concatenate(per_worker)), np.arange(total))
    loads = [len(rows) for rows in per_worker]
    assert max(loads) - min(loads) <= 64  # the largest stripe / row group


def test_dataloader_sub_workers_split_the_rows(shared_data):
    torch = pytest.importorskip("torch")
    directory, total = shared_data("parquet")
    dataset = make_dataset("parquet", directory, batch_size=50, worker_idx=0, worker_num=1)
    # spawn: GNU OpenMP (numba's parallel kernels, e.g. string hashing) is not fork-safe
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=2, multiprocessing_context="spawn"
    )
    rows = np.concatenate([batch["row"].numpy() for batch in loader])
    np.testing.assert_array_equal(np.sort(rows), np.arange(total))


def test_orc_torch_output_is_a_list_of_one_dict_of_tensors_and_ragged_tensors(shared_data):
    torch = pytest.importorskip("torch")
    from recis.backends.torch.ragged import RaggedTensor

    directory, _ = shared_data("orc")
    dataset = OrcDataset(64, read_threads_num=2, dtype=torch.float64)
    dataset.add_path(str(directory))
    declare_all(dataset)
    [batch] = next(iter(dataset))
    assert batch["label"].dtype == torch.float64 and batch["label"].shape == (64, 1)
    assert batch["dense"].shape == (64, 2)
    ids = batch["ids"]
    assert isinstance(ids, RaggedTensor) and ids.dense_shape == (64, -1)
    assert ids.values().dtype == torch.int64 and len(ids.offsets()) == 1
    assert len(batch["seq"].offsets()) == 2
    assert batch["kv"].weight().dtype == torch.float32
    reference = next(iter(make_dataset("orc", directory, dtype="float64")))[0]
    for name in ("ids", "seq", "kv", "tags"):
        engine = batch[name].to_engine()
        for a, b in zip(column_parts(engine), column_parts(reference[name]), strict=True):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(batch["label"].numpy(), reference["label"])


def test_torch_sparse_output_without_ragged_format(shared_data):
    torch = pytest.importorskip("torch")
    directory, _ = shared_data("parquet")
    dataset = ParquetDataset(8, output="torch", ragged_format=False)
    dataset.add_path(str(directory))
    dataset.varlen_feature("ids")
    ids = next(iter(dataset))["ids"]
    assert ids.is_sparse and ids.shape[0] == 8
    ragged = ParquetDataset(8, output="torch")
    ragged.add_path(str(directory))
    ragged.varlen_feature("ids")
    dense = next(iter(ragged))["ids"].to_dense()
    torch.testing.assert_close(ids.to_dense()[:, : dense.shape[1]], dense)
    dataset.varlen_feature("seq")
    with pytest.raises(ValueError, match="column 'seq': ragged_format=False needs one list"):
        next(iter(dataset))


def test_jax_output_gives_jax_dense_arrays_and_keeps_ragged(shared_data):
    jax = pytest.importorskip("jax")
    from recis.core.ragged import Ragged

    directory, _ = shared_data("parquet")
    dataset = ParquetDataset(16, output="jax")
    dataset.add_path(str(directory))
    dataset.fixedlen_feature("label", [0.0])
    dataset.varlen_feature("ids")
    batch = next(iter(dataset))
    assert isinstance(batch["label"], jax.Array) and batch["label"].dtype == np.float32
    assert isinstance(batch["ids"], Ragged)
    dataset.varlen_feature("row")
    if not jax.config.jax_enable_x64:
        with pytest.raises(ValueError, match="column 'row': JAX would truncate int64"):
            next(iter(dataset))


@pytest.mark.parametrize("device", ["pin", "cuda"])
def test_pinned_and_gpu_output(shared_data, device):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip(f"device={device!r} needs a CUDA device, and torch sees none")
    directory, _ = shared_data("orc")
    dataset = OrcDataset(32, device=device)
    dataset.add_path(str(directory))
    declare_all(dataset)
    [batch] = next(iter(dataset))
    if device == "pin":
        assert batch["label"].is_pinned() and batch["ids"].values().is_pinned()
    else:
        assert batch["label"].is_cuda and batch["ids"].values().is_cuda


def test_map_filter_and_transform_run_in_order_and_filtered_batches_are_consumed(shared_data):
    directory, total = shared_data("parquet")
    dataset = make_dataset("parquet", directory, batch_size=50, transform_fn=[lambda b: b["row"]])
    dataset.map(lambda b: b | {"row": b["row"] * 10})
    dataset.filter(lambda b: b["row"][0] % 1000 != 0)  # drops every other batch of 50 rows
    dataset.map(lambda b: b | {"row": b["row"] + 1})
    kept = list(dataset)
    np.testing.assert_array_equal(
        np.concatenate(kept), np.arange(0, total)[(np.arange(total) // 50) % 2 == 0] * 10 + 1
    )
    assert dataset.epoch == 1


def test_iterating_again_continues_where_the_last_iterator_stopped(shared_data):
    directory, total = shared_data("orc")
    dataset = make_dataset("orc", directory, prefetch=3, read_threads_num=2)
    head = []
    for batch in dataset:
        head.append(batch)
        if len(head) == 3:
            break
    tail = list(dataset)
    np.testing.assert_array_equal(rows_of(head + tail), np.arange(total))
    assert dataset.epoch == 1
    np.testing.assert_array_equal(rows_of(list(dataset)), np.arange(total))


def test_state_from_another_worker_or_shuffle_setting_is_refused(shared_data):
    directory, _ = shared_data("orc")
    worker0 = make_dataset("orc", directory, worker_num=2)
    next(iter(worker0))
    worker1 = make_dataset("orc", directory, worker_idx=1, worker_num=2)
    worker1.load_state_dict(worker0.state_dict())
    with pytest.raises(ValueError, match="saved for other files or another worker layout"):
        iter(worker1)
    shuffled = make_dataset("orc", directory, shuffle=True)
    with pytest.raises(ValueError, match="saved with shuffle None"):
        shuffled.load_state_dict(worker0.state_dict())
    with pytest.raises(ValueError, match="version"):
        worker0.load_state_dict({"epoch": 0})
    with pytest.raises(ValueError, match="state\\['row'\\]"):
        worker0.load_state_dict(worker0.state_dict() | {"row": -1})


def test_io_state_names_follow_recis(shared_data):
    directory, _ = shared_data("orc")
    dataset = make_dataset("orc", directory)
    batches = iter(dataset)
    next(batches)
    state = dataset.dump_io_state()
    assert state == dataset.state_dict() and state["row"] + state["fragment"] > 0
    restored = make_dataset("orc", directory)
    restored.load_io_state(None)
    restored.load_io_state(state)
    assert_batches_equal(list(restored), list(batches))
    assert make_dataset("orc", directory, save_interval=0).dump_io_state() is None


@pytest.mark.parametrize("output", ["numpy", "torch"])
def test_a_pickled_dataset_reads_the_same(shared_data, output):
    if output == "torch":
        pytest.importorskip("torch")
    directory, _ = shared_data("parquet")
    dataset = make_dataset("parquet", directory, batch_size=40, output=output)
    batches = iter(dataset)
    next(batches)
    copy = pickle.loads(pickle.dumps(dataset))
    assert_batches_equal([as_numpy(b) for b in copy], [as_numpy(b) for b in batches])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"worker_idx": 2, "worker_num": 2}, "worker_idx"),
        ({"read_threads_num": 0}, "read_threads_num"),
        ({"prefetch": -1}, "prefetch"),
        ({"is_compressed": True}, "is_compressed"),
        ({"on_error": "ignore"}, "on_error"),
        ({"seed": -1}, "seed"),
        ({"output": "tf"}, "output"),
        ({"device": "tpu"}, "device"),
        ({"output": "numpy", "device": "pin"}, "needs output='torch' or 'jax'"),
        ({"output": "jax", "device": "pin"}, "needs output='torch'"),
        ({"output": "numpy", "ragged_format": False}, "ragged_format"),
        ({"dtype": "int32"}, "floating dtype"),
        ({"transform_fn": 3}, "transform_fn"),
    ],
)
def test_bad_arguments_are_rejected(options, message):
    options = {"batch_size": 8} | options
    with pytest.raises(ValueError if "transform_fn" not in options else TypeError, match=message):
        OrcDataset(**options)


def test_torch_and_bfloat16_dtypes_are_understood(shared_data):
    torch = pytest.importorskip("torch")
    directory, _ = shared_data("parquet")
    for dtype, expected in ((torch.float16, torch.float16), ("bfloat16", torch.bfloat16)):
        dataset = ParquetDataset(4, output="torch", dtype=dtype)
        dataset.add_path(str(directory))
        dataset.fixedlen_feature("label", [0.0])
        assert next(iter(dataset))["label"].dtype == expected


def test_declarations_must_agree_and_the_base_is_abstract():
    dataset = ParquetDataset(4)
    dataset.varlen_feature("ids")
    dataset.varlen_feature("ids")
    with pytest.raises(ValueError, match="already declared differently"):
        dataset.varlen_feature("ids", hash_type="farm")
    with pytest.raises(TypeError, match="abstract"):
        DatasetBase(4)
    with pytest.raises(ValueError, match="add_path"):
        iter(dataset)


def test_without_torch_numpy_output_works_and_torch_output_says_what_is_missing(shared_data):
    parquet_directory, total = shared_data("parquet")
    script = f"""
import sys
sys.modules["torch"] = None
sys.modules["jax"] = None
from recis.io import OrcDataset, ParquetDataset
parquet = ParquetDataset(10)
parquet.add_path({str(parquet_directory)!r})
parquet.varlen_feature("ids")
print(sum(batch["ids"].num_rows for batch in parquet))
try:
    OrcDataset(10)
except ImportError as error:
    print(error)
print(sorted(m for m in ("torch", "jax") if m in sys.modules and sys.modules[m] is not None))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [str(total), "output='torch' needs torch installed", "[]"]


def test_numpy_and_jax_outputs_never_import_torch(shared_data):
    directory, _ = shared_data("parquet")
    script = f"""
import sys
from recis.io import OrcDataset, ParquetDataset
dataset = ParquetDataset(100)
dataset.add_path({str(directory)!r})
dataset.varlen_feature("ids")
list(dataset)
print("torch" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_datasets_are_torch_iterable_datasets():
    torch = pytest.importorskip("torch")
    assert isinstance(OrcDataset(4), torch.utils.data.IterableDataset)
    assert isinstance(ParquetDataset(4), torch.utils.data.IterableDataset)


def test_pipeline_modules_import_no_framework():
    modules = ["columns", "cursor", "packer", "prefetch", "reader", "row_ops", "shuffle", "sources"]
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module('recis.io.' + name)\n"
        "print(sorted(m for m in ('torch', 'jax') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_parquet_and_orc_read_the_same_rows(shared_data):
    orc_batches = list(make_dataset("orc", shared_data("orc")[0], batch_size=100))
    parquet_batches = list(make_dataset("parquet", shared_data("parquet")[0], batch_size=100))
    assert_batches_equal(parquet_batches, orc_batches)


def test_wrap_end_dataset_marks_the_end_for_ever(shared_data):
    from recis.io.wrap_end_dataset import WrapEndDataset

    directory, total = shared_data("orc")
    dataset = make_dataset("orc", directory, batch_size=500)
    pairs = iter(WrapEndDataset(dataset))
    marks = [next(pairs) for _ in range(4)]
    assert [is_end for is_end, _ in marks] == [False, False, True, True]
    np.testing.assert_array_equal(rows_of([batch for _, batch in marks[:2]]), np.arange(total))
    assert dataset.epoch == 1


@pytest.mark.parametrize("hash_type", ["farm", "murmur"])
def test_strings_are_hashed_while_reading(fmt, tmp_path, hash_type):
    known = {  # the bytes [0, 1, 2] and [1, 2, 3], as signed int64
        "farm": [-7736835464683084646, -5546720800891377920],
        "murmur": [-4003751876240412087, -1042754718167355375],
    }[hash_type]
    strings = [bytes([0, 1, 2]), bytes([1, 2, 3])]
    table = pa.table(
        {
            "ids": pa.array([strings, [], strings[1:]], pa.list_(pa.binary())),
            "id": pa.array([strings[1], strings[0], strings[1]], pa.binary()),
        }
    )
    WRITERS[fmt](tmp_path / f"a{SUFFIXES[fmt]}", table)
    dataset = DATASETS[fmt](3, output="numpy")
    dataset.add_path(str(tmp_path))
    dataset.varlen_feature("ids", hash_type=hash_type)
    dataset.varlen_feature("id", hash_type=hash_type, hash_bucket=1000)
    batch = unwrap(next(iter(dataset)))
    signed = np.array(known, np.int64)
    np.testing.assert_array_equal(batch["ids"].values, (signed & np.iinfo(np.int64).max)[[0, 1, 1]])
    np.testing.assert_array_equal(batch["ids"].offsets[0], [0, 2, 2, 3])
    np.testing.assert_array_equal(batch["id"], signed.view(np.uint64)[[1, 0, 1]] % 1000)


def test_adding_files_at_an_epoch_start_is_allowed_but_not_mid_epoch(tmp_path):
    from io_helpers import write_files

    write_files(tmp_path / "a", "parquet", sizes=(100,))
    write_files(tmp_path / "b", "parquet", sizes=(100,), seed=1)
    dataset = make_dataset("parquet", tmp_path / "a", batch_size=30)
    list(dataset)
    dataset.add_path(str(tmp_path / "b"))
    assert len(rows_of(list(dataset))) == 200
    next(iter(dataset))
    dataset.add_path(str(tmp_path / "b"))
    with pytest.raises(ValueError, match="another worker layout"):
        iter(dataset)
