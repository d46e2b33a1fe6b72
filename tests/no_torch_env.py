"""The environment of a subprocess in which ``import torch`` fails (tests/no_torch)."""

from __future__ import annotations

import os
from pathlib import Path

BLOCKER = Path(__file__).resolve().parent / "no_torch"


def without_torch(env: dict | None = None) -> dict:
    """``env`` (default: this process's) with the torch blocker first on ``PYTHONPATH``."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join([str(BLOCKER), env.get("PYTHONPATH", "")])
    return env
