"""Entry point of one rank started by :mod:`launch`: ``python -m rank_main <result dir>``."""

from __future__ import annotations

import datetime
import importlib
import os
import pickle
import sys
from pathlib import Path

import torch.distributed as dist

from recis.backends.torch.communicator import end_process_group


def main() -> None:
    out = Path(sys.argv[1])
    target, args, timeout = pickle.loads((out / "args.pkl").read_bytes())
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    module, function = target.split(":")
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout))
    try:
        value = getattr(importlib.import_module(module), function)(rank, world_size, *args)
    finally:
        end_process_group()  # collects cycles first; leaves a failed process group alone
    (out / f"rank{rank}.pkl").write_bytes(pickle.dumps(value))


if __name__ == "__main__":
    main()
