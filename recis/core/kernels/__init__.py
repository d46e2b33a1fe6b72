"""Numba CPU kernels, each with a NumPy reference twin."""

from recis.core.threads import start_kernel_pool

start_kernel_pool()  # before any kernel runs: see recis.core.threads
