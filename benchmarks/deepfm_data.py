"""The DeepFM benchmarks' shapes and batches, as NumPy arrays (no framework imported).

13 dense + 26 categorical features, one id per feature, ids Zipf-distributed over 1M values per
feature and scattered over the int64 range as a production system sees them.

>>> batch = make_numpy_batches(1, batch_size=4)[0]
>>> batch["ids"].shape, batch["dense"].shape, batch["label"].dtype
((4, 26), (4, 13), dtype('float32'))
"""

from __future__ import annotations

import numpy as np

NUM_DENSE, NUM_SPARSE, VOCAB, DIM, BIAS_DIM = 13, 26, 1_000_000, 16, 4
# Initial id-map slots of each merged table, as a user who expects a few million ids sets it
# (the static peers allocate all 26M rows up front); rows still grow only with the ids seen.
CAPACITY = 1 << 22
VARIANTS = {"deepfm": ((400, 400, 400), False), "sparse_heavy": ((64, 16), True)}


def zipf_sampler(rng: np.random.Generator, vocab: int, exponent: float = 1.05):
    """Draw ranks in [0, vocab) with P(k) ∝ 1 / (k + 1)^exponent."""
    cdf = np.cumsum(1.0 / np.arange(1, vocab + 1) ** exponent)
    cdf /= cdf[-1]
    return lambda size: np.minimum(np.searchsorted(cdf, rng.random(size)), vocab - 1)


def make_numpy_batches(steps: int, batch_size: int, seed: int = 0) -> list[dict]:
    """``steps`` batches: ``dense`` [B, 13] float32, ``ranks`` [B, 26] vocabulary positions,
    ``ids`` [B, 26] raw int64 ids, ``label`` [B] float32 in {0, 1}."""
    rng = np.random.default_rng(seed)
    sample = zipf_sampler(rng, VOCAB)
    batches = []
    for _ in range(steps):
        ranks = np.stack([sample(batch_size) for _ in range(NUM_SPARSE)], axis=1)
        batches.append(
            {
                "dense": rng.standard_normal((batch_size, NUM_DENSE), np.float32),
                "ranks": ranks,
                "ids": ranks * np.int64(-7046029254386353131) + np.arange(NUM_SPARSE),
                "label": rng.integers(0, 2, batch_size).astype(np.float32),
            }
        )
    return batches
