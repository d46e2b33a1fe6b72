"""Errors raised by the engine; each names the table (or file, feature, column) involved."""

from __future__ import annotations


class TableFullError(RuntimeError):
    """An insert would take a table beyond its ``max_size``."""


class NonFiniteGradientError(FloatingPointError):
    """A sparse gradient holds NaN or infinity and the table's policy is to raise."""
