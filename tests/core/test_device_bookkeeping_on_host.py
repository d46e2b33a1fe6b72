"""The host side of the GPU tables' bookkeeping — :class:`HostMirror`, :class:`DeferredErrors`
and :class:`DeviceRowAllocator` — run on the CPU: NumPy stands in for CuPy, host memory for the
device-mapped pinned memory, and a memory copy for the one-thread publishing kernel. Launches
are queued and run when the stand-in device is synchronised, so the tests see what a host
running ahead of its GPU sees. The GPU itself is tested in ``tests/gpu``."""

from __future__ import annotations

import ctypes
from types import SimpleNamespace

import numpy as np
import pytest

from recis.core.cuda import host_mirror, loader
from recis.core.cuda.host_mirror import DeferredErrors, HostMirror
from recis.core.cuda.row_allocator import DeviceRowAllocator, allocate_ranked
from recis.core.row_allocator import RowAllocator


class StandInDevice:
    """A NumPy "cupy" whose kernel launches wait in a queue until :meth:`synchronize`."""

    def __init__(self) -> None:
        self.queue: list = []

        class PinnedMemory:
            def __init__(self, size: int, flags: int = 0) -> None:
                assert flags == host_mirror.MAPPED
                self.words = np.zeros(-(-size // 8), np.int64)
                self.ptr = self.words.ctypes.data

        device = self
        self.cuda = SimpleNamespace(
            runtime=SimpleNamespace(),
            PinnedMemory=PinnedMemory,
            PinnedMemoryPointer=lambda memory, offset: memoryview(memory.words).cast("B")[offset:],
            Device=lambda: SimpleNamespace(synchronize=device.synchronize),
        )

    def __getattr__(self, name: str):
        return getattr(np, name)

    @staticmethod
    def asnumpy(array) -> np.ndarray:
        return np.asarray(array)

    def launch(self, kernel: str, n: int, args: tuple) -> None:
        if kernel == "allocate_ranked_rows":  # its results are read at once: run it now
            state, free, _, count, size, rows = args
            rows[...] = allocate_ranked(np, state.copy(), free, count, int(size))
            return
        if kernel == "allocate_ranked_commit":  # updates the state now, publishes it later
            state, count, requested, address = args
            allocate_ranked(np, state, np.empty(0, np.int64), count, 0)
            state[2] = requested
            values, count = state, np.int64(3)
        else:
            assert kernel == "publish_to_host" and n == 1
            values, count, address = args
        assert values.dtype == np.int64 and type(count) is np.int64 and type(address) is np.uint64
        snapshot = values.copy()  # what the device holds when the kernel runs, in stream order
        self.queue.append(lambda: ctypes.memmove(int(address), snapshot.ctypes.data, 8 * count))

    def run(self, launches: int) -> None:
        """Let the device run the oldest ``launches`` queued kernels."""
        for publish in self.queue[:launches]:
            publish()
        del self.queue[:launches]

    def synchronize(self) -> None:
        self.run(len(self.queue))


@pytest.fixture
def device(monkeypatch) -> StandInDevice:
    stand_in = StandInDevice()
    monkeypatch.setattr(loader, "require_cupy", lambda what: stand_in)
    monkeypatch.setattr(loader, "kernel", lambda source, name: name)
    monkeypatch.setattr(loader, "launch", stand_in.launch)
    return stand_in


def test_a_mirror_shows_values_once_the_device_has_run(device):
    mirror = HostMirror(3)
    mirror.publish(np.array([4, 5]), start=1)
    assert mirror.values.tolist() == [0, 0, 0]  # queued, not run
    device.synchronize()
    assert mirror.values.tolist() == [0, 4, 5]
    with pytest.raises(IndexError, match="2 values at 2 do not fit a mirror of 3"):
        mirror.publish(np.zeros(2, np.int64), start=2)


def test_deferred_errors_wait_for_their_reports_and_raise_each_once(device):
    errors = DeferredErrors(slots=2)
    errors.report(np.array(0), lambda n: ValueError("never"))
    errors.report(np.array([2]), lambda n: ValueError(f"{n} bad"))
    errors.raise_found()  # nothing has run: nothing to raise yet
    device.run(1)
    errors.raise_found()  # the clean report arrived
    errors.report(np.array(1), lambda n: ValueError(f"{n} worse"))  # the freed slot
    with pytest.raises(ValueError, match=r"^2 bad$"):
        errors.raise_found(wait=True)
    errors.raise_found(wait=True)  # raised once: the third report was forgotten with it
    for _ in range(3):  # one more report than slots waits for the device
        errors.report(np.array(0), lambda n: ValueError("never"))
    assert len(device.queue) == 1


def test_device_rows_equal_the_host_allocators_and_the_bounds_hold_while_lagging(device):
    rng = np.random.default_rng(0)
    host, rows = RowAllocator(), DeviceRowAllocator()
    live: list[int] = []
    for step in range(60):
        if live and rng.random() < 0.25:
            released = rng.choice(live, int(rng.integers(1, len(live) + 1)), replace=False)
            host.release(released)
            rows.release(released)  # waits for the device
            live = sorted(set(live) - set(released.tolist()))
        count, padding = int(rng.integers(0, 40)), int(rng.integers(0, 10))
        want = host.allocate(count)
        got = rows.allocate_ranked(np.array(count), count + padding)
        np.testing.assert_array_equal(got[:count], want)
        assert (got[count:] == -1).all()
        live += want.tolist()
        device.run(int(rng.integers(0, 2)))  # the device lags behind the host
        assert rows.high_water_bound() >= host.high_water
        assert rows.live_bound() >= host.num_live
        assert rows.high_water_bound() - host.high_water <= padding + len(device.queue) * 50
        if step % 10 == 9:  # reading the exact state waits, and the bounds become exact
            assert (rows.high_water, rows.num_free, rows.num_live) == (
                host.high_water, host.num_free, host.num_live
            )  # fmt: skip
            assert (rows.high_water_bound(), rows.live_bound()) == (host.high_water, host.num_live)
    state, want_state = rows.state(), host.state()
    assert state["high_water"] == want_state["high_water"]
    np.testing.assert_array_equal(state["free"], want_state["free"])
    restored = DeviceRowAllocator()
    restored.load_state(state)
    np.testing.assert_array_equal(restored.allocate(5), host.allocate(5))
