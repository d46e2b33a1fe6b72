"""The Trainer passes RecIS's DDP options to ``DistributedDataParallel``."""

from __future__ import annotations

import pytest
import torch

from recis.backends.torch import trainer as trainer_module
from recis.framework.trainer import Trainer, TrainingArguments


@pytest.fixture
def ddp_calls(monkeypatch):
    calls = []

    def fake_ddp(model, **options):
        calls.append(options)
        return model

    monkeypatch.setattr(trainer_module, "default_communicator", lambda: object())
    monkeypatch.setattr(trainer_module.nn.parallel, "DistributedDataParallel", fake_ddp)
    return calls


def _args(tmp_path):
    return TrainingArguments(output_dir=str(tmp_path), save_steps=0)


def test_recis_defaults(ddp_calls, tmp_path):
    Trainer(torch.nn.Linear(2, 1), _args(tmp_path))
    assert ddp_calls == [
        {
            "find_unused_parameters": True,
            "broadcast_buffers": True,
            "gradient_as_bucket_view": False,
            "bucket_cap_mb": 25,
            "static_graph": False,
        }
    ]


def test_explicit_options_and_positional_slots(ddp_calls, tmp_path):
    model, args = torch.nn.Linear(2, 1), _args(tmp_path)
    Trainer(model, args, None, None, None, (None, None), None, False, False, False)
    Trainer(model, args, ddp_gradient_as_bucket_view=True, ddp_bucket_cap_mb=4,
            ddp_static_graph=True)  # fmt: skip
    assert ddp_calls[0]["find_unused_parameters"] is False
    assert ddp_calls[0]["broadcast_buffers"] is False
    assert ddp_calls[1] == {
        "find_unused_parameters": True,
        "broadcast_buffers": True,
        "gradient_as_bucket_view": True,
        "bucket_cap_mb": 4,
        "static_graph": True,
    }


def test_a_saver_of_ones_own_is_refused(tmp_path):
    with pytest.raises(NotImplementedError, match="CheckpointManager"):
        Trainer(torch.nn.Linear(2, 1), _args(tmp_path), saver=object())
