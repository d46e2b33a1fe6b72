"""A table sharded over devices against one engine table: the same values, updates and states by
id, each id on the shard the owner rule names; tables it cannot shard are refused by name."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax", reason="the JAX backend needs jax")

from recis.backends.jax.device_tables import DeviceShardedTable, DeviceShardedUpdater
from recis.core.initializers import NormalInitializer
from recis.core.optim import Adagrad
from recis.core.policies import GlobalStepEviction
from recis.core.table import EmbeddingTable
from recis.distributed.sharding import owners

CHILDREN = ["user", "item"]


def make_table(name: str = "t", **kwargs) -> EmbeddingTable:
    init = NormalInitializer(std=0.1)
    return EmbeddingTable(name, dim=3, initializer=init, seed=5, children=CHILDREN, **kwargs)


def sharded(devices: int = 4, processes: int = 1) -> DeviceShardedTable:
    return DeviceShardedTable([make_table() for _ in range(devices)], processes)


def ids_and_tags(seed: int, size: int = 200):
    rng = np.random.default_rng(seed)
    ids = np.unique(rng.integers(-(2**62), 2**62, size))
    return ids, rng.integers(0, 2, ids.size)


def by_id(state: dict) -> dict:
    keys = zip(state["id"].tolist(), state["tag"].tolist(), strict=True)
    fields = [k for k in state if k not in ("id", "tag", "row") and not k.startswith("rows.")]
    return {key: [state[f][i].tolist() for f in fields] for i, key in enumerate(keys)}


def test_a_lookup_reads_what_one_table_reads_each_id_on_its_owners_shard():
    table, plain = sharded(), make_table()
    ids, tags = ids_and_tags(0)
    found, expected = table.lookup(ids, tags), plain.lookup(ids, tags)
    np.testing.assert_array_equal(found.values, expected.values)
    assert len(table) == len(plain) == ids.size and found.stats.new == ids.size
    np.testing.assert_array_equal(found.rows % 4, owners(ids, tags, CHILDREN, 4))
    for device, shard in enumerate(table.shards):
        entries = shard.ids.export()
        assert entries.keys.size > 0
        assert (owners(entries.keys, entries.tags, CHILDREN, 4) == device).all()
    np.testing.assert_array_equal(table.find(ids, tags), found.rows)
    np.testing.assert_array_equal(table.gather(found.rows), expected.values)


def test_within_a_process_of_several_the_devices_take_the_global_shard_over_the_process():
    ids, tags = ids_and_tags(1)
    mine = owners(ids, tags, CHILDREN, 2) == 1  # the ids process 1 of 2 owns
    table = sharded(devices=2, processes=2)
    rows = table.lookup(ids[mine], tags[mine]).rows
    global_shard = owners(ids[mine], tags[mine], CHILDREN, 4)
    np.testing.assert_array_equal(global_shard % 2, 1)
    np.testing.assert_array_equal(rows % 2, global_shard // 2)


def test_the_updater_applies_each_rows_gradient_on_its_shard_like_one_table():
    table, plain = sharded(), make_table()
    tables = {"sharded": table, "plain": plain}
    updaters = {name: DeviceShardedUpdater(Adagrad(), [t]) for name, t in tables.items()}
    for step in range(3):
        ids, tags = ids_and_tags(10 + step, 60)
        grads = np.random.default_rng(step).normal(size=(ids.size, 3)).astype(np.float32)
        for name, t in tables.items():
            t.grads.add(t.lookup(ids, tags).rows, grads, distinct=True)
            updaters[name].step(lr=0.1)
    assert by_id(table.state_dict()) == by_id(plain.state_dict())
    assert updaters["sharded"].steps == updaters["plain"].steps == {"t": 3}


def test_states_move_between_sharded_and_plain_tables_by_id():
    table, plain = sharded(), make_table()
    ids, tags = ids_and_tags(2)
    table.lookup(ids, tags)
    table.erase(ids[:5], tags[:5])
    plain.load_state_dict(table.state_dict())
    other = sharded(devices=3)
    other.load_state_dict(plain.state_dict())
    assert by_id(plain.state_dict()) == by_id(table.state_dict()) == by_id(other.state_dict())
    assert len(other) == ids.size - 5
    np.testing.assert_array_equal(other.lookup(ids, tags, train=False).values,
                                  plain.lookup(ids, tags, train=False).values)  # fmt: skip


def test_a_table_with_an_eviction_policy_is_not_sharded_over_devices():
    with pytest.raises(NotImplementedError, match="table 't' cannot be sharded over devices"):
        DeviceShardedTable([make_table(eviction=GlobalStepEviction()) for _ in range(2)])


def test_a_layer_sharded_over_devices_clones_its_tables_with_their_shards():
    from types import SimpleNamespace

    from flax import nnx

    from recis.backends.jax import EmbeddingOption
    from recis.backends.jax.flax import SparseEmbedding

    two_devices = SimpleNamespace(size=2)  # the embedder reads only how many devices
    layer = SparseEmbedding({"f": EmbeddingOption(embedding_dim=2, shared_name="f")}, two_devices)
    _, context = layer.lookup({"f": np.arange(6)[:, None]})
    layer.embedder.discard(context)
    copy = nnx.clone(layer)
    (table,), (copied,) = layer.tables.values(), copy.tables.values()
    assert isinstance(copied, DeviceShardedTable) and copied is not table
    assert [len(s) for s in copied.shards] == [len(s) for s in table.shards] == [4, 2]
    copy.lookup({"f": np.arange(6, 9)[:, None]})
    assert len(table) == 6 and len(copied) == 9
