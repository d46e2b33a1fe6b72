"""Runs a function on several local ranks under torch.distributed (gloo), like ``torchrun``.

``run_ranks(world_size, "module:function", *args)`` starts one process per rank with the usual
environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), where the function runs
as ``function(rank, world_size, *args)`` after ``init_process_group("gloo")``; it returns each
rank's return value (pickled through a file) and raises if a rank fails or the job hangs.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = Path(__file__).resolve().parent


@dataclass
class RankResult:
    returncode: int
    value: object
    stderr: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ranks(world_size: int, target: str, *args, timeout: float = 30.0):
    """Start the ranks; return ``(processes, result_dir)`` (see :func:`collect`)."""
    out = Path(tempfile.mkdtemp(prefix="ranks-"))
    (out / "args.pkl").write_bytes(pickle.dumps((target, args, timeout)))
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    env["WORLD_SIZE"] = str(world_size)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    env["RECIS_ENGINE_THREADS"] = "1"
    processes = []
    for rank in range(world_size):
        env_rank = dict(env, RANK=str(rank), LOCAL_RANK=str(rank))
        command = [sys.executable, "-m", "rank_main", str(out)]
        processes.append(
            subprocess.Popen(command, env=env_rank, stderr=subprocess.PIPE, text=True, cwd=TESTS)
        )
    return processes, out


def collect(processes, out: Path, timeout: float = 120.0) -> list[RankResult]:
    """Wait for the ranks (killing them all past ``timeout``) and read their results."""
    results = []
    for rank, process in enumerate(processes):
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            raise AssertionError(f"rank {rank} did not finish within {timeout} s") from None
        path = out / f"rank{rank}.pkl"
        value = pickle.loads(path.read_bytes()) if path.exists() else None
        results.append(RankResult(process.returncode, value, stderr))
    return results


def run_ranks(world_size: int, target: str, *args, timeout: float = 120.0) -> list:
    """Run ``target`` on ``world_size`` ranks; return the ranks' return values."""
    processes, out = start_ranks(world_size, target, *args)
    results = collect(processes, out, timeout)
    for rank, result in enumerate(results):
        if result.returncode != 0:
            raise AssertionError(f"rank {rank} failed:\n{result.stderr[-4000:]}")
    return [r.value for r in results]
