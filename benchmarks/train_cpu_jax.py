"""The ``jax`` system of ``train_cpu.py``: its DeepFM in Flax NNX on the JAX backend.

The same dynamic tables and sparse Adagrad in the engine as the torch backend's ``recis`` system,
the dense step jitted with ``optax.adam``. It runs in a process that imports no torch, as a JAX
user's does (the engine's kernel threads then sleep as soon as they are idle; in a process where
torch was imported first they share torch's OpenMP runtime, whose idle threads spin, unless
``OMP_WAIT_POLICY=PASSIVE`` is set).

    python benchmarks/train_cpu_jax.py sparse_heavy [--steps 20] [--warmup 3]  # prints step seconds
"""

from __future__ import annotations

import argparse
import itertools
import json

import jax
import jax.numpy as jnp
import optax
from deepfm_data import (
    BIAS_DIM,
    CAPACITY,
    DIM,
    NUM_DENSE,
    NUM_SPARSE,
    VARIANTS,
    make_numpy_batches,
)
from flax import nnx
from lockstep import serve, step_seconds

from recis.backends.jax import EmbeddingOption, SparseOptimizer, rules
from recis.backends.jax.flax import SparseEmbedding, nnx_train_step
from recis.core.initializers import UniformInitializer


def jax_train_step(hidden: tuple[int, ...], with_bias: bool):
    """The JAX backend's train step of the DeepFM: Flax NNX tower, RecIS sparse layer."""

    def option(name, dim):
        init = UniformInitializer(-0.01, 0.01)
        return EmbeddingOption(
            embedding_dim=dim, shared_name=name, initializer=init, capacity=CAPACITY
        )

    class FlaxDeepFM(nnx.Module):
        def __init__(self):
            options = {f"c{i}": option(f"c{i}", DIM) for i in range(NUM_SPARSE)}
            if with_bias:
                options |= {f"b{i}": option(f"b{i}", BIAS_DIM) for i in range(NUM_SPARSE)}
            self.embedding = SparseEmbedding(options)
            rngs = nnx.Rngs(0)
            widths = [NUM_SPARSE * DIM + NUM_DENSE, *hidden]
            self.layers = nnx.List(
                [nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(widths)]
            )
            self.head = nnx.Linear(widths[-1], 1, rngs=rngs)

        def __call__(self, batch):
            out = self.embedding(batch)
            stacked = jnp.stack([out[f"c{i}"] for i in range(NUM_SPARSE)], axis=1)
            fm = 0.5 * (stacked.sum(1) ** 2 - (stacked**2).sum(1)).sum(1)
            x = jnp.concatenate([stacked.reshape(stacked.shape[0], -1), batch["dense"]], axis=1)
            for layer in self.layers:
                x = jax.nn.relu(layer(x))
            logit = self.head(x)[:, 0] + fm
            if with_bias:
                logit += sum(out[f"b{i}"].sum(1) for i in range(NUM_SPARSE))
            return logit

    def loss_fn(model, batch):
        return optax.sigmoid_binary_cross_entropy(model(batch), batch["label"])

    model = FlaxDeepFM()
    sparse = SparseOptimizer(model.embedding, rules.Adagrad(), learning_rate=0.01)
    return nnx_train_step(model, loss_fn, optax.adam(1e-3), sparse)


def step_inputs(batch: dict, with_bias: bool) -> dict:
    """The train step's input dict of one ``deepfm_data`` batch."""
    ids = batch["ids"]
    inputs = {f"c{i}": ids[:, i : i + 1] for i in range(NUM_SPARSE)}
    if with_bias:
        inputs |= {f"b{i}": ids[:, i : i + 1] for i in range(NUM_SPARSE)}
    return inputs | {"dense": batch["dense"], "label": batch["label"]}


def prepared(variant: str, steps: int, warmup: int, batch_size: int):
    """The JAX backend's training step on one variant, to its loss being ready, as a function
    of the batch's number (``warmup + steps`` batches)."""
    hidden, with_bias = VARIANTS[variant]
    batches = make_numpy_batches(warmup + steps, batch_size)
    step = jax_train_step(hidden, with_bias)
    return lambda index: step(step_inputs(batches[index], with_bias)).loss.block_until_ready()


def measure(variant: str, steps: int, warmup: int, batch_size: int) -> list[float]:
    """Seconds of each measured step of the JAX backend on one variant, in this process."""
    return step_seconds(prepared(variant, steps, warmup, batch_size), warmup + steps)[warmup:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=4096)
    parser.add_argument("--serve", action="store_true", help="serve steps (lockstep.serve)")
    args = parser.parse_args()
    if args.serve:
        serve(prepared(args.variant, args.steps, args.warmup, args.batch_size))
        return
    print(json.dumps(measure(args.variant, args.steps, args.warmup, args.batch_size)))


if __name__ == "__main__":
    main()
