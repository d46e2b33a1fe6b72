"""Framework front ends over the backend-neutral engine :mod:`recis.core`.

``recis.backends.jax`` embeds features for JAX/Flax dense models; the torch front end lives at
the RecIS-compatible paths :mod:`recis.nn` and :mod:`recis.optim`.
"""
