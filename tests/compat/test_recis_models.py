"""Models written as RecIS's examples write them train under ``torchrun`` on two CPU ranks.

Each script in ``scripts/`` imports only RecIS's module paths and is launched with
``torchrun --nproc_per_node 2``: one epoch of 20 steps, then a new model and trainer that resume
from the checkpoint the first one wrote and train a second epoch.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.orc as orc

SCRIPTS = pathlib.Path(__file__).with_name("scripts")
ROOT = pathlib.Path(__file__).resolve().parents[2]
RANKS = 2
STEPS_PER_EPOCH = 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(script: str, data: pathlib.Path, out: pathlib.Path) -> list[list[dict]]:
    """Run ``scripts/<script>`` with ``torchrun --nproc_per_node 2``; each rank's two runs."""
    env = dict(os.environ, OMP_NUM_THREADS="1", RECIS_ENGINE_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    command = [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={RANKS}",
        f"--master_port={_free_port()}", str(SCRIPTS / script), str(data), str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads((out / f"result-{rank}.json").read_text()) for rank in range(RANKS)]


def write_orc(directory: pathlib.Path, tables: list[pa.Table]) -> pathlib.Path:
    directory.mkdir(parents=True)
    for index, table in enumerate(tables):
        orc.write_table(table, str(directory / f"part-{index}.orc"))
    return directory


def ids(values) -> pa.Array:
    return pa.array([[int(v)] for v in values], pa.list_(pa.int64()))


def floats(values) -> pa.Array:
    return pa.array([[float(v)] for v in values], pa.list_(pa.float64()))


def deepfm_table(rows: int, rng) -> pa.Table:
    """The label is the parity of ``c1``; ``c2``..``c4`` and the numeric columns are noise."""
    c1 = rng.integers(0, 40, rows)
    columns = {"label": floats(c1 % 2)}
    for name in ("i1", "i2", "i3"):
        columns[name] = floats(rng.random(rows))
    columns["c1"] = ids(c1)
    for name in ("c2", "c3", "c4"):
        columns[name] = ids(rng.integers(0, 1000, rows))
    return pa.table(columns)


def sequence_table(rows: int, rng) -> pa.Table:
    """2 to 12 id lists of 1 to 3 ids per sample, the longer ones truncated to 8 lists; every
    id of a sample comes from one half of the vocabulary and the label says which."""
    label = rng.integers(0, 2, rows)
    lengths = rng.integers(2, 13, rows)

    def sequences(vocabulary: int) -> pa.Array:
        half = vocabulary // 2
        values = [
            [(rng.integers(0, half, rng.integers(1, 4)) + half * y).tolist() for _ in range(n)]
            for y, n in zip(label, lengths, strict=True)
        ]
        return pa.array(values, pa.list_(pa.list_(pa.int64())))

    return pa.table({"label": floats(label), "item_seq": sequences(200), "cate_seq": sequences(20)})


def deepctr_table(rows: int, rng) -> pa.Table:
    """Each sample's 1 to 7 string tokens come from the group its label names; the other
    columns are noise."""
    label = rng.integers(0, 2, rows)
    tokens = [[f"{'ab'[y]}{t}" for t in rng.integers(0, 20, rng.integers(1, 8))] for y in label]
    return pa.table(
        {
            "label": floats(label),
            "dense": floats(rng.random(rows)),
            "sparse1": ids(rng.integers(0, 50, rows)),
            "sparse2": ids(rng.integers(0, 500, rows)),
            "tokens": pa.array(tokens, pa.list_(pa.string())),
        }
    )


def check_training(results: list[list[dict]]) -> None:
    """On every rank: the loss fell in the first epoch; the new model resumed from the trained
    one (its first losses already low) and ran the second epoch; checkpoints were written."""
    for first, second in results:
        losses, resumed = np.array(first["losses"]), np.array(second["losses"])
        assert first["global_step"] == STEPS_PER_EPOCH and len(losses) == STEPS_PER_EPOCH
        assert second["global_step"] == 2 * STEPS_PER_EPOCH and len(resumed) == STEPS_PER_EPOCH
        assert np.isfinite(losses).all() and np.isfinite(resumed).all()
        assert losses[-5:].mean() < 0.9 * losses[:5].mean()
        assert resumed[:5].mean() < 0.9 * losses[:5].mean()
        assert first["checkpoints"] == ["ckpt_15", "ckpt_20"]
        assert second["checkpoints"][-1] == "ckpt_40"


def test_deepfm_trains_resumes_and_checkpoints(tmp_path):
    rng = np.random.default_rng(0)
    data = write_orc(tmp_path / "data", [deepfm_table(1400, rng) for _ in range(2)])
    check_training(torchrun("deepfm.py", data, tmp_path / "out"))


def test_sequence_model_on_3d_ragged_inputs_trains_resumes_and_checkpoints(tmp_path):
    rng = np.random.default_rng(1)
    data = write_orc(tmp_path / "data", [sequence_table(1400, rng) for _ in range(2)])
    results = torchrun("sequence.py", data, tmp_path / "out")
    check_training(results)
    assert [run["seq_shape"] for runs in results for run in runs] == [[64, 8, 24]] * 2 * RANKS


def test_deepctr_with_cross_farm_hash_bucketize_and_tile_trains_and_resumes(tmp_path):
    rng = np.random.default_rng(2)
    data = write_orc(tmp_path / "data", [deepctr_table(1400, rng) for _ in range(2)])
    check_training(torchrun("deepctr.py", data, tmp_path / "out"))
