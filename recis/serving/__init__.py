"""Serving: :class:`Predictor` scores raw rows with a bundle of :mod:`recis.export`.

>>> from recis.serving import Predictor  # doctest: +SKIP
>>> predictor = Predictor("bundles/base", deltas=["bundles/delta-1"])  # doctest: +SKIP
>>> scores = predictor.predict(batch)  # doctest: +SKIP
"""

from recis.serving.features import run_features
from recis.serving.predictor import RUNNERS, Predictor

__all__ = ["RUNNERS", "Predictor", "run_features"]
