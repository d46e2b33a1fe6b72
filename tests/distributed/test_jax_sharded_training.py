"""JAX training on 2 or 4 gloo ranks (sharded tables, data-parallel dense step) equals training
on one process over the same global batches; the JAX Trainer ends on data of uneven length per
rank; a loss-scaled step whose gradients are not finite on one rank is skipped on every rank."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax", reason="the JAX backend needs jax")
pytest.importorskip("flax", reason="the Trainer trains Flax NNX models")

import optax
import ranks_jax
from global_batches import global_batch
from launch import run_ranks
from table_checks import assert_same_tables

from recis.backends.jax import Embedder, SparseOptimizer, TrainStep, rules
from recis.distributed.communicator import SingleProcess


@pytest.fixture(scope="module")
def single():
    return ranks_jax.train_both(0, 1)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    return run_ranks(2, "ranks_jax:two_rank_checks", str(tmp_path_factory.mktemp("checkpoints")))


def assert_like_one_process(single: dict, by_rank: list[dict]) -> None:
    for grad_reduce_by, expected in single.items():
        assert not expected["data_parallel"]
        results = [r[grad_reduce_by] for r in by_rank]
        assert_same_tables(expected["tables"], [r["tables"] for r in results])
        for result in results:
            assert result["data_parallel"]
            for name, value in expected["dense"].items():
                np.testing.assert_allclose(result["dense"][name], value, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(result["losses"], expected["losses"], rtol=1e-5)
        sizes = [sum(t["id"].size for t in r["tables"].values()) for r in results]
        assert all(size > 0 for size in sizes), f"a rank owns no ids: {sizes}"


def test_two_ranks_train_like_one_process(single, two_ranks):
    assert_like_one_process(single, [r["parity"] for r in two_ranks])


def test_four_ranks_train_like_one_process(single):
    assert_like_one_process(single, run_ranks(4, "ranks_jax:train_both"))


def test_trainer_stops_every_rank_when_the_first_runs_out_of_data(two_ranks):
    first, second = (r["trainer"] for r in two_ranks)
    assert first["global_step"] == second["global_step"] == 3  # rank 0 has 3 batches, rank 1 5
    assert first["losses"] == second["losses"]  # the logged loss is the mean over ranks
    assert first["eval"]["steps"] == second["eval"]["steps"] == 2
    assert first["eval"]["loss"] == second["eval"]["loss"]


def test_a_non_finite_step_on_one_rank_is_skipped_on_every_rank(two_ranks):
    for result in (r["loss_scale"] for r in two_ranks):
        assert result["applied"] is False
        assert result["scale"] == 4.0  # halved from 8
        np.testing.assert_array_equal(result["b"], [0.0, 0.0])
        assert result["rows_moved"] == 0.0


def test_a_communicator_of_one_rank_keeps_the_single_process_step():
    embedder = Embedder(ranks_jax.options(), communicator=SingleProcess())
    sparse = SparseOptimizer(embedder, rules.SGD(), 0.1)
    step = TrainStep(ranks_jax.loss_fn, ranks_jax.initial_params(), optax.sgd(0.1), sparse,
                     [embedder], communicator=SingleProcess())  # fmt: skip
    step(ranks_jax.rank_slice(global_batch(0), 0, 1))
    assert embedder.shards is None and step.communicator is None
    assert step.dense._cache_size() == 1 and step.pure._local_step._cache_size() == 0
