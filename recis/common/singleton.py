"""RecIS's import path for :mod:`recis.core.singleton`."""

from recis.core.singleton import SingletonMeta

__all__ = ["SingletonMeta"]
