"""Sparse optimizer steps applied in place to rows held in a row store's blocks.

Each kernel updates the distinct rows ``rows[i]`` (offset ``rows[i] & (block_rows - 1)`` of their
block) of float32 embedding blocks and slot blocks with gradient ``grads[i]``, reading and writing
every value once. Rows come bucketed by block as for the row store's copies (``order`` and
``bounds`` of :func:`recis.core.kernels.row_store.bucket_by_block`), so a kernel takes each block
once. The float32 operations are those of the rule's NumPy update (:mod:`recis.core.optim`), in
the same order, with the scalars rounded to float32 as NumPy rounds a Python float combined with a
float32 array; the reference twin of all of them is gather → ``Rule.update`` → scatter, which
:mod:`recis.core.optim.in_place` tests against.

Blocks are the row store's typed lists of ``uint32`` words; the kernels view them as float32.
"""

from __future__ import annotations

import numba
import numpy as np

ADAM, ADAMW, ADAMW_TF = 0, 1, 2  # how an Adam-family kernel decays and scales


@numba.njit(inline="always")
def _block(blocks, b):
    """Block ``b`` of a field, viewed as float32."""
    return blocks[np.int64(b)].view(np.float32)


@numba.njit(inline="always")
def _decayed(g, w, weight_decay):
    """Coupled L2: ``g + weight_decay * w``, or ``g`` itself when there is no decay."""
    return g + weight_decay * w if weight_decay != 0 else g


@numba.njit(parallel=True, cache=True)
def sgd_rows(embedding, rows, order, bounds, grads, weight_decay, lr):
    """``w -= lr * (g + weight_decay * w)``."""
    for b in numba.prange(len(embedding)):
        weights = _block(embedding, b)
        mask = weights.shape[0] - 1
        for k in range(bounds[b], bounds[b + 1]):
            i = order[k]
            w = weights[rows[i] & mask]
            for j in range(w.shape[0]):
                w[j] = w[j] - lr * _decayed(grads[i, j], w[j], weight_decay)


@numba.njit(parallel=True, cache=True)
def adagrad_rows(embedding, accumulator, rows, order, bounds, grads, weight_decay, clr, eps):
    """``g += weight_decay * w; sum += g²; w -= clr * (g / (sqrt(sum) + eps))``."""
    for b in numba.prange(len(embedding)):
        weights, sums = _block(embedding, b), _block(accumulator, b)
        mask = weights.shape[0] - 1
        for k in range(bounds[b], bounds[b + 1]):
            i = order[k]
            w, total = weights[rows[i] & mask], sums[rows[i] & mask]
            for j in range(w.shape[0]):
                g = _decayed(grads[i, j], w[j], weight_decay)
                total[j] = total[j] + g * g
                w[j] = w[j] - clr * (g / (np.sqrt(total[j]) + eps))


@numba.njit(inline="always")
def _nan_maximum(a, b):
    """``np.maximum`` of two scalars: NaN if either is NaN."""
    if a != a or b != b:
        return a + b
    return a if a >= b else b


@numba.njit(parallel=True, cache=True)
def adam_rows(
    embedding,
    exp_avg,
    exp_avg_sq,
    max_exp_avg_sq,
    rows,
    order,
    bounds,
    grads,
    mode,
    weight_decay,
    decay_factor,
    one_minus_beta1,
    beta2,
    one_minus_beta2,
    step_size,
    bias_correction2_sqrt,
    eps,
):
    """One step of Adam (``mode=ADAM``: coupled decay ``weight_decay``), AdamW (``ADAMW``) or
    AdamW-TF (``ADAMW_TF``), the latter two scaling rows by ``decay_factor`` first.

    Adam and AdamW: ``w -= step_size * (m / (sqrt(v) / bias_correction2_sqrt + eps))``, with
    ``v`` the running maximum when ``max_exp_avg_sq`` holds blocks (amsgrad; else it is an
    empty list); AdamW-TF: ``w -= step_size * (m / (sqrt(v) + eps))`` (its ``alpha``).
    """
    amsgrad = len(max_exp_avg_sq) > 0
    for b in numba.prange(len(embedding)):
        weights, firsts, seconds = _block(embedding, b), _block(exp_avg, b), _block(exp_avg_sq, b)
        peaks = _block(max_exp_avg_sq, b) if amsgrad else seconds
        mask = weights.shape[0] - 1
        for k in range(bounds[b], bounds[b + 1]):
            i = order[k]
            offset = rows[i] & mask
            w, m, v, g = weights[offset], firsts[offset], seconds[offset], grads[i]
            if mode == ADAM:
                for j in range(w.shape[0]):
                    decayed = _decayed(g[j], w[j], weight_decay)
                    m[j] = m[j] + one_minus_beta1 * (decayed - m[j])
                    v[j] = beta2 * v[j] + one_minus_beta2 * (decayed * decayed)
            else:
                for j in range(w.shape[0]):
                    w[j] = w[j] * decay_factor
                    m[j] = m[j] + one_minus_beta1 * (g[j] - m[j])
                    v[j] = beta2 * v[j] + one_minus_beta2 * (g[j] * g[j])
            if mode == ADAMW_TF:
                for j in range(w.shape[0]):
                    w[j] = w[j] - step_size * (m[j] / (np.sqrt(v[j]) + eps))
                continue
            second = v
            if amsgrad:
                peak = peaks[offset]
                for j in range(w.shape[0]):
                    peak[j] = _nan_maximum(peak[j], v[j])
                second = peak
            for j in range(w.shape[0]):
                w[j] = w[j] - step_size * (
                    m[j] / (np.sqrt(second[j]) / bias_correction2_sqrt + eps)
                )
