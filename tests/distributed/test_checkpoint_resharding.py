"""Checkpoints saved by N ranks load on M ranks (1, 2, 4, and a process without torch.distributed)
with identical tables and optimizer state; each rank writes its own shard, rank 0 merges the index.

The engine's part (sharded writer, merge, load by owner) is also checked with ranks played by
threads, without processes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import ranks_checkpoint
import torch
from launch import run_ranks
from ranks_checkpoint import ThreadWorld, core_shard

from recis.backends.torch.checkpoint import CheckpointManager
from recis.checkpoint import (
    INDEX,
    Checkpoint,
    CheckpointDirectory,
    CheckpointError,
    ShardedCheckpointWriter,
    checkpoint_writer,
    gather_max,
    load_tables,
    plan_load,
    read_checkpoint_list,
)
from recis.checkpoint.sharded import max_over_ranks, merge_parts
from recis.distributed.communicator import SingleProcess
from recis.distributed.sharding import owners

NOT_FIELDS = ("id", "tag", "row")


def by_id(shards: list[dict]) -> dict:
    """Over every rank's shard: (table, tag, id) → the bytes of each field, and (table, tag,
    key) → count of the ids pending admission. An id held by two ranks fails."""
    rows, pending = {}, {}
    for shard in shards:
        for name, state in shard.items():
            fields = [k for k in state if k not in NOT_FIELDS and "." not in k]
            keys = zip(state["tag"].tolist(), state["id"].tolist(), strict=True)
            for i, key in enumerate(keys):
                assert (name, *key) not in rows, f"{name} id {key} is on two ranks"
                rows[(name, *key)] = tuple(state[f][i].tobytes() for f in fields)
            if "admission.keys" in state:
                waiting = zip(state["admission.tags"].tolist(), state["admission.keys"].tolist(),
                              state["admission.counts"].tolist(), strict=True)  # fmt: skip
                pending |= {(name, tag, key): n for tag, key, n in waiting}
    return {"rows": rows, "pending": pending}


def assert_same_by_id(expected: list[dict], actual: list[dict], pending: bool = True) -> None:
    want, got = by_id(expected), by_id(actual)
    assert want["rows"].keys() == got["rows"].keys()
    assert want["rows"] == got["rows"]
    assert want["pending"] == got["pending"]
    assert want["rows"] and bool(want["pending"]) == pending  # what the comparison covers


def assert_owned(shards: list[dict], children: dict[str, list[str]]) -> None:
    """Rank r of len(shards) holds only ids (and pending ids) it owns."""
    for rank, shard in enumerate(shards):
        for name, state in shard.items():
            waiting = (state.get("admission.keys"), state.get("admission.tags"))
            for ids, tags in ((state["id"], state["tag"]), waiting):
                if ids is not None and ids.size:
                    assert (owners(ids, tags, children[name], len(shards)) == rank).all(), name


def assert_clock_is_the_latest(saved: list[dict], loaded: list[dict]) -> None:
    for name in saved[0]:
        latest = max(int(s[name]["eviction.step"]) for s in saved)
        assert all(int(s[name]["eviction.step"]) == latest for s in loaded), name


TORCH_CHILDREN = {"user": ["user"], "item+tag": ["item", "tag"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Train and save on 1, 2 and 4 ranks (the same global batches), each run also loading the
    previous run's checkpoint; the 2-rank run also trains through the Trainer; in the 4-rank
    run, ranks 0 and 1 also load its checkpoint as a world of two."""
    root = tmp_path_factory.mktemp("resharding")
    paths = {n: str(root / f"saved-by-{n}") for n in (1, 2, 4)}
    run_dir = str(root / "trainer")
    one = ranks_checkpoint.train_save_load(0, 1, paths[1], paths[1])
    two = run_ranks(2, "ranks_checkpoint:save_load_and_train", paths[2], paths[1], run_dir)
    four = run_ranks(4, "ranks_checkpoint:save_load_and_load_on_two", paths[4], paths[2])
    trainer = [r.pop("trainer") for r in two]
    back = [r.pop("on_two") for r in four][:2]
    return {"paths": paths, 1: [one], 2: two, 4: four, "back": back, "trainer": trainer,
            "run_dir": run_dir}  # fmt: skip


