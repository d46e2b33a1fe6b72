"""HostSlots grow in place, keep their values, and still grow (by a copy) while a view is kept."""

from __future__ import annotations

import numpy as np

from recis.core.host_slots import HostSlots


def test_growth_keeps_values_and_zeroes_the_new_slots():
    slots = HostSlots(1 << 10)
    values = np.random.default_rng(0).integers(-(2**62), 2**62, (1 << 10, 2))
    slots.array[:] = values
    for capacity in (1 << 11, 1 << 17, 1 << 18):
        slots.grow(capacity)
        assert slots.array.shape == (capacity, 2) and slots.array.flags.writeable
        np.testing.assert_array_equal(slots.array[: 1 << 10], values)
        assert not slots.array[1 << 10 :].any()


def test_a_view_kept_across_growth_makes_it_copy_and_stays_valid():
    slots = HostSlots(64)
    slots.array[3] = (5, 6)
    kept = slots.array  # an export of the map: it cannot be remapped now
    slots.grow(256)
    assert slots.array[3].tolist() == [5, 6] and not slots.array[64:].any()
    slots.array[3] = (7, 8)
    assert kept[3].tolist() == [5, 6]  # the old slots, still readable
