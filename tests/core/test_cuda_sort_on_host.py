"""The GPU radix sort, run on the CPU: ``cuda/sort.cu`` compiled as plain C++ (each kernel a loop
over its items, last to first) behind the Python side of :mod:`recis.core.cuda.sort`, against
NumPy's stable argsort. Every launch is checked against the kernel's C signature. The GPU itself
runs it in ``tests/gpu``."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from host_cuda import build_for_host

from recis.core.cuda import sort


@pytest.fixture
def on_host(monkeypatch):
    """Route recis.core.cuda.sort to the host build of sort.cu, NumPy standing in for CuPy."""
    device = SimpleNamespace(
        ascontiguousarray=np.ascontiguousarray,
        arange=np.arange,
        empty=np.empty,
        cumsum=np.cumsum,
    )
    monkeypatch.setattr(sort, "_xp", lambda: device)
    monkeypatch.setattr(sort, "_kernel", lambda name: name)
    monkeypatch.setattr(sort, "_launch", build_for_host("sort.cu").launch)


@pytest.mark.parametrize("seed", range(8))
def test_radix_argsort_is_numpys_stable_argsort(on_host, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 3000))
    bound = int([2, 40, 256, 257, 70_000, 2**33][seed % 6])
    keys = rng.integers(0, bound, n)
    if seed % 2:  # long runs of a few hot keys
        keys[rng.random(n) < 0.7] = keys[0] if n else 0
    got = sort.stable_argsort(keys, bound)
    np.testing.assert_array_equal(got, np.argsort(keys, kind="stable"))


def test_keys_are_not_changed_and_one_key_is_its_own_order(on_host):
    keys = np.array([3, 1, 2, 1, 0])
    before = keys.copy()
    assert sort.stable_argsort(keys, 4).tolist() == [4, 1, 3, 2, 0]
    np.testing.assert_array_equal(keys, before)
    assert sort.stable_argsort(np.array([9]), 10).tolist() == [0]
