"""RecIS's import path for :mod:`recis.backends.torch.fg.feature_generator`."""

from recis.backends.torch.fg.feature_generator import (
    FG,
    INITIALIZER_DEFAULT_KWARGS,
    INITIALIZER_MAPPING,
    build_fg,
)

__all__ = ["FG", "INITIALIZER_DEFAULT_KWARGS", "INITIALIZER_MAPPING", "build_fg"]
