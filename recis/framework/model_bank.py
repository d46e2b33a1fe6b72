"""Model-bank entries: which checkpoint parts a warm start loads (shared by the front ends).

An entry is ``{"path": ..., "load": [parts] or ["*"], "exclude": [name patterns],
"strict": bool, "cast": bool, "allow_pickle": bool}`` with parts among :data:`PARTS`; ``cast``
converts tables saved in another dtype, ``allow_pickle`` unpickles the ``.pt`` files of
checkpoints of older versions (only for checkpoints from trusted places).

>>> [entry.parts == PARTS for entry in bank_entries([{"path": "run/ckpt_10"}])]
[True]

RecIS's reader of its checkpoints' pickled files, ``load_pt_file``, and the ``torch`` it reads
them with resolve here from the torch backend on first use (this module imports no framework).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_TORCH_NAMES = {
    "load_pt_file": "recis.backends.torch.model_bank_files",
    "torch": "recis.backends.torch.model_bank_files",
}

PARTS = frozenset({"sparse", "sparse_opt", "dense", "extra", "io_state"})
BANK_KEYS = frozenset({"path", "load", "exclude", "strict", "cast", "allow_pickle"})


@dataclass(frozen=True)
class BankEntry:
    """One validated model-bank entry."""

    path: str
    parts: frozenset[str]
    exclude: tuple[str, ...]
    strict: bool
    cast: bool = False
    allow_pickle: bool = False


def bank_entries(model_bank: Iterable[Mapping] | None) -> list[BankEntry]:
    """Validate ``model_bank`` (None: no entry) into :class:`BankEntry` s, in order."""
    entries = []
    for entry in model_bank or ():
        unknown = set(entry) - BANK_KEYS
        if unknown or "path" not in entry:
            raise ValueError(
                f"model bank entry {dict(entry)}: needs 'path', and only {sorted(BANK_KEYS)}"
            )
        parts = _parts(entry.get("load", ["*"]))
        exclude = tuple(entry.get("exclude", ()))
        strict = bool(entry.get("strict", True))
        cast, allow_pickle = bool(entry.get("cast", False)), bool(entry.get("allow_pickle", False))
        entries.append(BankEntry(str(entry["path"]), parts, exclude, strict, cast, allow_pickle))
    return entries


def _parts(load: Iterable[str]) -> frozenset[str]:
    parts = set(load)
    if "*" in parts:
        return PARTS
    unknown = parts - PARTS
    if unknown:
        raise ValueError(f"model bank: unknown parts {sorted(unknown)}; use {sorted(PARTS)} or '*'")
    return frozenset(parts)


def __getattr__(name: str):
    if name not in _TORCH_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_TORCH_NAMES[name]), name)
