"""Optimizers whose state is keyed by parameter name (RecIS's ``Named*`` optimizers).

``wrapped_named_optimizer(cls)`` subclasses a ``torch.optim.Optimizer`` so that it takes
``model.named_parameters()`` (or groups whose ``"params"`` are ``(name, parameter)`` pairs),
saves its state under the parameters' names, and loads state by name: from a named state, from
a plain optimizer's state (by its ``param_names`` when it has them, else by position), with an
optional ``load_map`` ``{model name: checkpoint name}``. A model that gained, lost or reordered
parameters keeps the state of the parameters it still has.

>>> import torch
>>> model = torch.nn.Linear(2, 1)
>>> opt = NamedAdamW(model.named_parameters(), lr=0.1)
>>> model(torch.ones(1, 2)).sum().backward()
>>> opt.step()
>>> sorted(opt.state_dict()["state"])
['bias', 'weight']
>>> opt.state_dict()["param_groups"][0]["params"]
['weight', 'bias']
"""

from __future__ import annotations

import copy

import torch

from recis.backends.torch.optim.adamw_tf import AdamWTF
from recis.utils.logger import Logger

logger = Logger(__name__)


def wrapped_named_optimizer(optimizer_class: type[torch.optim.Optimizer]) -> type:
    """A subclass of ``optimizer_class`` with name-keyed state (see the module docstring)."""

    class NamedOptimizer(optimizer_class):
        def __init__(self, named_params, *args, **kwargs) -> None:
            self.named_optimizer = True
            self.param_index_map: dict[str, int] = {}
            self.index_param_map: dict[int, str] = {}
            super().__init__(_named_groups(named_params), *args, **kwargs)

        def add_param_group(self, param_group: dict) -> None:
            group = dict(param_group)
            pairs = group.pop("params")
            pairs = [pairs] if isinstance(pairs, tuple) else list(pairs)
            for name, _ in pairs:
                if name in self.param_index_map:
                    raise RuntimeError(f"{type(self).__name__}: parameter {name!r} given twice")
                self.index_param_map[len(self.param_index_map)] = name
                self.param_index_map[name] = len(self.param_index_map)
            group["params"] = [p for _, p in pairs]
            group["param_names"] = [n for n, _ in pairs]
            super().add_param_group(group)

        def state_dict(self, origin: bool = False) -> dict:
            """The state keyed by parameter name (``origin=True``: torch's index-keyed form)."""
            state = super().state_dict()
            if origin:
                return state
            names = self.index_param_map
            return {
                "state": {names[i]: s for i, s in state["state"].items()},
                "param_groups": [
                    {**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]
                ],
            }

        def load_state_dict(self, state_dict, valid_names=None, load_map=None, strict=True):
            """Load a named or plain optimizer state; ``valid_names`` limits the parameters whose
            state is taken, ``load_map`` maps model names to checkpoint names."""
            saved = _as_named(copy.deepcopy(state_dict), self.index_param_map)
            if load_map:
                _rename(saved, load_map, set(self.param_index_map), strict)
            wanted = set(self.param_index_map) if valid_names is None else set(valid_names)
            for name in sorted(set(self.param_index_map) - set(saved["state"])):
                logger.warning(f"optimizer state: no saved state for {name!r}; it starts afresh")
            super().load_state_dict(self._indexed(saved, wanted))

        def _indexed(self, saved: dict, wanted: set) -> dict:
            """``saved`` in torch's form for this optimizer: our indices, our groups."""
            current = super().state_dict()
            state = {
                self.param_index_map[n]: s
                for n, s in saved["state"].items()
                if n in wanted and n in self.param_index_map
            }
            by_name = {n: g for g in saved["param_groups"] for n in g["params"]}
            groups = []
            for group in current["param_groups"]:
                match = next((by_name[n] for n in group["param_names"] if n in by_name), None)
                hyper = {
                    k: v for k, v in (match or group).items() if k not in ("params", "param_names")
                }
                groups.append(
                    {**hyper, "params": group["params"], "param_names": group["param_names"]}
                )
            return {"state": {**current["state"], **state}, "param_groups": groups}

    NamedOptimizer.__name__ = NamedOptimizer.__qualname__ = f"Named{optimizer_class.__name__}"
    return NamedOptimizer


def _named_groups(named_params) -> list[dict]:
    """``named_parameters()``, one group dict or a list of group dicts, as a list of groups."""
    if isinstance(named_params, dict):
        return [named_params]
    items = list(named_params)
    if items and isinstance(items[0], dict):
        return items
    return [{"params": items}]


def _as_named(state: dict, fallback: dict[int, str]) -> dict:
    """A saved optimizer state with parameter names in place of indices."""
    groups = state["param_groups"]
    if not groups or all(isinstance(p, str) for g in groups for p in g["params"]):
        return state
    names = {}
    for group in groups:
        if "param_names" in group:
            names.update(zip(group["params"], group["param_names"], strict=True))
    if not names:
        logger.warning("optimizer state without param_names: matched to parameters by position")
        names = fallback
    for group in groups:
        group["params"] = [names[i] for i in group["params"] if i in names]
    state["state"] = {names[i]: s for i, s in state["state"].items() if i in names}
    return state


def _rename(saved: dict, load_map: dict[str, str], model_names: set, strict: bool) -> None:
    """Give the checkpoint's state of ``load_map[name]`` to the model parameter ``name``."""
    for name, ckpt_name in load_map.items():
        problem = None
        if name not in model_names:
            problem = f"{name!r} is not a parameter of the model"
        elif ckpt_name not in saved["state"]:
            problem = f"{ckpt_name!r} has no state in the checkpoint"
        if problem:
            if strict:
                raise RuntimeError(f"Load optimizer state error: {problem}")
            logger.warning(f"Load optimizer state: {problem}; skipped")
            continue
        saved["state"][name] = saved["state"].pop(ckpt_name)
        for group in saved["param_groups"]:
            group["params"] = [name if p == ckpt_name else p for p in group["params"]]


NamedAdagrad = wrapped_named_optimizer(torch.optim.Adagrad)
NamedAdam = wrapped_named_optimizer(torch.optim.Adam)
NamedAdamW = wrapped_named_optimizer(torch.optim.AdamW)
NamedSGD = wrapped_named_optimizer(torch.optim.SGD)
NamedAdamWTF = wrapped_named_optimizer(AdamWTF)
