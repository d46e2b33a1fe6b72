"""RecIS's ``no_reduce`` embedding output: a feature's rows without a combiner.

``EmbeddingOption(no_reduce=True)`` makes :class:`~recis.nn.EmbeddingEngine` return, for the
feature, a :class:`NoReduceEmbedding`: ``emb`` holds the rows of the batch's distinct ids
(``[distinct, dim]``, differentiable unless the feature is frozen), ``reverse_index`` gives each
id's row of ``emb`` (``emb[reverse_index]`` is one row per id, in input order) and ``offsets``
are the input's innermost offsets, so a model can reduce the rows itself.

>>> import torch
>>> ids = torch.tensor([7, 3, 7])
>>> distinct, reverse_index = distinct_ids(ids)
>>> distinct.tolist(), reverse_index.tolist()
([3, 7], [1, 0, 1])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recis.backends.torch.ragged import RaggedTensor


@dataclass
class NoReduceEmbedding:
    """A feature's uncombined rows (see the module docstring)."""

    emb: torch.Tensor
    reverse_index: torch.Tensor
    offsets: torch.Tensor


def distinct_ids(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(distinct ids, each id's position among them)``."""
    return torch.unique(ids.reshape(-1), return_inverse=True)


def innermost_offsets(value) -> torch.Tensor:
    """The innermost offsets of a feature's input (a dense ``[B, k]`` input: ``0, k, 2k…``)."""
    if isinstance(value, RaggedTensor):
        return value.offsets()[-1]
    rows, width = value.shape[0], value[0].numel() if value.shape[0] else 0
    return torch.arange(rows + 1, device=value.device) * width


def flat_ids(value) -> torch.Tensor:
    """Every id of a feature's input, in order."""
    return value.values() if isinstance(value, RaggedTensor) else value.reshape(-1)
