"""``DataParallel``: the dense step of one process on several local devices, over a ``Mesh``.

The batch (the embedding activations and the other batch entries) is split along its first
dimension over the mesh's data axis, the dense parameters and optimizer state are replicated,
and ``jit`` computes the loss of the whole batch: XLA sums each device's part of the gradients
across the devices, so the update is the one a single device would make on the whole batch
(within float rounding). The batch is padded to a multiple of the number of devices with empty
samples, which the loss leaves out. Pass it as ``TrainStep(..., mesh=DataParallel())``.

The embedding tables stay in the engine, in host memory. Across processes they are sharded
row-wise (:mod:`recis.backends.jax.distributed`); an ``Embedder`` (or ``SparseEmbedding``) built
with ``mesh=`` also shards them row-wise over the mesh's devices
(:mod:`recis.backends.jax.device_tables`).

>>> import jax
>>> data = DataParallel()  # every local device on the axis "data"
>>> data.size == len(jax.local_devices()), data.padded_size(5) % data.size
(True, 0)
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


class DataParallel:
    """Splits batches over ``axis`` of ``mesh`` (default: all local devices on ``"data"``)."""

    def __init__(self, mesh: Mesh | None = None, axis: str = "data") -> None:
        if mesh is None:
            mesh = Mesh(np.array(jax.local_devices()), (axis,))
        if axis not in mesh.axis_names:
            raise ValueError(f"DataParallel: the mesh has no axis {axis!r} ({mesh.axis_names})")
        self.mesh, self.axis = mesh, axis
        self.size = int(mesh.shape[axis])
        self.replicated = NamedSharding(mesh, P())
        self.split = NamedSharding(mesh, P(axis))

    def __repr__(self) -> str:
        return f"DataParallel(axis={self.axis!r}, devices={self.size})"

    def padded_size(self, size: int) -> int:
        """``size`` rounded up to a multiple of the devices on the data axis."""
        return -(-size // self.size) * self.size

    def replicate(self, tree):
        """``tree`` on every device of the mesh (parameters, optimizer state)."""
        return jax.device_put(tree, self.replicated)

    def split_batch(self, tree):
        """``tree``'s arrays split along their first dimension over the data axis."""
        return jax.device_put(tree, self.split)
