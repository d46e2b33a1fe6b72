"""Runs a function on several local JAX processes joined by ``jax.distributed``, where
``import torch`` fails (tests/no_torch): the JAX path must run without torch.

``run_jax_ranks(world_size, "module:function", *args)`` starts one process per rank with the
environment of :mod:`recis.backends.jax.launch`; the function runs as
``function(rank, world_size, *args)`` after :func:`recis.backends.jax.distributed.initialize`.
It returns each rank's return value and raises if a rank fails or the job hangs.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

from launch import ROOT, TESTS, collect, free_port
from no_torch_env import BLOCKER

from recis.backends.jax.launch import rank_environments


def start_jax_ranks(world_size: int, target: str, *args, env=None):
    """Start the processes; return ``(processes, result_dir)`` for :func:`launch.collect`.
    ``env``: extra environment variables of every process."""
    out = Path(tempfile.mkdtemp(prefix="jax-ranks-"))
    (out / "args.pkl").write_bytes(pickle.dumps((target, args)))
    base = dict(os.environ, OMP_NUM_THREADS="1", RECIS_ENGINE_THREADS="1")
    base.pop("XLA_FLAGS", None)
    base.update(env or {})
    paths = [str(BLOCKER), str(ROOT), str(TESTS), base.get("PYTHONPATH", "")]
    base["PYTHONPATH"] = os.pathsep.join(paths)
    master = f"127.0.0.1:{free_port()}"
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "jax_rank_main", str(out)],
            env={**base, **rank_env},
            stderr=subprocess.PIPE,
            text=True,
            cwd=TESTS,
        )
        for rank_env in rank_environments(world_size, 1, 0, master)
    ]
    return processes, out


def run_jax_ranks(world_size: int, target: str, *args, timeout: float = 180.0, env=None) -> list:
    """Run ``target`` on ``world_size`` JAX processes; return the ranks' return values."""
    results = collect(*start_jax_ranks(world_size, target, *args, env=env), timeout)
    for rank, result in enumerate(results):
        if result.returncode != 0:
            raise AssertionError(f"rank {rank} failed:\n{result.stderr[-4000:]}")
    return [r.value for r in results]
