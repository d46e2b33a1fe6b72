"""CPU time per stage of a training step, torch backend against JAX backend, same model.

On a shared, loaded machine wall-clock throughput says little; the CPU time each stage takes does.
This runs the ``train_cpu.py`` DeepFM (``--variant``) on either backend (each in a fresh process)
and reports, per step, each engine stage's time on the calling thread (``thread_ms``), on all
threads of the process meanwhile (``process_ms``, which counts the framework's threads working or
spinning beside it too) and the minor page faults it took (fresh memory touched):

- ``lookup``: the engine lookup (deduplication, id-map probe, row gather, combine);
- ``apply_gradients``: the combiners' backward and the recording of row gradients;
- ``sparse_step``: the sparse optimizer's update of the rows and slots;
- ``step``: the whole training step (dense forward, backward and update included).

    python benchmarks/step_stages.py [--variant sparse_heavy] [--steps 15] [--systems recis jax]
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import subprocess
import sys
import time
from collections import defaultdict

STAGES = {
    "lookup": ("recis.embedding.embedder", "Embedder", "lookup"),
    "apply_gradients": ("recis.embedding.embedder", "Embedder", "apply_gradients"),
    "sparse_step": ("recis.embedding.sparse_optimizer", "SparseOptimizerCore", "step"),
}


class StageClock:
    """Thread time, process time and minor page faults of the calls it wraps, once on."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        self.on = False

    def wrap(self, name: str, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            start = (time.thread_time(), time.process_time(), _faults())
            try:
                return function(*args, **kwargs)
            finally:
                if self.on:
                    end = (time.thread_time(), time.process_time(), _faults())
                    for i, (a, b) in enumerate(zip(start, end, strict=True)):
                        self.totals[name][i] += b - a

        return timed

    def report(self, steps: int) -> dict:
        return {
            name: {
                "thread_ms": round(1000 * thread / steps, 2),
                "process_ms": round(1000 * process / steps, 2),
                "page_faults": round(faults / steps),
            }
            for name, (thread, process, faults) in self.totals.items()
        }


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(system: str, variant: str, steps: int, warmup: int, batch_size: int) -> dict:
    """Per-step stage times of one backend (``recis``: torch, ``jax``), in this process."""
    import importlib

    from deepfm_data import VARIANTS, make_numpy_batches

    clock = StageClock()
    for stage, (module, owner, method) in STAGES.items():
        cls = getattr(importlib.import_module(module), owner)
        setattr(cls, method, clock.wrap(stage, getattr(cls, method)))
    hidden, with_bias = VARIANTS[variant]
    batches = make_numpy_batches(warmup + steps, batch_size)
    run = clock.wrap("step", (_jax_step if system == "jax" else _torch_step)(hidden, with_bias))
    for index, batch in enumerate(batches):
        clock.on = index >= warmup
        run(batch)
    return clock.report(steps)


def _torch_step(hidden, with_bias):
    """``train_cpu.py``'s training step of its ``recis`` system."""
    import torch
    import train_cpu

    torch.manual_seed(0)
    train = train_cpu.training_step(train_cpu.RecisModel(hidden, with_bias))

    def step(numpy_batch):
        train({name: torch.from_numpy(array) for name, array in numpy_batch.items()})

    return step


def _jax_step(hidden, with_bias):
    """The JAX step, in a process that imports no torch (``train_cpu_jax.py``)."""
    import train_cpu_jax

    train_step = train_cpu_jax.jax_train_step(hidden, with_bias)

    def step(batch):
        train_step(train_cpu_jax.step_inputs(batch, with_bias)).loss.block_until_ready()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="sparse_heavy", choices=["deepfm", "sparse_heavy"])
    parser.add_argument("--systems", nargs="+", default=["recis", "jax"], choices=["recis", "jax"])
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=4096)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        result = measure(args.measure, args.variant, args.steps, args.warmup, args.batch_size)
        print(json.dumps(result))
        return
    report = {"variant": args.variant, "steps": args.steps, "batch_size": args.batch_size}
    for system in args.systems:
        command = [sys.executable, __file__, "--measure", system, "--variant", args.variant]
        command += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
        command += ["--batch_size", str(args.batch_size)]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        report[system] = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
