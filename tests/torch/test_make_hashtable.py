"""torch.ops.recis.make_hashtable called as RecIS's HashTable calls it: a working table."""

from __future__ import annotations

import torch

import recis.backends.torch.ops  # noqa: F401
from recis.backends.torch.hashtable_access import HashtableImpl
from recis.nn.initializers import ConstantInitializer


def test_the_table_of_a_built_initializer_looks_up_inserts_and_lists_ids():
    initializer = ConstantInitializer(init_val=0.25)
    initializer.set_shape([16, 3])
    initializer.build()
    impl = torch.ops.recis.make_hashtable(
        16, [3], torch.float32, "cpu", False, ["user_emb"], initializer.impl(), 0, 65536, 65536
    )
    assert isinstance(impl, HashtableImpl)
    rows, values = impl.embedding_lookup(torch.tensor([11, 12]))
    assert rows.tolist() == [0, 1] and values.tolist() == [[0.25] * 3] * 2
    impl.insert(torch.tensor([12]), torch.tensor([[1.0, 2.0, 3.0]]))
    _, values = impl.embedding_lookup(torch.tensor([12]), True)
    assert values.tolist() == [[1.0, 2.0, 3.0]]
    assert sorted(impl.ids().tolist()) == [11, 12]


def test_coalesced_children_are_the_tables_children():
    impl = torch.ops.recis.make_hashtable(
        8,
        [2],
        torch.float32,
        "cpu",
        True,
        ["a", "b"],
        ConstantInitializer(),
        0,
        65536,
        65536,
        False,
    )
    table = impl._table
    assert (table.name, table.children_hashtable, table.dim) == ("a", ["a", "b"], 2)
    assert impl.ids("a").tolist() == [] and impl.ids("b").tolist() == []
