"""Storage tiers of an embedding table: hot rows in RAM over the rest in memory-mapped files.

:class:`StorageTiers` configures a table's tiers (byte budgets, directory, placement policy);
:class:`TieredRowStore` keeps the rows behind the :class:`~recis.core.row_store.RowStore` API,
placing them with a :class:`Residency`; :class:`DiskRows` holds the slow tier's blocks.
A GPU table's :class:`DeviceTiers` keep hot rows in device memory over pinned host memory
(:class:`DeviceTieredRowStore`).
"""

from recis.core.tiers.config import DeviceTiers, StorageTiers
from recis.core.tiers.device import DeviceTieredRowStore
from recis.core.tiers.disk import DiskRows
from recis.core.tiers.residency import Residency
from recis.core.tiers.store import TieredPlan, TieredRowStore

__all__ = [
    "DeviceTieredRowStore",
    "DeviceTiers",
    "DiskRows",
    "Residency",
    "StorageTiers",
    "TieredPlan",
    "TieredRowStore",
]
