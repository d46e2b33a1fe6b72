"""Runners in the shape of RecIS's examples, started as its ``run.sh`` starts them:
``torchrun`` with the arguments on the command line, parsed by RecIS's ``ArgumentParser``."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pyarrow as pa
from test_recis_models import ROOT, SCRIPTS, _free_port, floats, ids, write_orc


def deepfm_table(rows: int, rng) -> pa.Table:
    """The label is the parity of ``c1``; the other columns are noise."""
    c1 = rng.integers(0, 40, rows)
    return pa.table(
        {
            "label": floats(c1 % 2),
            "i1": floats(rng.random(rows)),
            "i2": floats(rng.random(rows)),
            "c1": ids(c1),
            "c2": ids(rng.integers(0, 1000, rows)),
            "c3": ids(rng.integers(0, 1000, rows)),
        }
    )


def sequence_table(rows: int, rng) -> pa.Table:
    """Each sample walks a ring of 40 items from a random start (4 to 12 steps, each item a
    list of 1 or 2 copies of its id), so that an item tells the one before it; the behaviour
    ids are strings that follow the same walk on a ring of 5."""
    items, behaviours = [], []
    for start, length in zip(rng.integers(0, 40, rows), rng.integers(4, 13, rows), strict=True):
        walk = [(int(start) + step) % 40 for step in range(length)]
        copies = rng.integers(1, 3, length)
        items.append([[item] * int(n) for item, n in zip(walk, copies, strict=True)])
        behaviours.append([[f"b{item % 5}"] for item in walk])
    return pa.table(
        {
            "item_id": pa.array(items, pa.list_(pa.list_(pa.int64()))),
            "behavior_id": pa.array(behaviours, pa.list_(pa.list_(pa.string()))),
        }
    )


def run_sh(script: str, arguments: list[str]) -> None:
    """``torchrun --nproc_per_node=1 <script> <arguments>``, as the examples' ``run.sh``."""
    env = dict(os.environ, OMP_NUM_THREADS="1", RECIS_ENGINE_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1",
        f"--master_port={_free_port()}", str(SCRIPTS / script), *arguments,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-4000:]


def test_deepfm_runner_parses_its_command_line_trains_profiles_and_checkpoints(tmp_path):
    rng = np.random.default_rng(3)
    data = write_orc(tmp_path / "data", [deepfm_table(960, rng) for _ in range(2)])
    out: pathlib.Path = tmp_path / "ckpt"
    result = tmp_path / "result.json"
    run_sh(
        "deepfm_runner.py",
        [
            f"--data_paths={data}/", "--batch_size=64", "--thread_num=1", "--prefetch=1",
            "--drop_remainder=true", "--gradient_accumulation_steps=2", f"--output_dir={out}",
            "--log_steps=10", "--save_steps=20", f"--result={result}",
        ],
    )  # fmt: skip
    record = json.loads(result.read_text())
    assert record["dataset"] == {
        "data_paths": f"{data}/",
        "batch_size": 64,
        "thread_num": 1,
        "prefetch": 1,
        "drop_remainder": True,
    }
    config = record["train_config"]
    assert (config["gradient_accumulation_steps"], config["save_steps"]) == (2, 20)
    assert (config["log_steps"], config["output_dir"]) == (10, str(out))
    assert record["lr"] == {"dense_lr": 0.01, "sparse_lr": 0.02}
    losses = np.array(record["losses"])
    assert record["global_step"] == len(losses) == 30  # 1920 rows in batches of 64
    assert losses[-5:].mean() < 0.9 * losses[:5].mean()
    assert (out / "checkpoint").read_text().split() == ["ckpt_20", "ckpt_30"]
    # the profiler starts at step 10: with wait=1 and warmup=1, its third step is recorded
    assert [p.name for p in out.glob("*timeline*")] == ["local-0-timeline-3.json"]


def test_seq2seq_runner_hashes_string_sequences_in_the_reader_and_learns(tmp_path):
    rng = np.random.default_rng(4)
    data = write_orc(tmp_path / "data", [sequence_table(320, rng)])
    out, result = tmp_path / "ckpt", tmp_path / "result.json"
    run_sh(
        "seq2seq_runner.py",
        [
            f"--data_paths={data}/", "--batch_size=16", "--thread_num=1", "--prefetch=1",
            "--drop_remainder=true", f"--output_dir={out}", "--log_steps=10",
            "--save_steps=2000", "--hidden_size=32", f"--result={result}",
        ],
    )  # fmt: skip
    record = json.loads(result.read_text())
    losses = np.array(record["losses"])
    assert record["global_step"] == len(losses) == 20
    assert record["emb_shape"] == [16, 8, 32]  # 8 positions, two 16-wide embeddings
    assert np.isfinite(losses).all()
    assert losses[-5:].mean() < 0.9 * losses[:5].mean()
    assert (out / "checkpoint").read_text().split() == ["ckpt_20"]
