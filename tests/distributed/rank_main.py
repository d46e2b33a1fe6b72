"""Entry point of one rank started by :mod:`launch`: ``python -m rank_main <result dir>``."""

from __future__ import annotations

import datetime
import gc
import importlib
import os
import pickle
import sys
from pathlib import Path

import torch.distributed as dist


def main() -> None:
    out = Path(sys.argv[1])
    target, args, timeout = pickle.loads((out / "args.pkl").read_bytes())
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    module, function = target.split(":")
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout))
    try:
        value = getattr(importlib.import_module(module), function)(rank, world_size, *args)
    finally:
        gc.collect()  # what the function left in cycles goes while the process group lives
        if dist.is_initialized():
            dist.destroy_process_group()
    (out / f"rank{rank}.pkl").write_bytes(pickle.dumps(value))


if __name__ == "__main__":
    main()
