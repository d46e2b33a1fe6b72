"""RecIS's entries of a sparse optimizer's state: ``<prefix>step``, ``<prefix>beta1``,
``<prefix>beta2`` (e.g. ``sparse_adamw_tf_step``) for ``SparseAdamW`` and ``SparseAdamWTF``.

RecIS keeps one entry of each name, so with several tables the last one written wins. Here the
plain names hold the state of the table with the most updates, and with several tables each table
also gets its own entries, qualified RecIS-style as ``<table>@<name>`` (``item@sparse_adamw_step``).
Values as RecIS gives them: ``step`` an int64 tensor of shape ``[1]``, ``beta1``/``beta2`` the
float32 powers ``beta**step`` (0-d). A state holding only these entries (RecIS's) loads: each
table takes its qualified ``step``, else the plain one.

>>> import torch
>>> from recis.nn import HashTable
>>> from recis.optim import SparseAdamWTF
>>> table = HashTable([-1, 2], name="t")
>>> optimizer = SparseAdamWTF({"t": table}, beta1=0.5)
>>> table(torch.tensor([1])).sum().backward()
>>> optimizer.step()
>>> state = optimizer.state_dict()
>>> state["sparse_adamw_tf_step"].tolist(), state["sparse_adamw_tf_beta1"].item()
([1], 0.5)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

STEP, BETA1, BETA2 = "step", "beta1", "beta2"


def recis_entries(prefix: str, rule, table_steps: Mapping[str, int]) -> dict[str, torch.Tensor]:
    """RecIS's entries for tables with these update counts ({logical name: steps})."""
    if not table_steps:
        return {}
    entries = _entries(prefix, rule, max(table_steps.values()))
    if len(table_steps) > 1:
        for name, steps in table_steps.items():
            own = _entries(prefix, rule, steps)
            entries |= {qualified(name, key): value for key, value in own.items()}
    return entries


def qualified(table: str, key: str) -> str:
    """The name of ``table``'s own entry ``key``."""
    return f"{table}@{key}"


def recis_steps(prefix: str, state: Mapping, tables) -> dict[str, int]:
    """The update count of each of ``tables`` that ``state``'s RecIS entries give."""
    plain = state.get(prefix + STEP)
    steps = {}
    for name in tables:
        value = state.get(qualified(name, prefix + STEP), plain)
        if value is not None:
            steps[name] = int(torch.as_tensor(value).reshape(-1)[0])
    if not steps:
        raise KeyError(
            f"sparse optimizer state: neither this optimizer's state ('rule', 'tables') nor "
            f"RecIS's {prefix + STEP!r} is in it; keys: {sorted(state)}"
        )
    return steps


def _entries(prefix: str, rule, steps: int) -> dict[str, torch.Tensor]:
    return {
        prefix + STEP: torch.tensor([steps], dtype=torch.int64),
        prefix + BETA1: torch.tensor(rule.beta1**steps, dtype=torch.float32),
        prefix + BETA2: torch.tensor(rule.beta2**steps, dtype=torch.float32),
    }
