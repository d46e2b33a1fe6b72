"""RecIS's ``compute_real_length``: per sample, the sequence positions where two aligned
sequence features both hold a value.

Numeric features are 3-D ragged ``[batch, seq, values]``: a position counts when the item and
the seller each have a non-zero value there. String features are 4-D int8 ragged
``[batch, seq, strings, bytes]``: a position counts when each has a string that is neither
empty nor ``"0"``. The lengths come back as float32 ``[batch]``.

>>> import torch
>>> from recis.backends.torch.ragged import RaggedTensor
>>> outer, inner = torch.tensor([0, 2, 4]), torch.tensor([0, 1, 3, 4, 6])
>>> item = RaggedTensor(torch.tensor([1, 2, 3, 4, 5, 6]), [outer, inner])
>>> seller = RaggedTensor(torch.tensor([10, 0, 0, 40, 0, 60]), [outer, inner])
>>> compute_real_length(item, seller)
tensor([1., 2.])
"""

from __future__ import annotations

import torch

from recis.backends.torch.ragged import RaggedTensor


def compute_real_length(item_ragged: RaggedTensor, seller_ragged: RaggedTensor) -> torch.Tensor:
    """Float32 ``[batch]`` counts of the positions valid in both features (module docstring)."""
    for name, x in (("item_ragged", item_ragged), ("seller_ragged", seller_ragged)):
        if not isinstance(x, RaggedTensor):
            raise TypeError(f"{name} must be RaggedTensor, got {type(x)}")
    levels = len(item_ragged.offsets())
    if levels not in (2, 3):
        raise ValueError(
            f"Unsupported ragged dimension: {levels}. Only 3D (num_ragged_dim=2) and 4D "
            "(num_ragged_dim=3) ragged tensors are supported."
        )
    batch = item_ragged.offsets()[0].numel() - 1
    if seller_ragged.offsets()[0].numel() - 1 != batch:
        raise ValueError(
            f"Batch sizes do not match: item has {batch}, seller has "
            f"{seller_ragged.offsets()[0].numel() - 1}"
        )
    return real_length(
        item_ragged.values(),
        item_ragged.offsets(),
        seller_ragged.values(),
        seller_ragged.offsets(),
        levels,
    )


def real_length(item_values, item_offsets, seller_values, seller_offsets, num_ragged_dim):
    """:func:`compute_real_length` on the parts of the two ragged tensors."""
    batch = item_offsets[0].numel() - 1
    out = torch.zeros(batch, dtype=torch.float32, device=item_values.device)
    if batch <= 0 or item_values.numel() == 0 or seller_values.numel() == 0:
        return out
    item = _valid_positions(item_values, item_offsets, num_ragged_dim)
    seller = _valid_positions(seller_values, seller_offsets, num_ragged_dim)
    if item.numel() != seller.numel():
        raise ValueError("item and seller must have the same sequence positions")
    sample = _row_of(item_offsets[0], item.numel())
    return out.index_add(0, sample, (item & seller).float())


def _valid_positions(values, offsets, levels: int) -> torch.Tensor:
    """Per sequence position, whether it holds a non-zero number (or a non-"0" string)."""
    if levels == 2:
        present = values != 0
    else:
        if values.dtype != torch.int8:
            raise TypeError("4D RaggedTensor values must be int8 type for string storage")
        chars = offsets[2].to(device=values.device, dtype=torch.int64)
        lengths = chars[1:] - chars[:-1]
        first = values[chars[:-1].clamp(max=max(values.numel() - 1, 0))]
        present = (lengths > 0) & ~((lengths == 1) & (first == ord("0")))
    strings = offsets[1].to(device=values.device, dtype=torch.int64)
    owner = _row_of(strings, present.numel())
    counts = torch.zeros(strings.numel() - 1, dtype=torch.int64, device=values.device)
    return counts.index_add(0, owner, present.long()) > 0


def _row_of(offsets: torch.Tensor, count: int) -> torch.Tensor:
    """For each of ``count`` entries, the row of ``offsets`` it falls in."""
    offsets = offsets.to(dtype=torch.int64)
    positions = torch.arange(count, device=offsets.device)
    return torch.searchsorted(offsets, positions, right=True) - 1
