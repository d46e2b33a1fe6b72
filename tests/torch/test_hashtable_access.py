"""HashTable's direct access methods as RecIS scripts and tests use them."""

import pytest
import torch

from recis.nn.hashtable_hook import AdmitHook
from recis.nn.initializers import ConstantInitializer
from recis.nn.modules.hashtable import HashTable
from recis.optim import SparseSGD


def filled(ids, dim=3):
    return ids.float()[:, None].repeat(1, dim)


def test_insert_sets_rows_and_lookups_read_them():
    table = HashTable([-1, 3], name="insert_read")
    table(torch.arange(4))  # zeros by default
    table.insert(torch.arange(4, 8), filled(torch.arange(4, 8)))
    assert torch.equal(table(torch.tensor([5, 1, 7])), filled(torch.tensor([5, 0, 7])))
    assert sorted(table.ids().tolist()) == list(range(8))


def test_insert_overwrites_and_last_repeat_wins():
    table = HashTable([-1, 2], name="insert_twice")
    table.insert(torch.tensor([3, 3]), torch.tensor([[1.0, 1.0], [2.0, 2.0]]))
    table.insert(torch.tensor([4]), torch.tensor([[5.0, 6.0]]))
    ids, embeddings = table.ids_embeddings()
    assert dict(zip(ids.tolist(), embeddings.tolist(), strict=True)) == {
        3: [2.0, 2.0],
        4: [5.0, 6.0],
    }


def test_insert_checks_the_shape():
    table = HashTable([-1, 2], name="bad_insert")
    with pytest.raises(ValueError, match=r"bad_insert.*\[2, 2\]"):
        table.insert(torch.tensor([1, 2]), torch.ones(2, 3))


def test_ids_and_embeddings_line_up_with_rows():
    table = HashTable([-1, 2], name="line_up")
    table.insert(torch.tensor([30, 10, 20]), filled(torch.tensor([30, 10, 20]), 2))
    ids, rows, embeddings = table.snap_shot()
    assert torch.equal(embeddings, filled(ids, 2))
    assert torch.equal(table.embeddings(), embeddings)
    assert torch.equal(table.ids(), ids)
    assert rows.tolist() == sorted(rows.tolist())


def test_accept_grad_sums_per_row_and_divides_by_steps():
    table = HashTable([-1, 4], name="grads")
    table.accept_grad(torch.tensor([1, 2, 3]), torch.ones(3, 4))
    table.accept_grad(torch.tensor([1, 1, 1]), torch.full((3, 4), 2.0))
    table.accept_grad(torch.tensor([2, 2, 2]), torch.full((3, 4), 3.0))
    grad = table.grad().coalesce()
    assert grad.indices().tolist() == [[1, 2, 3]]
    assert grad.values()[:, 0].tolist() == [7.0, 10.0, 1.0]
    assert table.grad(2).coalesce().values()[:, 0].tolist() == [3.5, 5.0, 0.5]
    table.clear_grad()
    assert table.grad()._nnz() == 0


def test_lookup_gradients_show_in_grad():
    table = HashTable([-1, 2], name="lookup_grads", initializer=ConstantInitializer(1.0))
    (table(torch.tensor([8, 9, 8])) * 3).sum().backward()
    ids, rows = table.ids_map()
    by_id = dict(zip(ids.tolist(), rows.tolist(), strict=True))
    grad = table.grad().to_dense()
    assert grad[by_id[8]].tolist() == [6.0, 6.0]
    assert grad[by_id[9]].tolist() == [3.0, 3.0]


def test_accepted_gradients_drive_the_optimizer():
    table = HashTable([-1, 2], name="accept_step", initializer=ConstantInitializer(1.0))
    table(torch.tensor([5]))
    _, rows = table.ids_map()
    table.accept_grad(rows, torch.tensor([[1.0, -1.0]]))
    optimizer = SparseSGD({"accept_step": table}, lr=0.5)
    optimizer.step()
    assert table.embeddings().tolist() == [[0.5, 1.5]]


def test_clear_empties_the_table_and_rows_come_back_initial():
    table = HashTable([-1, 2], name="cleared", initializer=ConstantInitializer(2.0))
    table.insert(torch.tensor([1, 2]), torch.zeros(2, 2))
    table.clear()
    assert table.ids().numel() == 0
    assert table(torch.tensor([1])).tolist() == [[2.0, 2.0]]


def test_read_only_admit_hook_inserts_nothing_and_reads_zeros():
    table = HashTable([-1, 2], name="read_only", initializer=ConstantInitializer(4.0))
    table(torch.tensor([1]))
    out = table(torch.tensor([1, 2]), admit_hook=AdmitHook("ReadOnly"))
    assert out.tolist() == [[4.0, 4.0], [0.0, 0.0]]
    out.sum().backward()
    assert table.ids().tolist() == [1]
    assert table.grad().coalesce().values().tolist() == [[1.0, 1.0]]
    assert table(torch.tensor([2])).tolist() == [[4.0, 4.0]]  # the default admits again


def test_a_second_argument_that_is_no_hook_is_taken_as_tags():
    table = HashTable([-1, 2], name="pair_tags", coalesced=True, children=["a", "b"])
    table(torch.tensor([1]), torch.tensor([1]))
    assert table.ids("b").tolist() == [1] and table.ids("a").tolist() == []
    with pytest.raises(TypeError, match=r"pair_tags.*admit_hook"):
        table(torch.tensor([1]), torch.tensor([0]), tags=torch.tensor([0]))


def test_implementation_object_inserts_and_looks_up():
    table = HashTable([-1, 2], name="impl_view")
    table._hashtable_impl.insert(torch.tensor([7]), torch.tensor([[1.0, 2.0]]))
    rows, values = table._hashtable_impl.embedding_lookup(torch.tensor([7, 8]), True)
    assert rows[1].item() == -1
    assert values.tolist() == [[1.0, 2.0], [0.0, 0.0]]
    assert table.ids().tolist() == [7]


def test_children_are_read_and_cleared_one_by_one():
    table = HashTable([-1, 2], name="pair", coalesced=True, children=["a", "b"])
    table(torch.tensor([1, 2]), tags=torch.tensor([0, 1]))
    assert table.ids("a").tolist() == [1] and table.ids("b").tolist() == [2]
    table.clear("a")
    assert table.ids().tolist() == [2]
    with pytest.raises(KeyError, match=r"pair.*'c'"):
        table.ids("c")
