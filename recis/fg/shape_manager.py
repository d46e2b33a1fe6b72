"""RecIS's import path for :mod:`recis.backends.torch.fg.shape_manager`."""

from recis.backends.torch.fg.shape_manager import ShapeManager

__all__ = ["ShapeManager"]
