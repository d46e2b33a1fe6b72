"""RecIS's model-bank selections by name: which parts of a checkpoint one entry loads.

RecIS names what a checkpoint holds: ``<table>@id``, ``<table>@embedding`` and the optimizer's
``<table>@<optimizer>_<state>`` (e.g. ``table_1@sparse_adamw_tf_exp_avg``), the sparse
optimizer's own entries (``sparse_adamw_tf_step``...), the dense model's state-dict keys and the
registered run state (``global_step``, ``recis.dense.optim.``...). A model-bank entry's
``load`` and ``exclude`` hold ``fnmatch`` patterns of these names (``"table_1*"``,
``"dense*"``, ``"table_1@*avg*"``; ``"*"`` for all). :func:`load_steps` turns them into our
loads: (parts, names to skip) pairs, one per kind of state, each touching only what was chosen.

>>> names = RecisNames(tables={"t": ["embedding", "exp_avg"]}, dense=["fc.weight"],
...                    extra=["global_step"], optimizer_prefix="sparse_adamw_tf_")
>>> names.table_names("t")
['t@id', 't@embedding', 't@sparse_adamw_tf_exp_avg']
>>> load_steps(names, ["t*"], ["t@*avg*"])
[(frozenset({'sparse'}), [])]
>>> load_steps(names, ["fc*"], [])
[(frozenset({'dense'}), [])]
>>> sorted(load_steps(names, ["*"], ["io_state"])[0][0])
['sparse', 'sparse_opt']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from recis.backends.torch.saver_options import ExtraFields
from recis.backends.torch.serialize.checkpoint_reader import RECIS_STEP_ENTRIES
from recis.backends.torch.slot_group import RECIS_STATE_NAMES
from recis.checkpoint import Checkpoint

OUR_STATE_NAMES = {ours: recis for recis, ours in RECIS_STATE_NAMES.items()}
ROW_FIELDS = ("id", "embedding")
OPTIMIZER_ENTRIES = ("step", "beta1", "beta2")
OPTIMIZER_STATE = "sparse_optimizer"  # our name of the sparse optimizer's state when loading
EXTRA_NAMES = ("global_step", "dense_optimizer", "lr_scheduler", "rng")


@dataclass
class RecisNames:
    """What a checkpoint and a run hold, to be named as RecIS names them.

    Args:
        tables: {logical table: our fields saved}, e.g. ``{"t": ["embedding", "exp_avg"]}``.
        dense: the model's dense state-dict keys.
        extra: the run state's names (registered objects included).
        optimizer_prefix: the sparse optimizer's RecIS prefix (``sparse_adamw_tf_``), or None.
        dense_optimizers: run-state names of dense optimizers: loaded, as in RecIS, with the
            dense parameters (from the entry that gives them) unless excluded.
    """

    tables: dict[str, list[str]]
    dense: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    optimizer_prefix: str | None = None
    dense_optimizers: list[str] = field(default_factory=list)

    def table_names(self, table: str) -> list[str]:
        """RecIS's names of a table's tensors: ids, embedding, then optimizer states."""
        return [f"{table}@{name}" for name in (*ROW_FIELDS, *self._slot_names(table))]

    def _slot_names(self, table: str) -> list[str]:
        if self.optimizer_prefix is None:
            return []
        fields = self.tables[table]
        return [self.optimizer_prefix + OUR_STATE_NAMES[f] for f in fields if f in OUR_STATE_NAMES]

    def optimizer_names(self) -> list[str]:
        prefix = self.optimizer_prefix
        return [] if prefix is None else [prefix + entry for entry in OPTIMIZER_ENTRIES]


def recis_names(checkpoint: Checkpoint, manager, renames: Renames | None = None) -> RecisNames:
    """The names of ``manager``'s run (a torch ``CheckpointManager``): its logical tables with
    the fields ``checkpoint`` holds for them (under ``renames``), dense keys and run state."""
    saved: dict[str, list[str]] = {}
    for name in checkpoint.index["tensors"]:
        table, _, kept = name.partition("/")
        if kept and not kept.startswith("@"):
            saved.setdefault(table, []).append(kept)
    moved = renames.tables if renames is not None else {}
    children = [c for table in manager.engine_tables().values() for c in table.children]
    tables = {child: saved.get(moved.get(child, child), []) for child in children}
    rule = (checkpoint.metadata.get("sparse_optimizer") or {}).get("rule")
    step = RECIS_STEP_ENTRIES.get(rule)
    return RecisNames(
        tables,
        dense=list(manager._dense_state()),
        extra=[*EXTRA_NAMES, *manager.objects],
        optimizer_prefix=step.removesuffix("step") if step else None,
        dense_optimizers=["dense_optimizer", ExtraFields.recis_dense_optim, ExtraFields.prev_optim],
    )


def load_steps(
    names: RecisNames, load: Iterable[str], exclude: Iterable[str], check_names: bool = True
) -> list[tuple[frozenset[str], list[str]]]:
    """Our loads — (parts, names to skip) — for RecIS's ``load`` and ``exclude`` patterns;
    ``check_names``: a name without wildcards that names nothing is an error."""
    load, exclude = list(load), list(exclude)
    if check_names:
        _check_exact_names(names, load)

    def chosen(name: str) -> bool:
        return _matches(name, load) and not _matches(name, exclude)

    steps = []
    tables = sorted(names.tables)
    groups: dict[frozenset[str], list[str]] = {}
    for table in tables:
        groups.setdefault(_table_parts(names, table, chosen), []).append(table)
    optimizer = any(chosen(name) for name in names.optimizer_names())
    for parts, members in sorted(groups.items(), key=lambda item: sorted(item[0])):
        if parts:
            skipped = _exact([t for t in tables if t not in members])
            if "sparse_opt" in parts and not optimizer:
                skipped.append(OPTIMIZER_STATE)
            steps.append((parts, skipped))
    dense = [name for name in names.dense if chosen(name)]
    if dense:
        steps.append((frozenset({"dense"}), _exact([n for n in names.dense if n not in dense])))
    followers = [n for n in names.dense_optimizers if dense and not _matches(n, exclude)]
    extra = [name for name in names.extra if chosen(name) or name in followers]
    if extra:
        steps.append((frozenset({"extra"}), _exact([n for n in names.extra if n not in extra])))
    if chosen("io_state"):
        steps.append((frozenset({"io_state"}), []))
    return steps


def _check_exact_names(names: RecisNames, load: list[str]) -> None:
    """A name without wildcards must name something (as RecIS: a pattern may match nothing)."""
    every = [n for t in names.tables for n in names.table_names(t)]
    every += [*names.optimizer_names(), *names.dense, *names.extra, "io_state"]
    for name in load:
        if not any(c in name for c in "*?[") and name not in every:
            raise ValueError(f"model bank: {name!r} names nothing in the checkpoint or the model")


def _table_parts(names: RecisNames, table: str, chosen) -> frozenset[str]:
    """The parts of ``table`` chosen: ``sparse`` (ids and embedding), ``sparse_opt`` (slots)."""
    table_names = names.table_names(table)
    rows = any(chosen(name) for name in table_names[: len(ROW_FIELDS)])
    slots = any(chosen(name) for name in table_names[len(ROW_FIELDS) :])
    return frozenset({"sparse"} if rows else ()) | frozenset({"sparse_opt"} if slots else ())


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def _exact(names: Iterable[str]) -> list[str]:
    """``fnmatch`` patterns matching exactly these names."""
    return [name.replace("[", "[[]").replace("*", "[*]").replace("?", "[?]") for name in names]


@dataclass
class Renames:
    """Where a model-bank entry's ``oname`` rules load things from: {our table: checkpoint
    table}, {our dense key: checkpoint key}."""

    tables: dict[str, str] = field(default_factory=dict)
    dense: dict[str, str] = field(default_factory=dict)


def parse_oname(
    rules: Iterable[Mapping],
    tables: Iterable[str],
    saved_tables: Iterable[str],
    dense: Iterable[str],
) -> Renames:
    """RecIS's ``oname`` rules — ``{pattern of our names: pattern of the checkpoint's}``, each
    ``*`` of the first standing for the text the same ``*`` of the second gets — as renames.
    A rule naming any of a table's tensors (``"t@id"``, ``"t*"``) moves the whole table.

    >>> renames = parse_oname([{"new_*": "old_*"}], ["new_a"], ["old_a"], ["new_b.weight"])
    >>> renames.tables, renames.dense
    ({'new_a': 'old_a'}, {'new_b.weight': 'old_b.weight'})
    """
    rules, saved_tables = [dict(rule) for rule in rules], set(saved_tables)
    renames = Renames()
    for table in tables:
        for rule in rules:
            ((ours, theirs),) = rule.items()
            names = [f"{table}@{name}" for name in ROW_FIELDS]
            if any(fnmatchcase(name, ours) for name in names):
                source = table.replace(_table_stem(ours), _table_stem(theirs), 1)
                if source in saved_tables:
                    renames.tables[table] = source
                    break
    for key in dense:
        for rule in rules:
            ((ours, theirs),) = rule.items()
            if "@" not in ours and fnmatchcase(key, ours):
                renames.dense[key] = _substitute(key, ours, theirs)
                break
    return renames


def _table_stem(pattern: str) -> str:
    return pattern.split("@")[0].rsplit("*", 1)[0]


def _substitute(name: str, pattern: str, replacement: str) -> str:
    """``replacement`` with each ``*`` replaced by what the same ``*`` of ``pattern`` matched
    in ``name``."""
    regex = "".join(
        "(.*)" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern)
    )
    match = re.fullmatch(regex, name)
    result = replacement
    for group in match.groups() if match else ():
        result = result.replace("*", group, 1)
    return result
