"""Numba CPU kernels, each with a NumPy reference twin."""
