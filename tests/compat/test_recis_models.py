"""Models written as RecIS's examples write them train under ``torchrun`` on two CPU ranks.

Each script in ``scripts/`` imports only RecIS's module paths. It is launched twice with
``torchrun --nproc_per_node 2``: one epoch of 20 steps, then a second epoch that resumes from
the checkpoint the first launch wrote.
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


def torchrun(script: str, *args) -> list[dict]:
    """Run ``scripts/<script>`` with ``torchrun --nproc_per_node 2``; each rank's result."""
    env = dict(os.environ, OMP_NUM_THREADS="1", RECIS_ENGINE_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    command = [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={RANKS}",
        f"--master_port={_free_port()}", str(SCRIPTS / script), *map(str, args),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    output_dir, epochs = pathlib.Path(args[1]), args[2]
    return [
        json.loads((output_dir / f"result-{r}-{epochs}.json").read_text()) for r in range(RANKS)
    ]


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


def check_training(first: list[dict], second: list[dict]) -> None:
    """Both launches ran their steps on every rank, the loss fell in the first epoch, and the
    resumed epoch started from the trained model rather than from a new one."""
    for rank_first, rank_second in zip(first, second, strict=True):
        losses = np.array(rank_first["losses"])
        assert rank_first["global_step"] == STEPS_PER_EPOCH
        assert rank_second["global_step"] == 2 * STEPS_PER_EPOCH
        assert len(losses) == STEPS_PER_EPOCH and len(rank_second["losses"]) == STEPS_PER_EPOCH
        assert np.isfinite(losses).all() and np.isfinite(rank_second["losses"]).all()
        assert losses[-5:].mean() < 0.9 * losses[:5].mean()
        assert np.mean(rank_second["losses"][:5]) < 0.9 * losses[:5].mean()


def checkpoints(output_dir: pathlib.Path) -> list[str]:
    return (output_dir / "checkpoint").read_text().split()


def test_deepfm_trains_resumes_and_checkpoints(tmp_path):
    rng = np.random.default_rng(0)
    data = write_orc(tmp_path / "data", [deepfm_table(1400, rng) for _ in range(2)])
    out = tmp_path / "out"
    first = torchrun("deepfm.py", data, out, 1)
    assert checkpoints(out) == ["ckpt_15", "ckpt_20"]
    second = torchrun("deepfm.py", data, out, 2)
    assert checkpoints(out)[-1] == "ckpt_40"
    check_training(first, second)


def test_sequence_model_on_3d_ragged_inputs_trains_resumes_and_checkpoints(tmp_path):
    rng = np.random.default_rng(1)
    data = write_orc(tmp_path / "data", [sequence_table(1400, rng) for _ in range(2)])
    out = tmp_path / "out"
    first = torchrun("sequence.py", data, out, 1)
    assert checkpoints(out) == ["ckpt_15", "ckpt_20"]
    assert [r["seq_shape"] for r in first] == [[64, 8, 24]] * RANKS
    second = torchrun("sequence.py", data, out, 2)
    assert checkpoints(out)[-1] == "ckpt_40"
    check_training(first, second)


def test_deepctr_with_cross_farm_hash_bucketize_and_tile_trains_and_resumes(tmp_path):
    rng = np.random.default_rng(2)
    data = write_orc(tmp_path / "data", [deepctr_table(1400, rng) for _ in range(2)])
    out = tmp_path / "out"
    first = torchrun("deepctr.py", data, out, 1)
    assert checkpoints(out) == ["ckpt_15", "ckpt_20"]
    second = torchrun("deepctr.py", data, out, 2)
    assert checkpoints(out)[-1] == "ckpt_40"
    check_training(first, second)
