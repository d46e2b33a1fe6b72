"""Errors of feature ops, re-raised with the feature and op they came from.

>>> from recis.backends.torch.features.op import Mod
>>> import numpy as np
>>> call_op("price", Mod(10), np.array([1.5]))
Traceback (most recent call last):
...
TypeError: feature 'price', op Mod(mod=10): column: expected int64 values, got float64
"""

from __future__ import annotations

# Built-in errors whose constructor takes one message; other errors propagate unchanged.
WRAPPED_ERRORS = (TypeError, ValueError, KeyError, IndexError, AssertionError)


def call_op(feature_name: str, op, x):
    """``op(x)``; a built-in error of :data:`WRAPPED_ERRORS` is re-raised naming feature and op."""
    try:
        return op(x)
    except WRAPPED_ERRORS as error:
        if type(error) not in WRAPPED_ERRORS:
            raise
        raise with_context(error, f"feature {feature_name!r}, op {op!r}") from error


def with_context(error: Exception, context: str) -> Exception:
    """A new error of ``error``'s type whose message is ``context`` followed by the original."""
    message = error.args[0] if len(error.args) == 1 else str(error)
    return type(error)(f"{context}: {message}")
