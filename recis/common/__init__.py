"""RecIS's ``recis.common``: helpers shared across the package (``singleton``)."""
