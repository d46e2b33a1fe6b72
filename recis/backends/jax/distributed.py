"""Joining several JAX processes (on one host or many) without torch.

:func:`initialize` starts ``jax.distributed`` from the environment variables that ``torchrun``
and our launcher (:mod:`recis.backends.jax.launch`) set: ``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT`` (the coordinator, served by rank 0). Each process then sees
every process's devices; the embedding tables are sharded over the processes and the dense
gradients averaged through :class:`~recis.backends.jax.communicator.JaxCommunicator`, which
:func:`recis.distributed.world.default_communicator` returns from then on. On CPU the
collectives run over gloo (``jax_cpu_collectives_implementation``).

>>> import os
>>> environment_world({"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "10.0.0.1",
...                    "MASTER_PORT": "1234"})
World(rank=1, world_size=2, coordinator='10.0.0.1:1234')
>>> environment_world({})  # no variables: one process
World(rank=0, world_size=1, coordinator=None)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

import jax

HEARTBEAT_SECONDS = 60  # a process silent this long is dead: jax.distributed ends the others


class World(NamedTuple):
    """This process's ``rank`` among ``world_size`` processes, and the coordinator's address."""

    rank: int
    world_size: int
    coordinator: str | None


def environment_world(environ: Mapping[str, str] = os.environ) -> World:
    """The :class:`World` the environment describes (one process where it describes none)."""
    world_size = int(environ.get("WORLD_SIZE", 1))
    if world_size == 1:
        return World(0, 1, None)
    missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if v not in environ]
    if missing:
        raise ValueError(f"WORLD_SIZE is {world_size} but the environment has no {missing}")
    coordinator = f"{environ['MASTER_ADDR']}:{environ['MASTER_PORT']}"
    return World(int(environ["RANK"]), world_size, coordinator)


def initialize(timeout_seconds: int = 300) -> World:
    """Join the processes the environment describes (nothing for one process); call it before
    any other JAX computation. Returns this process's :class:`World`."""
    world = environment_world()
    if world.world_size > 1 and not jax.distributed.is_initialized():
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            world.coordinator,
            world.world_size,
            world.rank,
            initialization_timeout=timeout_seconds,
            heartbeat_timeout_seconds=HEARTBEAT_SECONDS,
        )
    return world


def shutdown() -> None:
    """Leave ``jax.distributed`` (nothing if it was not initialised)."""
    if jax.distributed.is_initialized():
        jax.distributed.shutdown()
