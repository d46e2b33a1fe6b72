"""Makes ``import torch`` fail in every process whose ``PYTHONPATH`` starts with this folder, as
in an environment without torch: the JAX-only tests run their subprocesses so."""

from __future__ import annotations

import sys


class TorchBlocker:
    """A meta-path finder that refuses ``torch`` and its submodules."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (torch is blocked)", name=name)
        return None


sys.meta_path.insert(0, TorchBlocker())
