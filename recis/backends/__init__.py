"""Framework front ends over the framework-free engine (:mod:`recis.core`) and embedding
pipeline (:mod:`recis.embedding`).

``recis.backends.torch`` holds everything that imports torch (re-exported at RecIS's paths:
:mod:`recis.nn`, :mod:`recis.optim`, :mod:`recis.framework`, …); ``recis.backends.jax``
everything that imports JAX. The two never import each other (see ``docs/architecture.md``).
"""