def saved(runs, world_size: int) -> list[dict]:
    return [r["saved"] for r in runs[world_size]]


def test_each_rank_writes_its_shard_and_rank_zero_merges_the_index(runs):
    path = Path(runs["paths"][2])
    names = sorted(p.name for p in path.iterdir())
    assert names == [INDEX, "sparse-r00000-00000.safetensors", "sparse-r00000-00001.safetensors",
                     "sparse-r00001-00000.safetensors"]  # fmt: skip
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]
    checkpoint = Checkpoint(path)
    assert checkpoint.world_size == 2
    sizes = [sum(s[t]["id"].size for t in s) for s in saved(runs, 2)]
    assert sum(checkpoint.logical[c]["ids"] for c in checkpoint.logical) == sum(sizes)
    assert min(sizes) > 0
    ids = checkpoint.tensor_info("user/id")
    assert ids["files"] == ["sparse-r00000-00000.safetensors", "sparse-r00001-00000.safetensors"]
    assert checkpoint.tables["user"]["state"] == ["eviction.step"]  # no rank's row allocator
    assert not [n for n in checkpoint.tensor_names() if "@rows." in n]
    single = Checkpoint(runs["paths"][1])
    assert "world_size" not in single.index and single.world_size == 1
    assert sorted(single.index["files"]) == ["sparse-00000.safetensors"]


def test_the_same_ranks_reload_what_they_saved(runs):
    for world_size in (1, 2, 4):
        reloaded = [r["reloaded"] for r in runs[world_size]]
        assert_same_by_id(saved(runs, world_size), reloaded)
        assert_owned(reloaded, TORCH_CHILDREN)
    one = runs[1][0]  # one process, one layout: the exact restore, rows and allocator included
    for name, state in one["saved"].items():
        for key, value in state.items():
            if not key.startswith("admission."):
                assert value.tobytes() == one["reloaded"][name][key].tobytes(), (name, key)


def test_saved_on_two_loads_in_one_process_without_torch_distributed(runs):
    assert not torch.distributed.is_initialized()
    loaded = [ranks_checkpoint.loaded(runs["paths"][2])]
    assert_same_by_id(saved(runs, 2), loaded)
    assert_clock_is_the_latest(saved(runs, 2), loaded)


def test_saved_on_two_loads_on_four_ranks(runs):
    loaded = [r["loaded"] for r in runs[4]]
    assert_same_by_id(saved(runs, 2), loaded)
    assert_owned(loaded, TORCH_CHILDREN)
    assert_clock_is_the_latest(saved(runs, 2), loaded)


def test_saved_on_four_loads_on_two_ranks(runs):
    loaded = runs["back"]
    assert_same_by_id(saved(runs, 4), loaded)
    assert_owned(loaded, TORCH_CHILDREN)
    assert_clock_is_the_latest(saved(runs, 4), loaded)


def test_saved_on_one_loads_on_two_ranks(runs):
    loaded = [r["loaded"] for r in runs[2]]
    assert_same_by_id(saved(runs, 1), loaded)
    assert_owned(loaded, TORCH_CHILDREN)


