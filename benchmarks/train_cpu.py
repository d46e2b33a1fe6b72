"""CPU training throughput of DeepFM: RecIS (torch, JAX) vs static tables vs TorchRec.

One run trains the same DeepFM (13 dense + 26 categorical features, one id per feature, ids
Zipf-distributed over 1M values per feature, dim 16, batch 4096) in four systems:

- ``recis``: :class:`recis.nn.EmbeddingEngine` — growable hash tables keyed by raw int64 ids,
  merged into one physical table per dim — with ``SparseAdagrad``;
- ``embedding_bag``: static ``nn.EmbeddingBag(1M, 16, sparse=True)`` + ``torch.optim.Adagrad``
  (sparse gradients);
- ``torchrec``: TorchRec's ``FusedEmbeddingBagCollection`` (fbgemm CPU kernels, Adagrad fused
  into the backward pass);
- ``jax``: the same DeepFM in Flax NNX on the JAX backend (:mod:`recis.backends.jax`): the same
  dynamic tables and sparse Adagrad in the engine, the dense step jitted with ``optax.adam``;
- ``dense_only``: the dense part alone, fed fixed embeddings (gradients w.r.t. them computed,
  never applied): the ceiling any sparse layer can reach. ``sparse_ms_per_step`` reports each
  torch system's time per step beyond it, i.e. what its sparse layer costs.

All use Adagrad for the embeddings because fbgemm's CPU kernels offer no Adam. The dense part
(FM interactions + MLP, ``torch.optim.Adam``) is identical. Two variants: ``deepfm``
(MLP 400-400-400, embedding tables) and ``sparse_heavy`` (MLP 64-16, an embedding and a bias
table per feature; bias rows are 4 wide in every system, as fbgemm needs dims divisible by 4, and
their sum is the bias). Each system runs once per round in a fresh process, ``--rounds``
times with the order rotated; the JSON object reports each system's median samples/s over the
rounds, their ``spread`` (slowest and fastest round) and the ratios of medians (``jax_vs_recis``:
the JAX backend against the torch backend). ``median_step`` gives the same from the median time
of one step (all rounds' steps pooled; each step timed to its end), which slow phases of a shared
machine, lasting seconds, move less than whole runs. With ``--lockstep`` the systems also run
side by side, each in its process, taking turns step by step (:mod:`lockstep`), so that they meet
the same slow phases: ``lockstep`` gives their samples/s at the median step and at the mean step
(which counts slow steps, such as a table's growth, in full), and the ratios of each.

    python benchmarks/train_cpu.py [--steps 20] [--warmup 3] [--rounds 3] [--variants deepfm]

TorchRec on CPU needs ``torchrec==1.8.0`` and ``fbgemm-gpu-cpu==1.8.0`` (``make bench-deps``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from deepfm_data import (
    BIAS_DIM,
    CAPACITY,
    DIM,
    NUM_DENSE,
    NUM_SPARSE,
    VARIANTS,
    VOCAB,
    make_numpy_batches,
)
from lockstep import serve, step_seconds, take_turns
from torch import nn

from recis.backends.torch.initializers import UniformInitializer
from recis.nn import EmbeddingEngine, EmbeddingOption, filter_out_sparse_param
from recis.optim import SparseAdagrad


def make_batches(steps: int, batch_size: int, seed: int = 0) -> list[dict]:
    """:func:`deepfm_data.make_numpy_batches` as torch tensors (sharing the arrays' memory)."""
    return [
        {name: torch.from_numpy(array) for name, array in batch.items()}
        for batch in make_numpy_batches(steps, batch_size, seed)
    ]


class DenseTower(nn.Module):
    """FM second-order term over the embeddings + MLP over embeddings and dense features."""

    def __init__(self, hidden: tuple[int, ...]):
        super().__init__()
        layers, width = [], NUM_SPARSE * DIM + NUM_DENSE
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.mlp = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, dense, embeddings, bias=None):
        stacked = torch.stack(embeddings, dim=1)  # [B, 26, D]
        fm = 0.5 * (stacked.sum(1).pow(2) - stacked.pow(2).sum(1)).sum(1)
        logit = self.mlp(torch.cat([stacked.flatten(1), dense], 1)).squeeze(1) + fm
        if bias is not None:
            logit = logit + torch.cat(bias, 1).sum(1)
        return logit


