"""``Mask``: 0.0 where a value is one of the mask values, 1.0 elsewhere (the FG's ``mask`` ids).

Strings (an int8/uint8 ragged tensor whose last offset level delimits them, as the reader gives
them) are compared byte for byte with the masks; the result drops that level, like ``Hash``.
Integer ids are compared with the masks that are integers. The result is float32, with the
input's offsets, weights and ``dense_shape``; it is computed on the input's device.

>>> import torch
>>> from recis.backends.torch.ragged import RaggedTensor
>>> strings = RaggedTensor(torch.tensor(list(b"0120"), dtype=torch.int8),
...                        [torch.tensor([0, 3]), torch.tensor([0, 1, 3, 4])])
>>> Mask(["0"])(strings).values().tolist()
[0.0, 1.0, 0.0]
>>> Mask(["7"])(torch.tensor([[7, 8]]))
tensor([[0., 1.]])
"""

from __future__ import annotations

import torch

from recis.backends.torch.features.op import _OP
from recis.backends.torch.ragged import RaggedTensor


class Mask(_OP):
    """Mask ``masks`` (strings) out of a feature (see the module docstring)."""

    def __init__(self, masks, dtype=torch.int8):
        super().__init__()
        if isinstance(masks, str) or not masks:
            raise ValueError(f"Mask: masks must be a non-empty list of strings, got {masks!r}")
        self.masks = [str(m) for m in masks]
        self.dtype = dtype

    def forward(self, x):
        if _is_strings(x):
            return self._mask_strings(x)
        values = x.values() if isinstance(x, RaggedTensor) else x
        if values.is_floating_point():
            raise TypeError("Mask: expected strings (int8/uint8) or integer ids")
        numbers = [int(m) for m in self.masks if m.lstrip("-").isdigit()]
        masked = torch.isin(values, torch.tensor(numbers, dtype=values.dtype, device=values.device))
        kept = (~masked).float()
        if not isinstance(x, RaggedTensor):
            return kept
        return RaggedTensor(kept, x.offsets(), x.weight(), x.dense_shape)

    def _mask_strings(self, x: RaggedTensor):
        values, splits = x.values(), x.offsets()[-1]
        starts, lengths = splits[:-1], splits[1:] - splits[:-1]
        kept = torch.ones(len(lengths), dtype=torch.float32, device=values.device)
        for mask in self.masks:
            kept[_matches(values, starts, lengths, mask.encode("utf-8"))] = 0.0
        if len(x.offsets()) == 1:
            return kept
        return RaggedTensor(kept, x.offsets()[:-1], x.weight(), x.dense_shape[:-1])

    def _get_config(self) -> dict:
        return {"masks": self.masks, "dtype": str(self.dtype)}


def _is_strings(x) -> bool:
    return isinstance(x, RaggedTensor) and x.values().dtype in (torch.int8, torch.uint8)


def _matches(values: torch.Tensor, starts, lengths, mask: bytes) -> torch.Tensor:
    """Boolean per string: its bytes equal ``mask``."""
    candidates = lengths == len(mask)
    if not mask:
        return candidates
    positions = starts[candidates].unsqueeze(1) + torch.arange(len(mask), device=values.device)
    expected = torch.tensor(list(mask), dtype=torch.uint8, device=values.device)
    equal = (values[positions].view(torch.uint8) == expected).all(dim=1)
    matches = torch.zeros_like(candidates)
    matches[candidates] = equal
    return matches