def test_the_trainer_saves_and_restores_on_two_ranks(runs):
    results = runs["trainer"]
    assert_same_by_id([r["saved"] for r in results], [r["restored"] for r in results])
    for rank, result in enumerate(results):
        before, after = result["optimizer"]
        assert after == before and before["tables"]["steps"] == {"user": 3, "item+tag": 3}
        assert result["data"] == ({"position": 3, "rank": rank}, {"position": 3, "rank": rank})
        assert result["global_step"] == 3
    run_dir = Path(runs["run_dir"])
    assert read_checkpoint_list(run_dir) == ["ckpt_3"]
    files = sorted(Checkpoint(run_dir / "ckpt_3").index["files"])
    assert [f for f in files if f.startswith("rank-")] == [
        "rank-r00000.json", "rank-r00001.json", "rank-state-r00000.json",
        "rank-state-r00000.safetensors", "rank-state-r00001.json", "rank-state-r00001.safetensors",
    ]  # fmt: skip
    assert {"model.json", "model.safetensors", "extra.json", "extra.safetensors"} <= set(files)
    assert not [f for f in files if f.endswith(".pt")]


def test_a_checkpoint_of_two_trainer_ranks_restores_in_one_process(runs):
    model = ranks_checkpoint.Tables()
    sparse = ranks_checkpoint.optimizer(model)
    manager = CheckpointManager(runs["run_dir"], model, sparse_optimizer=sparse)
    assert manager.restore() and manager.global_step == 3
    results = runs["trainer"]
    assert_same_by_id([r["saved"] for r in results], [ranks_checkpoint.shard_states(model)])
    assert sparse.state_dict() == results[0]["optimizer"][0]
    with_data = CheckpointManager(runs["run_dir"], ranks_checkpoint.Tables(), dataset=_Data())
    with pytest.raises(CheckpointError, match=r"saved by 2 rank\(s\) and 1 load it"):
        with_data.restore()
    bank = [{"path": runs["run_dir"], "load": ["sparse", "extra"]}]
    with_data.load_model_bank(bank)  # the data position is not asked for
    assert with_data.global_step == 3


class _Data:
    def state_dict(self) -> dict:
        return {"position": 0}

    def load_state_dict(self, state: dict) -> None:
        raise AssertionError("a position of another number of ranks must not load")


# -- the engine's part, with ranks played by threads -------------------------------------------

CORE_CHILDREN = {"user+item": ["user", "item"], "query": ["query"]}


def _save_shard(comm, path, max_file_bytes):
    tables = core_shard(comm.rank, comm.world_size)
    with ShardedCheckpointWriter(path, comm, max_file_bytes=max_file_bytes) as writer:
        writer.write_tables(tables)
        writer.write_dense({"w": np.full(3, comm.rank, np.float32)})
        writer.commit({"step": 7})
    return {name: table.state_dict() for name, table in tables.items()}, tables


def _load_shard(comm, path):
    tables = core_shard(0, 1, steps=0)  # empty tables with optimizer slots
    checkpoint = Checkpoint(path)
    load_tables(checkpoint, tables, plan_load(checkpoint, tables), communicator=comm)
    return {name: table.state_dict() for name, table in tables.items()}


def test_threads_save_three_shards_that_load_on_one_two_and_three_ranks(tmp_path):
    path = tmp_path / "ckpt"
    results = ThreadWorld(3).run(_save_shard, path, 600)
    saved_states = [states for states, _ in results]
    checkpoint = Checkpoint(path)
    assert checkpoint.world_size == 3 and checkpoint.metadata == {"step": 7}
    assert checkpoint.read_tensor("w").tolist() == [0.0, 0.0, 0.0]  # rank 0's dense arrays
    assert len(checkpoint.tensor_info("user/embedding")["files"]) > 3  # several files a rank
    stats = [t.stats_total.as_dict() for _, tables in results for t in [tables["query"]]]
    summed = {k: sum(s[k] for s in stats) for k in stats[0]}
    assert checkpoint.tables["query"]["lookup_stats"] == summed
    for world_size in (2, 3):
        loaded = ThreadWorld(world_size).run(_load_shard, path)
        assert_same_by_id(saved_states, loaded)
        assert_owned(loaded, CORE_CHILDREN)
        assert_clock_is_the_latest(saved_states, loaded)
    alone = [_load_shard(None, path)]
    assert_same_by_id(saved_states, alone)
    assert_clock_is_the_latest(saved_states, alone)


