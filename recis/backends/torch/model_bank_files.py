"""RecIS's ``load_pt_file``: the pickled files of a RecIS checkpoint directory.

RecIS writes a checkpoint's dense model (``model.pt``), run state (``extra.pt``) and IO state
(``io_state_<rank>.pt``) with ``torch.save``; checkpoints of its older versions hold the same as
``<name>.pkl`` (NumPy arrays, pickled). Both are pickles: read only checkpoints you trust.

>>> import os, tempfile, torch
>>> folder = tempfile.mkdtemp()
>>> torch.save({"fc.bias": torch.ones(2)}, os.path.join(folder, "model.pt"))
>>> load_pt_file(folder, "model")
({'fc.bias': tensor([1., 1.])}, False)
>>> load_pt_file(folder, "extra")
({}, False)
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import torch

from recis.framework.filesystem import get_file_system


def load_pt_file(ckpt_dir: str, file_name: str, fs=None) -> tuple[object, bool]:
    """Read ``<ckpt_dir>/<file_name>.pt`` (tensors restored on the CPU), else
    ``<file_name>.pkl`` (its arrays as tensors); returns (content, whether from ``.pkl``),
    ``({}, False)`` when neither exists."""
    fs = get_file_system(ckpt_dir) if fs is None else fs
    pt_path = os.path.join(ckpt_dir, f"{file_name}.pt")
    if fs.exists(pt_path):
        with fs.open(pt_path, "rb") as f:
            return torch.load(f=f, map_location="cpu", weights_only=False), False
    pickle_path = os.path.join(ckpt_dir, f"{file_name}.pkl")
    if fs.exists(pickle_path):
        with fs.open(pickle_path, "rb") as f:
            return _as_torch(pickle.loads(f.read(), encoding="latin1")), True
    return {}, False


def _as_torch(value):
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, np.generic):
        return torch.tensor(value)
    if isinstance(value, dict):
        return {key: _as_torch(item) for key, item in value.items()}
    return value
