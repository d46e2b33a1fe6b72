"""Streaming metrics: ``AUROC`` and group AUC (``Gauc``, also exported as ``GAUC``)."""

from recis.backends.torch.metrics.auroc import AUROC
from recis.backends.torch.metrics.gauc import Gauc

GAUC = Gauc

__all__ = ["AUROC", "GAUC", "Gauc"]