def _fail_on_rank_one(comm, path):
    with ShardedCheckpointWriter(path, comm) as writer:
        writer.write_tables(core_shard(comm.rank, comm.world_size))
        if comm.rank == 1:
            raise OSError("disk full")
        writer.commit()


def test_a_failing_rank_publishes_nothing_and_every_rank_raises(tmp_path):
    errors = ThreadWorld(3).run(_fail_on_rank_one, tmp_path / "ckpt")
    assert isinstance(errors[1], OSError)
    for rank in (0, 2):
        assert isinstance(errors[rank], CheckpointError)
        assert "rank 1: OSError: disk full" in str(errors[rank])
    assert list(tmp_path.iterdir()) == []


def _save_apart(comm, root):
    with ShardedCheckpointWriter(root / str(comm.rank) / "ckpt", comm) as writer:
        writer.commit()


def test_ranks_that_do_not_share_the_directory_are_told_so(tmp_path):
    errors = ThreadWorld(2).run(_save_apart, tmp_path)
    for error in errors:
        assert isinstance(error, CheckpointError)
        assert "ranks [1] do not see" in str(error) and "one shared file system" in str(error)
    assert [p.name for p in (tmp_path / "0").iterdir()] == []


def _save_run(comm, root):
    directory = CheckpointDirectory(root, max_to_keep=2)

    def fill(writer):
        writer.write_tables(core_shard(comm.rank, comm.world_size))
        writer.write_rank_file("note.txt", lambda out: out.write(b"%d" % comm.rank))

    paths = [directory.save(step, fill, communicator=comm) for step in (1, 2, 3)]
    return paths, directory.names()


def test_rank_zero_lists_and_rotates_once_every_rank_has_written(tmp_path):
    results = ThreadWorld(2).run(_save_run, tmp_path)
    for paths, names in results:  # each rank returns after the checkpoint is listed
        assert paths[-1] == tmp_path / "ckpt_3" and names == ["ckpt_2", "ckpt_3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint", "ckpt_2", "ckpt_3"]
    checkpoint = Checkpoint(tmp_path)
    assert (checkpoint.path / "note-r00001.txt").read_text() == "1"
    assert json.loads((checkpoint.path / INDEX).read_text())["metadata"] == {"step": 3}


def test_merging_refuses_ranks_that_saved_different_tables():
    logical = {"table": "t", "tag": 0, "ids": 2, "state": []}
    part = {"files": {}, "tensors": {}, "tables": {}, "logical": {"a": logical}, "dense": [],
            "physical": {}}  # fmt: skip
    other = {**part, "logical": {"b": logical}}
    with pytest.raises(CheckpointError, match="rank 1 saved the tables"):
        merge_parts([part, other])
    wide = {**part, "tensors": {"t/id": {"dtype": "int64", "shape": [2, 3], "files": ["x"]}}}
    narrow = {**wide, "tensors": {"t/id": {"dtype": "int64", "shape": [2, 4], "files": ["y"]}}}
    with pytest.raises(CheckpointError, match="rank 1 wrote tensor 't/id'"):
        merge_parts([wide, narrow])


def test_counters_of_several_ranks_are_their_largest():
    states = [
        {"steps": {"a": 3, "b": 1}, "micro_step": 4, "rule": "Adam", "on": True},
        {"steps": {"a": 2, "b": 5}, "micro_step": 4, "rule": "Adam", "on": False},
    ]
    assert max_over_ranks(states) == {
        "steps": {"a": 3, "b": 5}, "micro_step": 4, "rule": "Adam", "on": True,
    }  # fmt: skip
    gathered = ThreadWorld(2).run(lambda comm: gather_max(comm, states[comm.rank], "counters"))
    assert gathered == [max_over_ranks(states)] * 2
    assert gather_max(None, states[1], "counters") is states[1]


