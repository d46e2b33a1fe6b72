"""Named optimizers: state saved by parameter name and loaded into changed models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from recis.optim.named_optimizer import NamedAdamW, NamedSGD, wrapped_named_optimizer


def _step(model, optimizer, seed=0):
    torch.manual_seed(seed)
    optimizer.zero_grad()
    model(torch.randn(4, 3)).pow(2).sum().backward()
    optimizer.step()


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 2)
        self.b = nn.Linear(2, 1)

    def forward(self, x):
        return self.b(self.a(x))


class Reordered(Small):
    def __init__(self):
        super().__init__()
        self.extra = nn.Linear(1, 1)
        del self.a
        self.b = nn.Linear(2, 1)
        self.a = nn.Linear(3, 2)  # registered after b: another position

    def forward(self, x):
        return self.extra(super().forward(x))


def test_state_is_keyed_by_name_and_follows_parameters_that_moved():
    model = Small()
    optimizer = NamedAdamW(model.named_parameters(), lr=0.01)
    _step(model, optimizer)
    saved = optimizer.state_dict()
    assert set(saved["state"]) == {"a.weight", "a.bias", "b.weight", "b.bias"}
    other = Reordered()
    other_optimizer = NamedAdamW(other.named_parameters(), lr=0.5)
    other_optimizer.load_state_dict(saved)
    loaded = other_optimizer.state_dict()
    for name, state in saved["state"].items():
        assert torch.equal(loaded["state"][name]["exp_avg"], state["exp_avg"])
    assert "extra.weight" not in loaded["state"]
    assert loaded["param_groups"][0]["lr"] == 0.01  # the saved group's hyperparameters


def test_plain_optimizer_state_loads_by_param_names_or_by_position():
    model = Small()
    plain = torch.optim.SGD(model.named_parameters(), lr=0.1, momentum=0.9)
    _step(model, plain)
    named = NamedSGD(Small().named_parameters(), lr=0.1, momentum=0.9)
    named.load_state_dict(plain.state_dict())
    buffers = named.state_dict()["state"]
    assert torch.equal(
        buffers["b.bias"]["momentum_buffer"], plain.state[model.b.bias]["momentum_buffer"]
    )
    unnamed = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _step(model, unnamed)
    named.load_state_dict(unnamed.state_dict())
    assert torch.equal(
        named.state_dict()["state"]["a.weight"]["momentum_buffer"],
        unnamed.state[model.a.weight]["momentum_buffer"],
    )


def test_load_map_valid_names_and_strictness():
    model = Small()
    optimizer = NamedSGD(model.named_parameters(), lr=0.1, momentum=0.9)
    _step(model, optimizer)
    saved = optimizer.state_dict()
    target = NamedSGD(Small().named_parameters(), lr=0.1, momentum=0.9)
    target.load_state_dict(saved, valid_names={"a.bias"}, load_map={"a.bias": "b.bias"})
    state = target.state_dict()["state"]
    assert set(state) == {"a.bias"}
    assert torch.equal(
        state["a.bias"]["momentum_buffer"], saved["state"]["b.bias"]["momentum_buffer"]
    )
    with pytest.raises(RuntimeError, match="'nope' has no state"):
        target.load_state_dict(saved, load_map={"a.bias": "nope"})
    target.load_state_dict(saved, load_map={"a.bias": "nope"}, strict=False)


def test_groups_and_wrapping_any_optimizer():
    model = Small()
    cls = wrapped_named_optimizer(torch.optim.Adagrad)
    named = list(model.named_parameters())
    optimizer = cls([{"params": named[:2], "lr": 0.5}, {"params": named[2:]}], lr=0.1)
    assert cls.__name__ == "NamedAdagrad" and optimizer.named_optimizer
    assert [g["lr"] for g in optimizer.param_groups] == [0.5, 0.1]
    assert optimizer.index_param_map == {0: "a.weight", 1: "a.bias", 2: "b.weight", 3: "b.bias"}
    with pytest.raises(RuntimeError, match="given twice"):
        NamedSGD([("w", model.a.weight), ("w", model.b.weight)], lr=0.1)
