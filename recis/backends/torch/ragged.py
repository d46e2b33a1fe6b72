"""``RaggedTensor``: RecIS's variable-length tensor on the torch backend.

Flat ``values``, a list of ``offsets`` tensors (outermost level first; the last indexes
``values``), an optional per-value ``weight``, and a ``dense_shape`` whose ``-1`` entries are
resolved from the offsets. It shares memory with the engine's :class:`~recis.core.ragged.Ragged`
(:meth:`to_engine`, :meth:`from_engine`) and converts through it to and from dense tensors. The
tensors may live on a CUDA device: the engine then sees CuPy views of them.

>>> import torch
>>> r = RaggedTensor(torch.tensor([1, 2, 3]), [torch.tensor([0, 2, 2, 3])])
>>> r.shape
(3, 2)
>>> r.to_dense().tolist()
[[1, 2], [0, 0], [3, 0]]
>>> RaggedTensor.from_dense(torch.tensor([[4, 0], [5, 6]]), check_invalid=True).values().tolist()
[4, 5, 6]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recis.core import arrays as interop
from recis.core.ragged import Ragged


@dataclass
class RaggedPadInfo:
    """Per-row counts of dropped and padded values left by sequence truncation."""

    drop_nums: torch.Tensor | None = None
    pad_nums: torch.Tensor | None = None
    drop_sides: torch.Tensor | None = None
    pad_sides: torch.Tensor | None = None


class RaggedTensor:
    """Variable-length rows as flat ``values`` split by ``offsets`` (see the module docstring)."""

    def __init__(self, values, offsets, weight=None, dense_shape=None) -> None:
        self._values = values
        self._offsets = list(offsets) if isinstance(offsets, list | tuple) else [offsets]
        self._weight = weight
        rank = len(self._offsets) + values.dim()
        self._dense_shape = tuple(dense_shape) if dense_shape is not None else (-1,) * rank
        if len(self._dense_shape) != rank:
            raise ValueError(f"dense_shape {self._dense_shape} must have {rank} dimensions")
        self._pad_info: RaggedPadInfo | None = None

    def values(self) -> torch.Tensor:
        return self._values

    def offsets(self) -> list[torch.Tensor]:
        return self._offsets

    def weight(self) -> torch.Tensor | None:
        return self._weight

    def set_values(self, values: torch.Tensor) -> None:
        self._values = values

    def set_weight(self, weight: torch.Tensor | None) -> None:
        self._weight = weight

    @property
    def dtype(self) -> torch.dtype:
        return self._values.dtype

    @property
    def device(self) -> torch.device:
        return self._values.device

    @property
    def pad_info(self) -> RaggedPadInfo | None:
        return self._pad_info

    def set_pad_info(self, pad_info: RaggedPadInfo) -> None:
        self._pad_info = pad_info

    @property
    def shape(self) -> tuple[int, ...]:
        """The dense shape, ``-1`` entries resolved (rows, then the longest row per level)."""
        return self.real_shape()

    def size(self) -> tuple[int, ...]:
        return self.shape

    def real_shape(self, start: int = 0, end: int | None = None) -> tuple[int, ...]:
        """``shape[start:end]``."""
        resolved = [len(self._offsets[0]) - 1]
        resolved += [_max_length(offsets) for offsets in self._offsets]
        resolved += list(self._values.shape[1:])
        shape = [r if d == -1 else d for d, r in zip(self._dense_shape, resolved, strict=True)]
        return tuple(shape[start:end])

    def get_shape(self, dim: int) -> int:
        return self.shape[dim]

    @property
    def dim(self) -> int:
        """The number of dimensions (of the dense shape)."""
        return len(self._dense_shape)

    def __getitem__(self, key):
        """RecIS's indexing (:mod:`recis.backends.torch.ragged_index`)."""
        from recis.backends.torch.ragged_index import ragged_getitem

        return ragged_getitem(self, key)

    @property
    def max_length(self) -> int:
        """Length of the longest innermost row."""
        return _max_length(self._offsets[-1])

    def set_dim_by_rank(self, dim: int, rank: int) -> None:
        """Fix ``dense_shape[rank]`` to ``dim``."""
        shape = list(self._dense_shape)
        shape[rank] = dim
        self._dense_shape = tuple(shape)

    @property
    def dense_shape(self) -> tuple[int, ...]:
        """The declared shape, ``-1`` where it follows the data."""
        return self._dense_shape

    def to_engine(self) -> Ragged:
        """The engine view of this tensor (shares memory; CuPy arrays for CUDA tensors)."""
        weight = self._weight
        return Ragged(
            interop.as_engine_array(self._values.contiguous(), "values"),
            tuple(interop.as_engine_array(o.contiguous(), "offsets") for o in self._offsets),
            None if weight is None else interop.as_engine_array(weight.contiguous(), "weight"),
        )

    @classmethod
    def from_engine(cls, ragged: Ragged, dense_shape=None) -> RaggedTensor:
        """Wrap an engine :class:`Ragged` (shares memory)."""
        like = torch.empty(0)
        weight = None if ragged.weights is None else interop.export_like(ragged.weights, like)
        offsets = [interop.export_like(o, like) for o in ragged.offsets]
        return cls(interop.export_like(ragged.values, like), offsets, weight, dense_shape)

    def to_dense(self, default_value=0) -> torch.Tensor:
        """Pad to ``shape`` (on the tensor's device); longer rows than a fixed ``dense_shape``
        entry raise."""
        from recis.backends.torch.bridge import as_tensor, torch_stream  # imports this module

        shape = [None if d == -1 else d for d in self._dense_shape[: len(self._offsets) + 1]]
        with torch_stream():
            return as_tensor(self.to_engine().to_dense(default_value, shape))

    @classmethod
    def from_dense(cls, dense: torch.Tensor, check_invalid: bool = False, invalid_value=0):
        """The rows of ``dense`` whole, as RecIS does; with ``check_invalid`` each row ends at
        its last value other than ``invalid_value`` (trailing padding stripped)."""
        from recis.backends.torch.functional.ragged_ops import dense_to_ragged

        values, offsets = dense_to_ragged(dense, check_invalid, invalid_value)
        shape = None if check_invalid else tuple(dense.shape)
        return cls(values, offsets, dense_shape=shape)

    @classmethod
    def from_numpy(cls, values, offsets, weight=None, dense_shape=None) -> RaggedTensor:
        """Build from NumPy arrays (shares memory)."""
        as_tensor = torch.from_numpy
        offsets = [
            as_tensor(np.asarray(o))
            for o in (offsets if isinstance(offsets, list | tuple) else [offsets])
        ]
        weight = None if weight is None else as_tensor(np.asarray(weight))
        return cls(as_tensor(np.asarray(values)), offsets, weight, dense_shape)

    def to_sparse(self) -> torch.Tensor:
        """A sparse COO tensor of ``shape`` (one offset level)."""
        if len(self._offsets) != 1:
            raise ValueError("to_sparse supports one offset level")
        offsets = self._offsets[0]
        lengths = offsets[1:] - offsets[:-1]
        rows = torch.repeat_interleave(torch.arange(lengths.numel(), device=self.device), lengths)
        columns = torch.arange(self._values.shape[0], device=self.device) - offsets[rows]
        indices = torch.stack([rows, columns])
        return torch.sparse_coo_tensor(indices, self._values, self.shape[:2])

    def _map(self, fn, values_fn=None) -> RaggedTensor:
        weight = None if self._weight is None else fn(self._weight)
        values = (values_fn or fn)(self._values)
        result = RaggedTensor(values, [fn(o) for o in self._offsets], weight, self._dense_shape)
        result._pad_info = self._pad_info
        return result

    def to(self, *args, **kwargs) -> RaggedTensor:
        """Like ``torch.Tensor.to`` for the values; offsets and weight only change device."""
        device = torch.empty(0, device=self.device).to(*args, **kwargs).device
        non_blocking = kwargs.get("non_blocking", False)
        return self._map(
            lambda t: t.to(device, non_blocking=non_blocking),
            lambda t: t.to(*args, **kwargs),
        )

    def cuda(self, device=None, non_blocking: bool = False) -> RaggedTensor:
        return self._map(lambda t: t.cuda(device, non_blocking=non_blocking))

    def cpu(self) -> RaggedTensor:
        return self._map(lambda t: t.cpu())

    def pin_memory(self) -> RaggedTensor:
        return self._map(lambda t: t.pin_memory())

    def clone(self) -> RaggedTensor:
        """A new RaggedTensor over the same tensors (shallow, as RecIS)."""
        return self._map(lambda t: t)

    def __repr__(self) -> str:
        return (
            f"RaggedTensor(values={self._values}, offsets={self._offsets}, "
            f"weight={self._weight}, dense_shape={self._dense_shape})"
        )


def _max_length(offsets: torch.Tensor) -> int:
    return int((offsets[1:] - offsets[:-1]).max()) if offsets.numel() > 1 else 0
