"""Batches moved to the GPU by the Trainer (``data_to_cuda``), checked on the CPU with stand-ins
for tensors: every tensor of nested dicts and lists is moved, with non-blocking copies."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="the Trainer is the torch backend's")

from recis.backends.torch.trainer import _to_current_gpu


class OnHost:
    """A tensor stand-in that records how it was moved."""

    def __init__(self, name: str):
        self.name = name

    def cuda(self, non_blocking: bool = False):
        return ("on gpu", self.name, non_blocking)


def test_every_tensor_of_nested_dicts_and_lists_moves_without_blocking():
    strings = np.array(["a"], dtype=object)
    batch = [{"ids": OnHost("ids"), "parts": [OnHost("a"), {"b": OnHost("b")}], "s": strings}]
    moved = _to_current_gpu(batch)
    assert moved == [
        {
            "ids": ("on gpu", "ids", True),
            "parts": [("on gpu", "a", True), {"b": ("on gpu", "b", True)}],
            "s": strings,
        }
    ]
