"""Two JAX processes joined by ``jax.distributed``, in which ``import torch`` fails: the
``JaxCommunicator``'s collectives deliver what each rank sent; sharded training (tables over the
processes, dense gradients averaged) equals one process on the same global batches; the JAX
Trainer agrees on the end of uneven data; a non-finite step on one process is skipped by both.
Each process has two host devices, over which the dense step is split and the tables sharded in
one of the runs (2 processes x 2 devices train like one process). A
process that fails is named in the error of the other's next collective."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax", reason="the JAX backend needs jax")
pytest.importorskip("flax", reason="the Trainer trains Flax NNX models")

import ranks_jax
from jax_launch import run_jax_ranks, start_jax_ranks
from launch import collect
from test_jax_sharded_training import assert_like_one_process

from recis.distributed.sharding import owners

WORLD = 2


@pytest.fixture(scope="module")
def processes(tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp("checkpoints"))
    devices = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}  # per process
    return run_jax_ranks(WORLD, "ranks_jax_comm:two_process_checks", output_dir, env=devices)


def expected_rows(rank: int) -> np.ndarray:
    """What ``ranks_jax_comm.collectives`` sends ``rank``: from each sender s, (s + 1) *
    (rank + 1) rows (2**40 s + 1000 rank + i, -i)."""
    rows = [
        [2**40 * sender + 1000 * rank + i, -i]
        for sender in range(WORLD)
        for i in range((sender + 1) * (rank + 1))
    ]
    return np.array(rows, np.int64)


def test_every_collective_delivers_what_the_ranks_sent(processes):
    for rank, result in enumerate(r["collectives"] for r in processes):
        assert (result["type"], result["rank"], result["world_size"]) == (
            "JaxCommunicator", rank, WORLD
        )  # fmt: skip
        np.testing.assert_array_equal(result["received"], expected_rows(rank))
        np.testing.assert_array_equal(
            result["floats"][:, 0], expected_rows(rank)[:, 0].astype(np.float32)
        )
        assert result["floats"].dtype == np.float32
        assert result["empty_shape"] == (0, 3)
        sent = [(np.arange(WORLD * 2) + 10 * s).reshape(WORLD, 2) for s in range(WORLD)]
        np.testing.assert_array_equal(result["counts"], [m[rank] for m in sent])
        np.testing.assert_array_equal(result["sum_f32"], [0.5 + 1.5, 2.0])
        assert result["max_i64"].tolist() == [2**40 + 1]  # int64 exact, without jax_enable_x64
        assert result["min_f64"].tolist() == [[-0.25]] and result["min_f64"].dtype == np.float64
        assert result["objects"] == [{"rank": 0, "pad": ""}, {"rank": 1, "pad": "x" * 100}]
        assert result["broadcast"] == "from 1"


def test_two_processes_train_like_one(processes):
    assert_like_one_process(ranks_jax.train_both(0, 1), [r["parity"] for r in processes])


def test_two_processes_of_two_devices_each_train_like_one_process(processes):
    expected = ranks_jax.train_both(0, 1)["worker"]
    assert all(r["local_devices"] == 2 for r in processes)
    assert_like_one_process({"worker": expected}, [{"worker": r["mesh"]} for r in processes])


def test_each_device_of_each_process_holds_the_rows_of_its_global_shard(processes):
    """Global shard g = owner over 2 processes x 2 devices lives on process g % 2, device
    g // 2: each of the four shards holds ids, and only its own."""
    held = 0
    for rank, result in enumerate(r["mesh"] for r in processes):
        assert sorted(result["shards"]) == sorted(result["tables"])
        for table in result["shards"].values():
            for device, (ids, tags) in enumerate(table["entries"]):
                assert ids.size > 0
                expected = device * WORLD + rank
                assert (owners(ids, tags, table["children"], 2 * WORLD) == expected).all()
                held += ids.size
    assert held == sum(t["id"].size for r in processes for t in r["mesh"]["tables"].values())


def test_trainer_stops_both_processes_when_the_first_runs_out_of_data(processes):
    first, second = (r["trainer"] for r in processes)
    assert first["global_step"] == second["global_step"] == 3  # rank 0 has 3 batches, rank 1 5
    assert first["losses"] == second["losses"]  # the logged loss is the mean over ranks
    assert first["eval"]["steps"] == second["eval"]["steps"] == 2


def test_a_non_finite_step_on_one_process_is_skipped_on_both(processes):
    for result in (r["loss_scale"] for r in processes):
        assert result["applied"] is False and result["scale"] == 4.0
        assert result["rows_moved"] == 0.0


def test_a_failing_process_is_named_in_the_error_of_the_others():
    rank0, rank1 = collect(*start_jax_ranks(WORLD, "ranks_jax_comm:failing_rank"), timeout=180)
    assert rank1.returncode != 0 and "ValueError: bad batch 7" in rank1.stderr
    assert rank0.returncode == 0
    assert rank0.value["error"] == (
        "all-reduce after a failure failed on rank 0: rank 1 raised ValueError: bad batch 7"
    )
