"""Tables whose rows have several dimensions (RecIS's ``embedding_shape=[2, 3]``)."""

from __future__ import annotations

import pytest
import torch

from recis.nn.modules.hashtable import HashTable
from recis.optim import SparseSGD


def test_rows_keep_their_shape_through_lookup_insert_and_snapshot():
    table = HashTable([2, 3], name="multidim_lookup")
    assert table.row_shape == (2, 3) and table.dim == 6
    assert table(torch.tensor([[4, 8, 4]])).shape == (1, 3, 2, 3)
    rows = torch.arange(12.0).reshape(2, 2, 3)
    table.insert(torch.tensor([4, 8]), rows)
    ids, index, embeddings = table.snap_shot()
    assert embeddings.shape == (2, 2, 3)
    assert torch.equal(embeddings[ids.argsort()], rows)
    assert torch.equal(table.raw_embeddings()[index[ids == 8]], rows[1:])
    assert torch.equal(table(torch.tensor([8, 4])), rows.flip(0))


def test_gradients_of_a_multidim_row_update_every_value():
    table = HashTable([-1, 2, 2], name="multidim_grads")
    optimizer = SparseSGD({"multidim_grads": table}, lr=0.5)
    out = table(torch.tensor([3, 3]))
    (out * torch.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    _, (row,) = table.ids_map()
    assert table.grad().to_dense()[row].tolist() == [[2.0, 4.0], [6.0, 8.0]]
    optimizer.step()
    assert table(torch.tensor([3]))[0].tolist() == [[-1.0, -2.0], [-3.0, -4.0]]


def test_insert_of_wrongly_shaped_rows_and_bad_shapes_name_the_table():
    table = HashTable([2, 3], name="multidim_bad")
    with pytest.raises(ValueError, match=r"'multidim_bad': insert needs embeddings \[1, 2, 3\]"):
        table.insert(torch.tensor([1]), torch.zeros(1, 6))
    with pytest.raises(ValueError, match=r"'zero_rows'.*positive"):
        HashTable([-1, 0], name="zero_rows")
