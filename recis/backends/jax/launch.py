"""Start several processes of a JAX training script on this host, like ``torchrun`` but without
torch: ``python -m recis.backends.jax.launch --nproc_per_node 2 -m examples.deepfm.train ...``.

Each process gets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``,
which :func:`recis.backends.jax.distributed.initialize` reads. On several hosts, run the launcher
on each with ``--nnodes``, ``--node_rank`` and the same ``--master_addr``/``--master_port`` (an
address of the host of node 0 that the others reach). If a process fails, the launcher stops the
others and exits with its status.

>>> second = rank_environments(nproc_per_node=2, nnodes=2, node_rank=1, master="10.0.0.1:29500")[1]
>>> [second[v] for v in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")]
['3', '1', '4', '10.0.0.1', '29500']
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def rank_environments(nproc_per_node: int, nnodes: int, node_rank: int, master: str) -> list:
    """The variables of each process of this node."""
    address, port = master.rsplit(":", 1)
    world_size = nproc_per_node * nnodes
    return [
        {
            "RANK": str(node_rank * nproc_per_node + local),
            "LOCAL_RANK": str(local),
            "WORLD_SIZE": str(world_size),
            "MASTER_ADDR": address,
            "MASTER_PORT": port,
        }
        for local in range(nproc_per_node)
    ]


def launch(command: list[str], environments: list[dict], poll_seconds: float = 0.2) -> int:
    """Run ``command`` once per environment; return the first non-zero status (else 0), having
    stopped the other processes."""
    processes = [subprocess.Popen(command, env={**os.environ, **env}) for env in environments]
    try:
        while True:
            statuses = [p.poll() for p in processes]
            failed = [s for s in statuses if s]
            if failed or all(s == 0 for s in statuses):
                return failed[0] if failed else 0
            time.sleep(poll_seconds)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            process.wait()


def split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """The launcher's ``--option value`` pairs, and the command from the script (or ``-m``) on.

    >>> split_command(["--nproc_per_node", "2", "-m", "examples.deepfm.train", "--steps", "6"])
    (['--nproc_per_node', '2'], ['-m', 'examples.deepfm.train', '--steps', '6'])
    """
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        i += 1 if "=" in argv[i] else 2
    return argv[:i], argv[i:]


def main(argv: list[str] | None = None) -> int:
    options, command = split_command(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        usage="python -m recis.backends.jax.launch [options] (script | -m module) [args]"
    )
    parser.add_argument("--nproc_per_node", type=int, default=1)
    parser.add_argument("--nnodes", type=int, default=1)
    parser.add_argument("--node_rank", type=int, default=0)
    parser.add_argument("--master_addr", default="127.0.0.1")
    parser.add_argument("--master_port", type=int, default=29500)
    args = parser.parse_args(options)
    if not command or command == ["-m"]:
        parser.error("give a script or -m module")
    master = f"{args.master_addr}:{args.master_port}"
    environments = rank_environments(args.nproc_per_node, args.nnodes, args.node_rank, master)
    return launch([sys.executable, *command], environments)


if __name__ == "__main__":
    sys.exit(main())
