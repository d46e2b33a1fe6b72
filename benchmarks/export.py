"""Serving export and prediction: bundle and delta sizes and times, Predictor vs evaluation.

Trains the example DeepFM (torch backend, dim 16, MLP 400-400-400, SparseAdamW) on generated
Criteo-shaped data for ``--steps`` steps of ``--batch_size``, then measures in one run:

- ``full``: a float32 full export (rows, feature ops, ``torch.export`` program): seconds, bytes of
  the rows file, ids; and the same for ``int8``;
- ``delta``: after ``--delta_steps`` more steps, a delta export: seconds, bytes, rows written and
  ids removed;
- for each export, ``pause_seconds``: how long :func:`start_export_model` held the trainer (the
  copy of the changed rows, the example activations and the dense weights), against ``seconds``,
  the whole export (tracing and writing run in the background), and ``pause_fraction``; the
  delta is written while the trainer runs ``--overlap_steps`` more steps (``steps_while_written``
  and their mean seconds, ``step_seconds_while_written``, against ``step_seconds`` before);
- ``predict``: :class:`recis.serving.Predictor` (base + delta) scoring the evaluation batches,
  rows/s, against the trainer's evaluation loop (``model.logits`` under ``trainer.evaluation()``)
  on the same batches (``rows_per_s_ratio`` = predictor / evaluation), and the largest absolute
  difference of their scores.

Prints one JSON object. ``python -m benchmarks.export [--steps 20] [--delta_steps 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np
import torch

from examples.deepfm.model import DeepFM
from recis.backends.torch.export import start_export_model
from recis.framework.trainer import Trainer, TrainingArguments
from recis.io import OrcDataset
from recis.nn import filter_out_sparse_param
from recis.optim import SparseAdamW
from recis.serving import Predictor
from recis.tools.synthetic import declare_columns, write_dataset


def batches(path: str, batch_size: int, output: str) -> list[dict]:
    data = OrcDataset(batch_size, output=output, transform_fn=[lambda tables: tables[0]])
    data.add_path(path)
    declare_columns(data)
    return list(data)


def timed_export(model, path, example, meanwhile=lambda: {}, **kwargs) -> dict:
    """Export ``model``, running ``meanwhile()`` (training) while the files are written."""
    start = time.perf_counter()
    pending = start_export_model(model, path, example, **kwargs)
    trained = meanwhile()
    bundle = pending.result()
    seconds = pending.finished_at - start
    rows = bundle.rows()
    return {
        "bundle": bundle,
        **trained,
        "seconds": round(seconds, 3),
        "pause_seconds": round(pending.snapshot_seconds, 4),
        "pause_fraction": round(pending.snapshot_seconds / seconds, 4),
        "rows_file_bytes": bundle.file("rows.safetensors").stat().st_size,
        "program_bytes": bundle.file("dense.pt2").stat().st_size,
        "rows": sum(len(r) for r in rows.values()),
        "removed": sum(int(r.removed.size) for r in rows.values()),
    }


def mean_step_seconds(trainer, batches) -> float:
    start = time.perf_counter()
    for batch in batches:
        trainer.run_step(batch)
    return (time.perf_counter() - start) / max(len(batches), 1)


def rows_per_second(run, batches) -> tuple[float, list]:
    run(batches[0])  # warm up
    start = time.perf_counter()
    scores = [run(b) for b in batches]
    seconds = time.perf_counter() - start
    return sum(len(s) for s in scores) / seconds, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--delta_steps", type=int, default=5)
    parser.add_argument("--overlap_steps", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument("--eval_batches", type=int, default=4)
    args = parser.parse_args()
    root = tempfile.mkdtemp()
    total = (args.steps + args.delta_steps + args.overlap_steps) * args.batch_size
    write_dataset(f"{root}/train", rows=total, files=1, seed=1)
    write_dataset(f"{root}/eval", rows=args.eval_batches * args.batch_size, files=1, seed=2)
    train = batches(f"{root}/train", args.batch_size, "torch")
    eval_torch = batches(f"{root}/eval", args.batch_size, "torch")
    eval_numpy = batches(f"{root}/eval", args.batch_size, "numpy")

    torch.manual_seed(0)
    model = DeepFM(dim=16)
    trainer = Trainer(
        model,
        TrainingArguments(output_dir=f"{root}/run", log_steps=10**9),
        dense_optimizers=(torch.optim.AdamW(model.parameters(), lr=1e-3), None),
        sparse_optimizer=SparseAdamW(filter_out_sparse_param(model), lr=1e-2),
    )
    trainer.prepare_training()
    for batch in train[: args.steps]:
        trainer.run_step(batch)
    full = timed_export(model, f"{root}/base", train[0], step=args.steps)
    int8 = timed_export(model, f"{root}/int8", train[0], dtype="int8")
    delta_end = args.steps + args.delta_steps
    step_seconds = mean_step_seconds(trainer, train[args.steps : delta_end])

    def evaluate(batch):
        with trainer.evaluation():
            return model.logits(batch).numpy()

    evaluation_rate, expected = rows_per_second(evaluate, eval_torch)  # at the delta's moment

    def overlap() -> dict:
        seconds = mean_step_seconds(trainer, train[delta_end:])
        return {
            "steps_while_written": len(train[delta_end:]),
            "step_seconds_while_written": round(seconds, 4),
            "step_seconds": round(step_seconds, 4),
        }

    delta = timed_export(model, f"{root}/delta", train[0], overlap, since=full["bundle"])
    predictor = Predictor(full["bundle"], deltas=[delta["bundle"]])
    predictor_rate, got = rows_per_second(predictor.predict, eval_numpy)
    difference = max(float(np.abs(a - b).max()) for a, b in zip(got, expected, strict=True))
    for entry in (full, int8, delta):
        del entry["bundle"]
    print(
        json.dumps(
            {
                "benchmark": "export",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "model": "DeepFM dim 16, MLP 400-400-400, 26 sparse + 13 dense",
                "batch_size": args.batch_size,
                "steps": args.steps,
                "delta_steps": args.delta_steps,
                "overlap_steps": args.overlap_steps,
                "full": full,
                "full_int8": int8,
                "delta": delta,
                "predict": {
                    "predictor_rows_per_s": round(predictor_rate),
                    "evaluation_rows_per_s": round(evaluation_rate),
                    "rows_per_s_ratio": round(predictor_rate / evaluation_rate, 3),
                    "max_abs_score_difference": difference,
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
