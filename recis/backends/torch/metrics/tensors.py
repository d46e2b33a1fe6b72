"""Metric inputs as host NumPy arrays.

>>> host_array(torch.tensor([0.5, 1.0], dtype=torch.bfloat16)).dtype
dtype('float32')
"""

from __future__ import annotations

import numpy as np
import torch


def host_array(values) -> np.ndarray:
    """A tensor (any device; half precision widened to float32) or array-like, as NumPy."""
    if not isinstance(values, torch.Tensor):
        return np.asarray(values)
    values = values.detach()
    if values.is_floating_point() and values.dtype not in (torch.float32, torch.float64):
        values = values.float()
    return values.cpu().numpy()