def test_one_process_writes_a_plain_checkpoint(tmp_path):
    assert type(checkpoint_writer(tmp_path / "a", SingleProcess())).__name__ == "CheckpointWriter"
    with checkpoint_writer(tmp_path / "b") as writer:
        writer.write_tables(core_shard(0, 1))
        path = writer.commit()
    assert "world_size" not in json.loads((path / INDEX).read_text())


class _Position:
    """A data position that JSON holds."""

    def __init__(self, position: int) -> None:
        self.position = position

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = state["position"]


def _jax_manager(comm, root, position: int | None, fill: bool):
    """A JAX manager over an embedder whose table holds (when ``fill``) random rows of the ids
    this rank owns; rank r's sparse optimizer has counted r + 1 micro-steps."""
    import jax.numpy as jnp
    import optax

    from recis.backends.jax import Embedder, EmbeddingOption, SparseOptimizer, TrainStep, rules
    from recis.backends.jax.checkpoint import CheckpointManager as JaxManager

    rank, world_size = (0, 1) if comm is None else (comm.rank, comm.world_size)
    embedder = Embedder({"f": EmbeddingOption(embedding_dim=2, shared_name="f")})
    sparse = SparseOptimizer(embedder, rules.Adam(), 0.1)
    step = TrainStep(lambda p, b: jnp.zeros(1), {"w": jnp.ones(2)}, optax.sgd(0.1), sparse,
                     [embedder])  # fmt: skip
    table = embedder.tables["f"]
    if fill:
        ids = np.arange(-30, 30)
        rows = table.find_or_insert(ids[owners(ids, None, ["f"], world_size) == rank]).rows
        rng = np.random.default_rng(rank)
        for name, spec in table.store.fields.items():
            values = rng.standard_normal((rows.size, *spec.shape)).astype(spec.dtype)
            table.store.scatter(rows, values, name)
        for _ in range(rank + 1):
            sparse.step()
    data = _Position(position) if position is not None else None
    manager = JaxManager(root, step, dataset=data, save_steps=1, communicator=comm)
    return manager, {"f": table}, sparse


def _jax_save(comm, root):
    manager, tables, _ = _jax_manager(comm, root, 10 + comm.rank, fill=True)
    manager.step()
    return {name: table.state_dict() for name, table in tables.items()}


def _jax_restore(comm, root):
    manager, tables, sparse = _jax_manager(comm, root, -1, fill=False)
    assert manager.restore()
    state = {name: table.state_dict() for name, table in tables.items()}
    return state, manager.io_datasets["dataset"].position, sparse.state_dict()


def test_the_jax_manager_saves_shards_that_restore_on_other_ranks(tmp_path):
    saved_states = ThreadWorld(2).run(_jax_save, tmp_path)
    checkpoint = Checkpoint(tmp_path)
    assert checkpoint.world_size == 2
    assert {"rank-r00000.json", "rank-r00001.json"} <= set(checkpoint.index["files"])
    assert checkpoint.metadata["sparse_optimizer"]["tables"]["micro_step"] == 2  # the largest
    restored = ThreadWorld(2).run(_jax_restore, tmp_path)
    assert_same_by_id(saved_states, [state for state, _, _ in restored], pending=False)
    assert [position for _, position, _ in restored] == [10, 11]  # each rank its own
    assert all(counters["tables"]["micro_step"] == 2 for _, _, counters in restored)
    manager, tables, _ = _jax_manager(None, tmp_path, None, fill=False)
    assert manager.restore() and manager.global_step == 1
    alone = [{name: table.state_dict() for name, table in tables.items()}]
    assert_same_by_id(saved_states, alone, pending=False)
    with_data, _, _ = _jax_manager(None, tmp_path, 0, fill=False)
    with pytest.raises(CheckpointError, match="do not carry over"):
        with_data.restore()
