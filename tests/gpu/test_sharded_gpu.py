"""GPU tables sharded over gloo ranks, on the host stand-in for CuPy (device arrays are staged
through the host by the gloo transport only): 2 and 4 ranks train like one process, ranks whose
tables sit on different kinds of device all raise ``CollectiveError``, and a checkpoint of two
ranks' GPU shards loads on 1 and 4 ranks and into CPU tables."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "distributed"))

from conftest import on_standin
from recis.core.optim import Adam
from recis.distributed.communicator import Communicator, Done
from recis.distributed.sharding import group_by_owner, owners
from recis.embedding.embedder import Embedder
from recis.embedding.sparse_optimizer import SparseOptimizerCore

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process; two ranks (training, saving, a mixed world); four ranks (training,
    loading what two saved)."""
    if not on_standin():
        pytest.skip("gloo ranks exchange device arrays through the host on the CuPy stand-in only")
    import ranks_gpu
    from launch import run_ranks

    path = str(tmp_path_factory.mktemp("gpu-shards") / "saved-by-2")
    single = ranks_gpu.train_both(0, 1)
    two = run_ranks(2, "ranks_gpu:on_two", path, timeout=300)
    four = run_ranks(4, "ranks_gpu:on_four", path, timeout=300)
    return {"path": path, 1: single, 2: two, 4: four}


@pytest.mark.parametrize("world_size", [2, 4])
@pytest.mark.parametrize("mode", ["worker", "id"])
def test_sharded_gpu_tables_train_like_one_process(runs, world_size, mode):
    from table_checks import assert_same_tables

    results = [r[mode] for r in runs[world_size]]
    assert_same_tables(runs[1][mode]["tables"], [r["tables"] for r in results])
    assert runs[1][mode]["on_device"] and all(r["on_device"] for r in results)
    sizes = [sum(t["id"].size for t in r["tables"].values()) for r in results]
    assert all(size > 0 for size in sizes), f"a rank owns no ids: {sizes}"


def test_a_rank_with_cpu_tables_among_gpu_ranks_fails_on_every_rank(runs):
    errors = [r["mixed"] for r in runs[2]]
    for rank, result in enumerate(errors):
        assert result["error"] is not None, f"rank {rank} raised nothing"
        assert f"failed on rank {rank}" in result["error"]
        assert "rank 0: cuda, rank 1: cpu" in result["error"]
        assert result["seconds"] < 30


def test_gpu_shards_saved_by_two_ranks_load_on_one_and_four_ranks_and_on_cpu(runs):
    import ranks_gpu
    from table_checks import assert_same_tables, by_id

    saved = [r["saved"] for r in runs[2]]
    assert all(by_id(saved).values()) and all(sum(t["id"].size for t in s.values()) for s in saved)
    expected = _one(saved)
    loads = {
        "four ranks": [r["loaded"] for r in runs[4]],
        "one process": [ranks_gpu.loaded(runs["path"])],
        "cpu tables": [ranks_gpu.loaded(runs["path"], device="cpu")],
    }
    children = {name: t.children for name, t in Embedder(ranks_gpu.options()).tables.items()}
    for where, loaded in loads.items():
        assert_same_tables(expected, loaded)
        for rank, shard in enumerate(loaded):
            for name, state in shard.items():
                ranks = owners(state["id"], state["tag"], children[name], len(loaded))
                assert (ranks == rank).all(), f"{where}: rank {rank} holds ids it does not own"


def _one(shards: list[dict]) -> dict:
    """The shards of several ranks as one process's tables (state dicts concatenated)."""

    return {
        name: {
            key: np.concatenate([s[name][key] for s in shards])
            for key in ("id", "tag", *[k for k in shards[0][name] if _row_field(k)])
        }
        for name in shards[0]
    }


def _row_field(key: str) -> bool:
    return key not in ("id", "tag", "row") and not key.startswith(
        ("rows.", "eviction.", "admission.")
    )


class MirrorWorld(Communicator):
    """Rank 0 of two ranks that see the same batches, in one process: every exchange brings back
    what this rank sent (the counts too, so the peer sends what it receives). Nothing is copied:
    it shows what a sharded step itself costs the device, without a transport."""

    rank, world_size = 0, 2

    def all_to_all(self, send, send_counts, recv_counts, what) -> Done:
        assert list(send_counts) == list(recv_counts), what
        return Done(send)

    def all_reduce(self, array, op, what):
        return array * 2 if op == "sum" else array

    def all_gather_object(self, value, what) -> list:
        return [value, value]

    def report_failure(self, error: BaseException) -> None:
        """Nobody else to tell."""


def test_a_sharded_gpu_step_reads_only_its_two_count_vectors_from_the_device(cp):
    if not on_standin():
        pytest.skip("device work is counted on the CuPy stand-in only")
    one, sharded = _step_copies(cp, None), _step_copies(cp, MirrorWorld())
    assert one == [{"host_to_device": 1}] * 2  # the batch's tags (of the plan)
    # and besides: the lookup counts and the gradient counts, one read each
    assert sharded == [{"host_to_device": 1, "device_to_host": 2}] * 2


def _step_copies(cp, comm) -> list[dict]:
    """The copies between host and device in training steps 2 and 3 of the embedder of
    ``ranks_gpu`` over ``comm`` (the first step sets up its tables)."""
    import ranks_gpu

    embedder = Embedder(ranks_gpu.options(), communicator=comm)
    shards = lambda: embedder.shards or []  # noqa: E731
    sparse = SparseOptimizerCore(Adam(), embedder.tables.values(), shards=shards)
    copies = []
    for step in range(3):
        batch = ranks_gpu.rank_slice(ranks_gpu.global_batch(step), 0, 1, cp)
        with cp.counting() as counts:
            out, context = embedder.lookup(batch)
            embedder.apply_gradients(context, {f: a / 2 + 0.1 for f, a in out.items()})
            sparse.step(lr=0.05)
            sparse.zero_grad()
        assert all(isinstance(a, cp.ndarray) for a in out.values())
        copies.append({name: n for (kind, name), n in counts.items() if kind == "copy"})
    assert all(len(t) > 0 for t in embedder.tables.values())
    return copies[1:]


def test_owners_and_grouping_of_device_ids_equal_the_cpu_ones(cp):
    rng = np.random.default_rng(3)
    ids = rng.integers(-(2**63), 2**63 - 1, 2000, dtype=np.int64)
    tags = rng.integers(0, 3, ids.size)
    for world_size in (1, 2, 3, 8):
        for tag in (None, 2, tags):
            expected = owners(ids, tag, ["a", "b", "c"], world_size)
            device_tag = cp.asarray(tag) if isinstance(tag, np.ndarray) else tag
            got = owners(cp.asarray(ids), device_tag, ["a", "b", "c"], world_size)
            assert isinstance(got, cp.ndarray)
            np.testing.assert_array_equal(cp.asnumpy(got), expected)
            order, counts = group_by_owner(got, world_size)
            expected_order, expected_counts = group_by_owner(expected, world_size)
            np.testing.assert_array_equal(cp.asnumpy(order), expected_order)
            np.testing.assert_array_equal(cp.asnumpy(counts), expected_counts)
