"""Backend-neutral sparse engine over NumPy (CPU) and CuPy (GPU)."""
