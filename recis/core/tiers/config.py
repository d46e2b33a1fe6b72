"""``StorageTiers``: where a table's rows live when they do not all fit in RAM.

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

    def info(self) -> dict:
        """What decides the rows' placement (tables that differ in it are stored apart)."""
        return {"ram_bytes": self.ram_bytes, "disk_bytes": self.disk_bytes, "policy": self.policy}
