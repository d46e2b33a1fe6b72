"""Kernels that move ragged rows into padded dense rows.

``scatter_rows`` copies raw elements, so callers pass values and output viewed as unsigned integers
of the same width: one compiled kernel then serves every dtype, including ones numba cannot do
arithmetic on (float16, bfloat16).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def scatter_rows(values, offsets, row_slots, out):
    """Copy row ``r`` (``values[offsets[r]:offsets[r + 1]]``) to the start of ``out[row_slots[r]]``.

    ``out`` is 2-D and at least as wide as the longest row; entries not written keep their value.
    """
    for row in range(row_slots.shape[0]):
        start = offsets[row]
        length = offsets[row + 1] - start
        out[row_slots[row], :length] = values[start : start + length]


def scatter_rows_reference(values, offsets, row_slots, out):
    """NumPy twin of :func:`scatter_rows`."""
    lengths = np.diff(offsets)
    row_starts = row_slots * out.shape[1] - offsets[:-1]
    positions = np.repeat(row_starts, lengths) + np.arange(offsets[0], offsets[-1])
    out.reshape(-1)[positions] = values[offsets[0] : offsets[-1]]
