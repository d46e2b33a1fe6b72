"""Entry point of one JAX process started by :mod:`jax_launch`:
``python -m jax_rank_main <result dir>``."""

from __future__ import annotations

import importlib
import pickle
import sys
from pathlib import Path

from recis.backends.jax import distributed


def main() -> None:
    out = Path(sys.argv[1])
    target, args = pickle.loads((out / "args.pkl").read_bytes())
    world = distributed.initialize(timeout_seconds=60)
    module, function = target.split(":")
    value = getattr(importlib.import_module(module), function)(world.rank, world.world_size, *args)
    (out / f"rank{world.rank}.pkl").write_bytes(pickle.dumps(value))
    distributed.shutdown()


if __name__ == "__main__":
    main()
