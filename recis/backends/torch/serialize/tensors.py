"""Torch tensors to and from the NumPy arrays of checkpoint files, bfloat16 included.

>>> import torch
>>> to_torch(to_numpy(torch.tensor([1.5, -2.0], dtype=torch.bfloat16)))
tensor([ 1.5000, -2.0000], dtype=torch.bfloat16)
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import torch

from recis.checkpoint.state_tree import Codec


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A NumPy copy of ``tensor`` (bfloat16 becomes ``ml_dtypes.bfloat16``)."""
    tensor = tensor.detach().cpu().contiguous()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    return tensor.numpy().copy()


def to_torch(array: np.ndarray) -> torch.Tensor:
    """A tensor sharing ``array``'s memory (``ml_dtypes.bfloat16`` becomes torch.bfloat16)."""
    if array.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(array)


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a NumPy dtype name, e.g. ``"bfloat16"`` → ``torch.bfloat16``.

    >>> torch_dtype("int64")
    torch.int64
    """
    if name == "bfloat16":
        return torch.bfloat16
    return torch.from_numpy(np.empty(0, np.dtype(name))).dtype


TENSORS = Codec(
    lambda value: isinstance(value, torch.Tensor), to_numpy, lambda a: to_torch(a.copy())
)
"""How torch tensors are kept in state trees (:mod:`recis.checkpoint.state_tree`)."""
