"""``JaxCommunicator`` in one process (a world of one rank): arrays of any dtype and row width
cross its collectives unchanged, through the padding and the raw-word transport; the launcher's
command line. Several processes: tests/distributed/test_jax_processes.py."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax", reason="the JAX backend needs jax")

from recis.backends.jax.communicator import JaxCommunicator, default_communicator
from recis.backends.jax.distributed import environment_world
from recis.backends.jax.launch import split_command


@pytest.fixture(scope="module")
def comm():
    return JaxCommunicator()


@pytest.mark.parametrize(
    "array",
    [
        np.array([[2**62 + 1, -(2**63)], [5, -1]], np.int64),  # whole 32-bit words
        np.arange(15, dtype=np.int8).reshape(5, 3),  # rows of 3 bytes
        np.array([1.5, np.nan, -np.inf], np.float64),
        np.zeros((0, 4), np.float32),
    ],
)
def test_all_to_all_of_one_rank_returns_what_it_sent(comm, array):
    counts = np.array([array.shape[0]])
    received = comm.all_to_all(array, counts, counts, "test").wait()
    assert received.dtype == array.dtype and received.shape == array.shape
    np.testing.assert_array_equal(received, array)


def test_reductions_and_objects_of_one_rank(comm):
    np.testing.assert_array_equal(comm.all_reduce(np.float32([1, 2]), "max", "f32"), [1, 2])
    big = np.array([2**40 + 3])
    assert comm.all_reduce(big, "sum", "i64").tolist() == [2**40 + 3]
    assert comm.all_gather_object({"a": [1, 2]}, "objects") == [{"a": [1, 2]}]
    assert comm.exchange_counts(np.array([[4, 5]]), "counts").tolist() == [[4, 5]]
    with pytest.raises(ValueError, match="unknown reduction 'mean'"):
        comm.all_reduce(big, "mean", "i64")
    assert comm.traffic["all-reduce"]["calls"] >= 2


def test_without_jax_distributed_there_is_no_world():
    assert default_communicator() is None


def test_an_incomplete_environment_names_what_is_missing():
    with pytest.raises(ValueError, match=r"no \['MASTER_ADDR', 'MASTER_PORT'\]"):
        environment_world({"WORLD_SIZE": "2", "RANK": "0"})


def test_the_launcher_passes_the_script_arguments_through():
    options, command = split_command(["--nproc_per_node=2", "train.py", "--steps", "3"])
    assert options == ["--nproc_per_node=2"] and command == ["train.py", "--steps", "3"]
