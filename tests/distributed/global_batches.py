"""The sharded-training tests' data and tables, for any front end (imports no framework)."""

from __future__ import annotations

import numpy as np

from recis.core.initializers import NormalInitializer

GLOBAL_BATCH = 48


def options(grad_reduce_by: str, option) -> dict:
    """``user`` and ``item`` share one physical table (same dim), ``tag`` has its own; ``option``
    is the front end's ``EmbeddingOption``."""
    init = NormalInitializer(std=0.1)
    return {
        "user": option(embedding_dim=4, shared_name="user", initializer=init,
                       grad_reduce_by=grad_reduce_by),
        "item": option(embedding_dim=4, shared_name="item", initializer=init,
                       combiner="mean", grad_reduce_by=grad_reduce_by),
        "tag": option(embedding_dim=8, shared_name="tag", initializer=init,
                      combiner="sum", grad_reduce_by=grad_reduce_by),
    }  # fmt: skip


def global_batch(step: int) -> dict[str, np.ndarray]:
    """Ids with many repeats within and across ranks' slices; extreme ids included. At step 1
    every sample has the same tag, so one rank alone updates the tag table."""
    rng = np.random.default_rng(step)
    user = rng.integers(0, 40, (GLOBAL_BATCH, 1))
    user[0, 0] = np.iinfo(np.int64).min
    tag = rng.integers(0, 2**62, (GLOBAL_BATCH, 2)) % 25 * (2**58)
    if step == 1:
        tag[:] = 3 * 2**58
    return {
        "user": user,
        "item": rng.integers(-30, 30, (GLOBAL_BATCH, 3)),
        "tag": tag,
        "label": rng.integers(0, 2, GLOBAL_BATCH).astype(np.float32),
    }