class RecisModel(nn.Module):
    def __init__(self, hidden, with_bias):
        super().__init__()
        init = UniformInitializer(-0.01, 0.01)
        options = {
            f"c{i}": EmbeddingOption(
                embedding_dim=DIM, shared_name=f"c{i}", initializer=init, capacity=CAPACITY
            )
            for i in range(NUM_SPARSE)
        }
        if with_bias:
            options |= {
                f"b{i}": EmbeddingOption(
                    embedding_dim=BIAS_DIM, shared_name=f"b{i}", initializer=init, capacity=CAPACITY
                )
                for i in range(NUM_SPARSE)
            }
        self.engine = EmbeddingEngine(options)
        self.with_bias = with_bias
        self.tower = DenseTower(hidden)

    def forward(self, batch):
        ids = batch["ids"]
        inputs = {f"c{i}": ids[:, i : i + 1] for i in range(NUM_SPARSE)}
        if self.with_bias:
            inputs |= {f"b{i}": ids[:, i : i + 1] for i in range(NUM_SPARSE)}
        out = self.engine(inputs)
        bias = [out[f"b{i}"] for i in range(NUM_SPARSE)] if self.with_bias else None
        return self.tower(batch["dense"], [out[f"c{i}"] for i in range(NUM_SPARSE)], bias)

    def optimizers(self):
        return [
            SparseAdagrad(filter_out_sparse_param(self), lr=0.01),
            torch.optim.Adam(self.tower.parameters(), lr=1e-3),
        ]


class EmbeddingBagModel(nn.Module):
    def __init__(self, hidden, with_bias):
        super().__init__()
        self.emb = nn.ModuleList(
            nn.EmbeddingBag(VOCAB, DIM, mode="sum", sparse=True) for _ in range(NUM_SPARSE)
        )
        self.bias = (
            nn.ModuleList(
                nn.EmbeddingBag(VOCAB, BIAS_DIM, mode="sum", sparse=True) for _ in range(NUM_SPARSE)
            )
            if with_bias
            else None
        )
        self.tower = DenseTower(hidden)

    def forward(self, batch):
        ranks = batch["ranks"]
        embeddings = [bag(ranks[:, i : i + 1]) for i, bag in enumerate(self.emb)]
        bias = (
            [bag(ranks[:, i : i + 1]) for i, bag in enumerate(self.bias)]
            if self.bias is not None
            else None
        )
        return self.tower(batch["dense"], embeddings, bias)

    def optimizers(self):
        sparse = list(self.emb.parameters()) + (
            list(self.bias.parameters()) if self.bias is not None else []
        )
        return [
            torch.optim.Adagrad(sparse, lr=0.01),
            torch.optim.Adam(self.tower.parameters(), lr=1e-3),
        ]


