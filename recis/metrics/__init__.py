"""Streaming metrics: ``AUROC`` and group AUC (``Gauc``, also exported as ``GAUC``)."""

from recis.metrics.auroc import AUROC
from recis.metrics.gauc import Gauc

GAUC = Gauc

__all__ = ["AUROC", "GAUC", "Gauc"]
