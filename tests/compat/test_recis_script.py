"""A RecIS training script runs unchanged: launched as ``torchrun`` would, one process, CPU."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys

from recis.tools.synthetic import write_dataset

SCRIPT = pathlib.Path(__file__).with_name("recis_style_script.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_recis_quickstart_script_trains_and_checkpoints(tmp_path):
    data = tmp_path / "data"
    write_dataset(str(data), rows=4000, files=2, stripe_size=4096)
    env = {
        **os.environ,
        "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
    }  # fmt: skip
    command = [sys.executable, str(SCRIPT), str(data), str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "finished at step 12" in done.stdout
    assert (tmp_path / "out" / "checkpoint").read_text().split() == ["ckpt_6", "ckpt_12"]