class TorchRecModel(nn.Module):
    def __init__(self, hidden, with_bias):
        super().__init__()
        from torchrec import EmbeddingBagConfig
        from torchrec.modules.fused_embedding_modules import FusedEmbeddingBagCollection

        tables = [
            EmbeddingBagConfig(
                name=f"c{i}", embedding_dim=DIM, num_embeddings=VOCAB, feature_names=[f"c{i}"]
            )
            for i in range(NUM_SPARSE)
        ]
        if with_bias:
            tables += [
                EmbeddingBagConfig(
                    name=f"b{i}",
                    embedding_dim=BIAS_DIM,
                    num_embeddings=VOCAB,
                    feature_names=[f"b{i}"],
                )
                for i in range(NUM_SPARSE)
            ]
        self.keys = [t.feature_names[0] for t in tables]
        self.ebc = FusedEmbeddingBagCollection(
            tables=tables,
            optimizer_type=torch.optim.Adagrad,
            optimizer_kwargs={"lr": 0.01},
            device=torch.device("cpu"),
        )
        self.with_bias = with_bias
        self.tower = DenseTower(hidden)

    def forward(self, batch):
        from torchrec import KeyedJaggedTensor

        ranks = batch["ranks"]
        columns = [ranks[:, i] for i in range(NUM_SPARSE)] * (2 if self.with_bias else 1)
        kjt = KeyedJaggedTensor.from_lengths_sync(
            keys=self.keys,
            values=torch.cat(columns),
            lengths=torch.ones(len(columns) * ranks.shape[0], dtype=torch.int64),
        )
        out = self.ebc(kjt).to_dict()
        bias = [out[f"b{i}"] for i in range(NUM_SPARSE)] if self.with_bias else None
        return self.tower(batch["dense"], [out[f"c{i}"] for i in range(NUM_SPARSE)], bias)

    def optimizers(self):
        return [torch.optim.Adam(self.tower.parameters(), lr=1e-3)]  # embeddings update in backward


class DenseOnlyModel(nn.Module):
    """The dense tower fed fixed embeddings: what every system's step costs without its
    sparse layer."""

    def __init__(self, hidden, with_bias):
        super().__init__()
        self.tower = DenseTower(hidden)
        self.with_bias = with_bias
        self.fixed: dict[int, tuple] = {}

    def forward(self, batch):
        size = batch["label"].shape[0]
        if size not in self.fixed:
            make = lambda dim: torch.randn(size, dim, requires_grad=True)  # noqa: E731
            self.fixed[size] = (
                [make(DIM) for _ in range(NUM_SPARSE)],
                [make(BIAS_DIM) for _ in range(NUM_SPARSE)] if self.with_bias else None,
            )
        embeddings, bias = self.fixed[size]
        return self.tower(batch["dense"], embeddings, bias)

    def optimizers(self):
        return [torch.optim.Adam(self.tower.parameters(), lr=1e-3)]


def training_step(model: nn.Module):
    """One training step of ``model`` on a batch: forward, backward, optimizer steps."""
    optimizers = model.optimizers()
    loss_fn = nn.BCEWithLogitsLoss()

    def step(batch: dict) -> None:
        for optimizer in optimizers:
            optimizer.zero_grad()
        loss_fn(model(batch), batch["label"]).backward()
        for optimizer in optimizers:
            optimizer.step()

    return step


def prepared(system: str, variant: str, args):
    """The training step of one system on one variant, in this process, as a function of the
    batch's number (``args.warmup + args.steps`` batches)."""
    hidden, with_bias = VARIANTS[variant]
    torch.manual_seed(0)
    batches = make_batches(args.warmup + args.steps, args.batch_size)
    step = training_step(SYSTEMS[system](hidden, with_bias))
    return lambda index: step(batches[index])


def measure(system: str, variant: str, args) -> list[float]:
    """Seconds of each measured step of one system on one variant, in this process."""
    return step_seconds(prepared(system, variant, args), args.warmup + args.steps)[args.warmup :]


def worker_command(system: str, variant: str, args, mode: str) -> list[str]:
    """The command that measures (``--measure``) or serves steps of (``--serve``) one system in
    a fresh process, so that thread pools and memory of one system do not affect the next."""
    if system == "jax":  # a process without torch, as a JAX user's
        command = [sys.executable, str(Path(__file__).with_name("train_cpu_jax.py")), variant]
        command += ["--serve"] if mode == "--serve" else []
    else:
        command = [sys.executable, __file__, mode, system, variant]
    command += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    return [*command, "--batch_size", str(args.batch_size)]


