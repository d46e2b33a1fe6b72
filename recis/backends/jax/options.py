"""``EmbeddingOption`` for the JAX backend: the framework-free option of
:mod:`recis.embedding.option`.

Its ``dtype`` is a NumPy or JAX dtype (``float32``, ``bfloat16`` or ``float16``: the storage
dtype of the table's rows). Hooks come from :mod:`recis.embedding.policy_hooks`. ``device`` is
``"cpu"`` (tables in host memory) or ``"cuda"`` (tables on the GPU; the features' ids are then
JAX GPU arrays or CuPy arrays, and the activations JAX GPU arrays).
"""

from recis.embedding.option import EmbeddingOption

__all__ = ["EmbeddingOption"]
