"""The global metrics channel (RecIS API): values a model reports from anywhere in its code.

``add_metric(name, value)`` stores a value under a name; the trainer merges these metrics into
every step's metrics dict, which it hands to the hooks. A value stays until it is overwritten or
the channel is cleared. :func:`scalar_metrics` turns such a dict into plain floats for display.

>>> clear_global_metrics()
>>> add_metric("auc", 0.75); add_metric("ctr", 0.1)
>>> get_global_metrics()
{'auc': 0.75, 'ctr': 0.1}
>>> import numpy as np
>>> scalar_metrics({"loss": np.float32(0.5), "ids": [1, 2], "step": 3})
{'loss': 0.5, 'step': 3.0}
"""

from __future__ import annotations

import numbers

_GLOBAL_METRICS: dict = {}


def add_metric(name: str, value) -> None:
    """Report ``value`` (a number or a scalar tensor/array) under ``name``."""
    if not isinstance(name, str):
        raise TypeError(f"metric name must be a str, got {type(name).__name__}")
    _GLOBAL_METRICS[name] = value


def get_global_metrics() -> dict:
    """A copy of the reported metrics."""
    return dict(_GLOBAL_METRICS)


def clear_global_metrics() -> None:
    """Forget every reported metric."""
    _GLOBAL_METRICS.clear()


def scalar_metrics(metrics: dict | None) -> dict[str, float]:
    """The entries of ``metrics`` that are single numbers (Python, NumPy, or one-element
    tensors of any framework), as floats; other entries are left out."""
    return {name: float(value) for name, value in single_values(metrics).items()}


def single_values(metrics: dict | None) -> dict:
    """The entries of ``metrics`` that are single numbers, as they are: a tensor on a GPU stays
    there (reading it would wait for the GPU), one-element arrays become 0-d.

    >>> import numpy as np
    >>> single_values({"loss": 0.5, "logits": np.zeros(3), "auc": np.array([0.7])})
    {'loss': 0.5, 'auc': array(0.7)}
    """
    found = {}
    for name, value in (metrics or {}).items():
        if isinstance(value, numbers.Real):
            found[name] = value
        elif hasattr(value, "reshape") and _element_count(value) == 1:
            found[name] = value.reshape(())
    return found


def _element_count(array) -> int | None:
    """Elements of an array or tensor (torch's ``size`` is a method, its ``numel`` is not)."""
    numel = getattr(array, "numel", None)
    return numel() if callable(numel) else getattr(array, "size", None)
