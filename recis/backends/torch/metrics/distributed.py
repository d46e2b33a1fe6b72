"""Summing and gathering metric state over the ranks of torch.distributed.

Every function here is a collective when :func:`is_distributed`: all ranks must call it.

>>> is_distributed()
False
>>> all_reduce_sum(np.array([1, 2])).tolist(), all_gather("state")
([1, 2], ['state'])
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True when torch.distributed is initialised with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(array):
    """Elementwise sum of ``array`` (NumPy, or a tensor summed where it is) over all ranks (the
    array itself when not distributed)."""
    if not is_distributed():
        return array
    if isinstance(array, torch.Tensor):
        total = array.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total
    tensor = torch.from_numpy(np.ascontiguousarray(array)).to(collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy()


def all_gather(value) -> list:
    """``value`` of every rank, in rank order (picklable objects)."""
    if not is_distributed():
        return [value]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def collective_device() -> torch.device:
    """Where the default process group's backend wants tensors: CUDA for NCCL, else CPU."""
    if dist.get_backend() == dist.Backend.NCCL:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
