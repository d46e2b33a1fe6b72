"""``StorageTiers`` and ``DeviceTiers``: where a table's rows live when they do not all fit in
RAM, or in GPU memory.

A table with ``storage=StorageTiers(ram_bytes=...)`` keeps at most ``ram_bytes`` of rows — each
row with its optimizer slots and policy state — in RAM (the *hot* tier) and every row in
memory-mapped block files on local disk (the *cold* tier, a directory per table under
``directory``). Training lookups bring the rows of a batch into RAM and push out the rows with the
lowest scores: ``"lru"`` the least recently used, ``"lfu"`` the least often used, the scores of
:class:`~recis.core.policies.CapacityEviction`. Rows move bit for bit, so training is the same as
with every row in RAM. ``disk_bytes`` (default: no limit) caps the files; a table that would pass
it raises :class:`~recis.core.errors.TableFullError`.

>>> tiers = StorageTiers(ram_bytes=64 << 20)
>>> tiers.info()
{'ram_bytes': 67108864, 'disk_bytes': None, 'policy': 'lru'}
>>> StorageTiers(ram_bytes=0)
Traceback (most recent call last):
...
ValueError: StorageTiers: ram_bytes must be > 0, got 0

A GPU table with ``storage=DeviceTiers(device_bytes=...)`` keeps its hot rows in device memory
and every row in pinned host memory, which kernels read and write in place (see
:mod:`recis.core.tiers.device`).
"""

from __future__ import annotations

from dataclasses import dataclass

POLICIES = ("lru", "lfu")


@dataclass(frozen=True)
class StorageTiers:
    """Byte budgets of a table's RAM and disk tiers (see the module docstring).

    Args:
        ram_bytes: bytes of rows (embedding, optimizer and policy slots) kept in RAM.
        disk_bytes: optional cap on the bytes of the disk tier's files.
        directory: where each table makes its directory (default: the system's temporary
            directory); the files are scratch space, removed with the table.
        policy: ``"lru"`` or ``"lfu"``: which rows leave RAM first.
    """

    ram_bytes: int
    disk_bytes: int | None = None
    directory: str | None = None
    policy: str = "lru"

    def __post_init__(self) -> None:
        if self.ram_bytes <= 0:
            raise ValueError(f"StorageTiers: ram_bytes must be > 0, got {self.ram_bytes}")
        if self.disk_bytes is not None and self.disk_bytes <= 0:
            raise ValueError(f"StorageTiers: disk_bytes must be > 0, got {self.disk_bytes}")
        if self.policy not in POLICIES:
            raise ValueError(f"StorageTiers: policy must be one of {POLICIES}, got {self.policy!r}")

    @property
    def hot_bytes(self) -> int:
        """The budget of the fast tier."""
        return self.ram_bytes

    def info(self) -> dict:
        """What decides the rows' placement (tables that differ in it are stored apart)."""
        return {"ram_bytes": self.ram_bytes, "disk_bytes": self.disk_bytes, "policy": self.policy}


@dataclass(frozen=True)
class DeviceTiers:
    """Byte budgets of a GPU table's tiers: at most ``device_bytes`` of rows (embedding,
    optimizer and policy slots) in device memory, every row in pinned host memory that kernels
    read directly (at most ``host_bytes`` of it, None: no limit); ``policy`` (``"lru"`` or
    ``"lfu"``) picks the rows that leave device memory first.

    >>> DeviceTiers(device_bytes=1 << 30).info()
    {'device_bytes': 1073741824, 'host_bytes': None, 'policy': 'lru'}
    >>> DeviceTiers(device_bytes=1 << 30, policy="fifo")
    Traceback (most recent call last):
    ...
    ValueError: DeviceTiers: policy must be one of ('lru', 'lfu'), got 'fifo'
    """

    device_bytes: int
    host_bytes: int | None = None
    policy: str = "lru"

    def __post_init__(self) -> None:
        if self.device_bytes <= 0:
            raise ValueError(f"DeviceTiers: device_bytes must be > 0, got {self.device_bytes}")
        if self.host_bytes is not None and self.host_bytes <= 0:
            raise ValueError(f"DeviceTiers: host_bytes must be > 0, got {self.host_bytes}")
        if self.policy not in POLICIES:
            raise ValueError(f"DeviceTiers: policy must be one of {POLICIES}, got {self.policy!r}")

    @property
    def hot_bytes(self) -> int:
        """The budget of the fast tier."""
        return self.device_bytes

    def info(self) -> dict:
        """What decides the rows' placement (tables that differ in it are stored apart)."""
        return {
            "device_bytes": self.device_bytes,
            "host_bytes": self.host_bytes,
            "policy": self.policy,
        }
