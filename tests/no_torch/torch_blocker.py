"""``install()``: make ``import torch`` fail in this process, as where torch is not installed."""

from __future__ import annotations

import sys


class TorchBlocker:
    """A meta-path finder that refuses ``torch`` and its submodules."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (torch is blocked)", name=name)
        return None


def install() -> None:
    if not any(isinstance(finder, TorchBlocker) for finder in sys.meta_path):
        sys.meta_path.insert(0, TorchBlocker())
