"""RecIS's module paths resolve to this package's classes, and the small helpers behave as
RecIS documents them."""

import collections
import dataclasses
import importlib
import itertools
from typing import NamedTuple

import pytest
import torch

from recis.core.policies import CapacityEviction
from recis.nn.hashtable_hook import AdmitHook, FilterHook
from recis.nn.modules.hashtable import (
    HashTable,
    HashtableHookFactory,
    Slice,
    gen_slice,
    split_sparse_dense_state_dict,
)
from recis.optim import SparseAdamW, SparseOptimizer, SparseRowwiseAdagrad
from recis.utils.data_utils import CompareOp, copy_data_to_device

OPTIMIZER_PATHS = {
    "recis.optim.sparse_adam": "SparseAdam",
    "recis.optim.sparse_adamw": "SparseAdamW",
    "recis.optim.sparse_adamw_tf": "SparseAdamWTF",
    "recis.optim.sparse_adagrad": "SparseAdagrad",
    "recis.optim.sparse_row_wise_adagrad": "SparseRowWiseAdagrad",
    "recis.optim.sparse_optim": "SparseOptimizer",
    "recis.optim.adamw_tf": "AdamWTF",
}


@pytest.mark.parametrize(("path", "name"), sorted(OPTIMIZER_PATHS.items()))
def test_optimizer_module_paths_give_the_package_optimizers(path, name):
    import recis.optim

    assert getattr(importlib.import_module(path), name) is getattr(recis.optim, name)


def test_row_wise_adagrad_recis_spelling_has_recis_signature():
    from recis.optim.sparse_row_wise_adagrad import SparseRowWiseAdagrad

    assert issubclass(SparseRowWiseAdagrad, SparseOptimizer)
    assert SparseRowWiseAdagrad is not SparseRowwiseAdagrad  # lr_decay before the accumulator
    optimizer = SparseRowWiseAdagrad({"spelling": HashTable([-1, 2], name="spelling")})
    assert optimizer.param_groups[0]["lr"] == 1e-3


def test_a_sparse_optimizer_from_its_recis_path_trains_a_table():
    from recis.optim.sparse_adamw import SparseAdamW as PathAdamW

    table = HashTable([-1, 2], name="paths_table")
    optimizer = PathAdamW({"paths_table": table}, lr=0.1)
    assert isinstance(optimizer, SparseAdamW)
    table(torch.tensor([3])).sum().backward()
    optimizer.step()
    assert table(torch.tensor([3])).detach().abs().sum() > 0


@pytest.mark.parametrize("shards", [1, 3, 7, 65536])
def test_gen_slice_covers_the_key_space_with_near_equal_ranges(shards):
    slices = [gen_slice(i, shards) for i in range(shards)]
    assert slices[0].slice_begin == 0 and slices[-1].slice_end == 65536
    assert all(a.slice_end == b.slice_begin for a, b in itertools.pairwise(slices))
    sizes = [s.slice_end - s.slice_begin for s in slices]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    assert gen_slice() == Slice(0, 65536, 65536)


def test_gen_slice_rejects_a_shard_outside_the_world():
    with pytest.raises(ValueError, match="shard_index"):
        gen_slice(2, 2)


def test_split_sparse_dense_state_dict_moves_tables_out():
    table = HashTable([-1, 2], name="split_table")
    state = {"dense.weight": torch.ones(1), "split_table": table}
    sparse, dense = split_sparse_dense_state_dict(state)
    assert sparse == {"split_table": table}
    assert dense is state and list(dense) == ["dense.weight"]


def test_hook_factory_is_one_registry_that_builds_engine_policies():
    factory = HashtableHookFactory()
    assert factory is HashtableHookFactory()
    eviction = factory.create_filter_hook("factory_table", FilterHook("LFU", {"max_size": 4}))
    assert isinstance(eviction, CapacityEviction) and eviction.policy == "lfu"
    assert factory.get_filters()["LFU"]["factory_table"] is eviction
    with pytest.raises(ValueError, match="Duplicate"):
        factory.create_filter_hook("factory_table", FilterHook("LFU", {"max_size": 4}))
    admit = factory.create_admit_hook("factory_table", AdmitHook("ReadOnly"))
    assert factory.create_admit_hook("factory_table", AdmitHook("ReadOnly")) is admit


def test_hook_factory_registers_new_names_for_filter_hooks():
    factory = HashtableHookFactory()
    factory.regist_filter("Keep2", lambda: CapacityEviction(max_size=2, policy="lru"))
    assert FilterHook("Keep2").build().max_size == 2
    with pytest.raises(ValueError, match="registered"):
        factory.regist_filter("Keep2", CapacityEviction)
    with pytest.raises(ValueError, match="registered"):
        factory.regist_admit("ReadOnly", object)


class Pair(NamedTuple):
    ids: torch.Tensor
    count: int


@dataclasses.dataclass
class Batch:
    x: torch.Tensor
    extra: dict = dataclasses.field(default_factory=dict)
    cached: torch.Tensor | None = dataclasses.field(init=False, default=None)


def test_copy_data_to_device_keeps_every_container_type():
    batch = Batch(torch.ones(2, dtype=torch.float64), {"y": [torch.zeros(1, dtype=torch.float64)]})
    batch.cached = torch.ones(1, dtype=torch.float64)
    data = {"pair": Pair(torch.ones(1, dtype=torch.float64), 3), "batch": batch}
    data["counts"] = collections.defaultdict(int, {"a": torch.ones(1, dtype=torch.float64)})
    moved = copy_data_to_device(data, "cpu", dtype=torch.float32)
    assert isinstance(moved["pair"], Pair) and moved["pair"].count == 3
    assert moved["pair"].ids.dtype == torch.float32
    assert isinstance(moved["batch"], Batch) and moved["batch"].x.dtype == torch.float32
    assert moved["batch"].extra["y"][0].dtype == torch.float32
    assert moved["batch"].cached.dtype == torch.float32
    assert isinstance(moved["counts"], collections.defaultdict) and moved["counts"]["b"] == 0


def test_compare_op_codes():
    assert [op.name for op in CompareOp] == ["LT", "LE", "GT", "GE", "EQ"]
    assert CompareOp.LT == 1


NEW_PATHS = {
    ("recis.hooks.filter_hook", "HashTableFilterHook"): "recis.backends.torch.hooks.filter_hook",
    ("recis.metrics.mean", "MeanMetric"): "recis.backends.torch.metrics.mean",
    ("recis.optim.named_optimizer", "NamedAdamW"): "recis.backends.torch.optim.named_optimizer",
    (
        "recis.nn.functional.fused_ops",
        "fused_string_mask",
    ): "recis.backends.torch.functional.mask_ops",
    (
        "recis.nn.functional.fused_ops",
        "fused_number_mask",
    ): "recis.backends.torch.functional.mask_ops",
    (
        "recis.nn.functional.ragged_ops",
        "index_select_ragged_by_padded_index",
    ): "recis.backends.torch.functional.padded_index",
    (
        "recis.nn.functional.compute_real_length",
        "compute_real_length",
    ): "recis.backends.torch.functional.real_length",
}


@pytest.mark.parametrize(("path", "home"), sorted(NEW_PATHS.items()))
def test_recis_paths_re_export_the_backend_objects(path, home):
    module, name = path
    assert getattr(importlib.import_module(module), name) is getattr(
        importlib.import_module(home), name
    )
