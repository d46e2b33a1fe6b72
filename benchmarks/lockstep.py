"""Compare training systems step by step: each runs in a process of its own, and they take turns.

On a shared machine slow phases last seconds; systems measured one after the other meet different
phases, while systems that take turns one step at a time meet the same ones. :func:`serve` runs in
each worker (one step per request on stdin, its wall seconds on stdout); :func:`take_turns` starts
the workers and asks each for a step in turn. :func:`step_seconds` times steps in one process.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable


def timed(step: Callable[[int], None], index: int) -> float:
    """Wall seconds of ``step(index)``."""
    start = time.perf_counter()
    step(index)
    return time.perf_counter() - start


def step_seconds(step: Callable[[int], None], count: int) -> list[float]:
    """Wall seconds of ``step(i)`` for ``i`` in ``range(count)``, one after the other."""
    return [timed(step, index) for index in range(count)]


def serve(step: Callable[[int], None]) -> None:
    """Worker loop: print ``ready``, then for each line ``i`` on stdin run ``step(i)`` and print
    its wall seconds; stop at end of input."""
    print("ready", flush=True)
    for line in sys.stdin:
        print(timed(step, int(line)), flush=True)


def take_turns(commands: dict[str, list[str]], steps: int) -> dict[str, list[float]]:
    """Start one worker per command, then run steps ``0..steps-1``, each worker one step per
    turn (the order rotated every turn); returns each worker's step seconds."""
    workers = {
        name: subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for name, command in commands.items()
    }
    try:
        for name, worker in workers.items():
            if worker.stdout.readline().strip() != "ready":
                raise RuntimeError(f"worker {name!r} failed to start: {' '.join(commands[name])}")
        seconds: dict[str, list[float]] = {name: [] for name in workers}
        names = list(workers)
        for index in range(steps):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                worker = workers[name]
                worker.stdin.write(f"{index}\n")
                worker.stdin.flush()
                reply = worker.stdout.readline()
                if not reply:
                    raise RuntimeError(f"worker {name!r} stopped at step {index}")
                seconds[name].append(float(reply))
        return seconds
    finally:
        for worker in workers.values():
            worker.stdin.close()
            worker.wait()