def measure_in_subprocess(system: str, variant: str, args) -> list[float]:
    """:func:`measure` in a fresh process."""
    command = worker_command(system, variant, args, "--measure")
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure_in_rounds(variant: str, args) -> dict:
    """Each system's median samples/s over the rounds, at the median step, the ratios, the
    dense-only ceiling's share and the spread (module docstring)."""
    runs = measure_rounds(variant, args)
    per_round = {
        name: [args.batch_size * len(steps) / sum(steps) for steps in rounds]
        for name, rounds in runs.items()
    }
    result = {name: statistics.median(values) for name, values in per_round.items()}
    result |= ratios(result)
    median_step = {
        name: args.batch_size / statistics.median([s for steps in rounds for s in steps])
        for name, rounds in runs.items()
    }
    result["median_step"] = median_step | ratios(median_step)
    if "dense_only" in result:
        ceiling = result["dense_only"]
        result["sparse_ms_per_step"] = {
            name: round(1e3 * args.batch_size * (1 / result[name] - 1 / ceiling), 2)
            for name in ("recis", "embedding_bag", "torchrec", "jax")
            if name in result
        }
    result["spread"] = {name: [min(v), max(v)] for name, v in per_round.items()}
    return result


def measure_lockstep(variant: str, args) -> dict:
    """Every system's samples/s at its median step and at its mean step (which counts slow
    steps, such as a table's growth, in full), the systems taking turns step by step
    (:mod:`lockstep`), with the ratios of each."""
    commands = {name: worker_command(name, variant, args, "--serve") for name in args.systems}
    seconds = {
        name: values[args.warmup :]
        for name, values in take_turns(commands, args.warmup + args.steps).items()
    }
    result = {}
    for statistic in (statistics.median, statistics.mean):
        throughput = {name: args.batch_size / statistic(s) for name, s in seconds.items()}
        result[f"{statistic.__name__}_step"] = throughput | ratios(throughput)
    return result


def measure_rounds(variant: str, args) -> dict[str, list[list[float]]]:
    """Step seconds of every system in ``args.rounds`` rounds, each system once per round and
    the order rotated between rounds, so that slow phases of a shared machine hit all alike."""
    runs: dict[str, list[list[float]]] = {name: [] for name in args.systems}
    for round_index in range(args.rounds):
        shift = round_index % len(args.systems)
        for name in args.systems[shift:] + args.systems[:shift]:
            runs[name].append(measure_in_subprocess(name, variant, args))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=3, help="0: lockstep only")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument(
        "--lockstep",
        action="store_true",
        help="also run the systems side by side, taking turns step by step (result 'lockstep')",
    )
    parser.add_argument("--measure", nargs=2, metavar=("SYSTEM", "VARIANT"), help=argparse.SUPPRESS)
    parser.add_argument("--serve", nargs=2, metavar=("SYSTEM", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure, args)))
        return
    if args.serve:
        serve(prepared(*args.serve, args))
        return
    report = {
        "benchmark": "cpu_training_deepfm",
        "unit": "samples/s",
        "batch_size": args.batch_size,
        "steps": args.steps,
        "rounds": args.rounds,
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "results": {},
    }
    for variant in args.variants:
        result = measure_in_rounds(variant, args) if args.rounds else {}
        if args.lockstep:
            result["lockstep"] = measure_lockstep(variant, args)
        report["results"][variant] = result
    print(json.dumps(report, indent=2))


def ratios(throughput: dict[str, float]) -> dict[str, float]:
    """RecIS's torch backend against each peer, and the JAX backend against the torch one."""
    pairs = [("recis", "embedding_bag"), ("recis", "torchrec"), ("jax", "recis")]
    return {
        f"{ours}_vs_{peer}": throughput[ours] / throughput[peer]
        for ours, peer in pairs
        if ours in throughput and peer in throughput
    }


SYSTEMS = {
    "recis": RecisModel,
    "embedding_bag": EmbeddingBagModel,
    "torchrec": TorchRecModel,
    "jax": None,  # train_cpu_jax.py, in a process of its own
    "dense_only": DenseOnlyModel,
}

if __name__ == "__main__":
    main()
