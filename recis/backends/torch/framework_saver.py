"""RecIS's run-level ``Saver`` and ``CheckpointManager(saver, save_interval)``, over our
:class:`~recis.backends.torch.checkpoint.CheckpointManager` and its file format.

A RecIS script builds ``Saver(model, sparse_optim, output_dir, max_keep, concurrency)``, registers
objects and datasets on it, and either calls ``saver.save("ckpt_<step>")``/``saver.load()`` or
hands it to ``CheckpointManager(saver=saver, save_interval=n)``, whose ``step()`` saves every
``n`` steps and ``restore()`` returns the restored global step. Both write ``<output_dir>/
ckpt_<step>/`` and list it in ``<output_dir>/checkpoint``, as RecIS does; the checkpoint inside is
ours (JSON and safetensors, atomic, nothing pickled).

Where it differs from RecIS: checkpoint ids are ``ckpt_<step>`` (the step becomes the saved global
step); ``restore()`` finds the newest intact checkpoint, passing over damaged ones; registered
objects without ``state_dict`` are kept as their value (tensors are copied back in place).

>>> import tempfile, torch
>>> from recis.framework.checkpoint_manager import CheckpointManager, Saver
>>> from recis.nn import HashTable
>>> model = torch.nn.ModuleDict({"emb": HashTable([-1, 2], name="item")})
>>> saver = Saver(model, output_dir=tempfile.mkdtemp(), max_keep=2)
>>> manager = CheckpointManager(saver=saver, save_interval=2)
>>> for _ in range(6):
...     _ = manager.step()
>>> manager.directory.names()
['ckpt_4', 'ckpt_6']
>>> again = CheckpointManager(Saver(model, output_dir=saver.output_dir), save_interval=2)
>>> again.restore().item()
6
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from recis.backends.torch.checkpoint import CheckpointManager
from recis.backends.torch.recis_bank import Renames, load_steps, parse_oname, recis_names
from recis.backends.torch.recis_files import RecisFiles
from recis.backends.torch.saver_options import SaverOptions
from recis.checkpoint import Checkpoint, CheckpointDirectory
from recis.framework.model_bank import PARTS

CHECKPOINT_ID = re.compile(r"ckpt_(\d+)")


class Saver:
    """RecIS's run-level saver: what a run saves, and where.

    Args:
        model: the model; its HashTables are saved as sparse tables, the rest as its dense state.
            A :class:`~recis.backends.torch.saver_options.SaverOptions` in its place gives every
            argument (RecIS's later form), and its ``model_bank`` is what :meth:`restore` loads.
        sparse_optim: the sparse optimizer, saved and restored with it.
        output_dir: the run's directory (``ckpt_<step>/`` and the ``checkpoint`` list).
        max_keep: checkpoints kept.
        concurrency: threads writing files.
        allow_pickle: also load checkpoints of older versions (``.pt`` files; trusted only).
    """

    def __init__(
        self,
        model: torch.nn.Module | SaverOptions,
        sparse_optim=None,
        output_dir: str = "./",
        max_keep: int = 1,
        concurrency: int = 4,
        *,
        allow_pickle: bool = False,
    ) -> None:
        model_bank = None
        if isinstance(model, SaverOptions):
            options = model
            if options.params_not_save is not None or options.save_filter_fn is not None:
                raise ValueError(
                    "SaverOptions: params_not_save and save_filter_fn select RecIS's write "
                    "blocks, which this package's checkpoint format does not have"
                )
            model, sparse_optim, model_bank = (
                options.model,
                options.sparse_optim,
                options.model_bank,
            )
            output_dir = "./" if options.output_dir is None else options.output_dir
            max_keep, concurrency = options.max_keep, options.concurrency
        self.model = model
        self.sparse_optim = sparse_optim
        self._output_dir = str(output_dir)
        self._model_bank = list(model_bank or [])
        self.max_keep = max_keep
        self.concurrency = concurrency
        self.allow_pickle = allow_pickle
        self._extra: dict[str, object] = {}
        self.manager = _RecisFilesManager(
            output_dir,
            model,
            sparse_optimizer=sparse_optim,
            save_steps=0,
            max_to_keep=max_keep,
            parallel=concurrency,
            allow_pickle=allow_pickle,
        )

    def register_io_state(self, name: str, obj) -> None:
        """Also save the position of dataset ``obj`` (``state_dict`` or RecIS's
        ``dump_io_state``/``load_io_state``)."""
        self.manager.register_io_state(name, obj if hasattr(obj, "state_dict") else _IOState(obj))

    def register_for_checkpointing(self, name: str, obj) -> None:
        """Also save ``obj``: its ``state_dict`` when it has one, else its value (a tensor is
        restored in place; :meth:`get_extra_data` gives the restored value)."""
        held = obj if hasattr(obj, "state_dict") else _Value(self._extra, name)
        self.manager.register_for_checkpointing(name, held)
        self._extra[name] = obj

    def get_extra_data(self, name: str):
        """The registered object ``name`` (restored value after a load); ``"global_step"``,
        unless registered, is the step counted (a 0-d int64 tensor); None otherwise."""
        if name == "global_step" and name not in self._extra:
            return torch.tensor(self.manager.global_step, dtype=torch.int64)
        return self._extra.get(name)

    @property
    def output_dir(self) -> str:
        """The run's directory; setting it sends later saves elsewhere."""
        return self._output_dir

    @output_dir.setter
    def output_dir(self, value) -> None:
        self._output_dir = str(value)
        self.manager.directory = CheckpointDirectory(self._output_dir, self.max_keep)

    def save(self, ckpt_id: str, shard_id: int = 0, shard_num: int = 1) -> Path:
        """Write ``<output_dir>/<ckpt_id>``, list it and drop the oldest ``ckpt_<step>`` beyond
        ``max_keep``; ``ckpt_<step>`` also sets the saved global step. With several ranks every
        rank calls it together. Returns its path."""
        if (shard_id, shard_num) != self.manager.place():
            rank, world = self.manager.place()
            raise ValueError(
                f"Saver {self.output_dir!r}: shard {shard_id} of {shard_num} does not match this "
                f"process, rank {rank} of {world}"
            )
        match = CHECKPOINT_ID.fullmatch(ckpt_id)
        if match is None:
            return self.manager.save(name=ckpt_id)
        self.manager._global_step = int(match.group(1))
        return self.manager.save()

    def _init_model_bank(self, model_bank=None) -> None:
        """Set the model bank :meth:`restore` loads (None: the options' one)."""
        if model_bank is not None:
            self._model_bank = list(model_bank)

    def restore(self) -> None:
        """Load the model bank's entries in order (RecIS's keys ``path``, ``load`` (parts or
        ``"*"``), ``exclude``; ``is_dynamic``, ``hashtable_clear`` and ``ignore_error`` are
        accepted), or, without one, the newest checkpoint of ``output_dir`` if any."""
        if not self._model_bank:
            self.load()
            return
        for entry in self._model_bank:
            self.load(entry["path"], load_conf=entry, direct_path=True)

    def load(
        self,
        ckpt_path=None,
        ckpt_id: str | None = None,
        load_conf: Mapping | None = None,
        shard_id: int = 0,
        direct_path: bool = False,
    ) -> Path | None:
        """Load a checkpoint: ``ckpt_path`` itself when ``direct_path``, else ``ckpt_id`` (or the
        newest) of run ``ckpt_path`` (default ``output_dir``); None when there is none.

        ``load_conf``: ``{"load": [parts] or ["*"], "exclude": [...], "strict": bool}`` with
        parts among ``sparse``, ``sparse_opt``, ``dense``, ``extra``, ``io_state``; an
        ``exclude`` entry that is a part drops it, any other is a pattern of names to skip.
        """
        conf = load_conf or {}
        strict = bool(conf.get("strict", not conf))
        if direct_path:
            if not ckpt_path:
                return None
            path = Path(ckpt_path)
        elif ckpt_id is None:
            path = CheckpointDirectory(ckpt_path or self.output_dir).latest()
            if path is None:
                return None
        else:
            path = Path(ckpt_path or self.output_dir) / ckpt_id
        checkpoint = Checkpoint(path)
        load, exclude = list(conf.get("load", ["*"])), list(conf.get("exclude", ()))
        by_parts = set(load) <= PARTS | {"*"} and not any("@" in name for name in exclude)
        if by_parts and not conf.get("oname"):
            self.manager.load(checkpoint, *parts_and_patterns(conf), strict)
            return path
        renames = self._renames(checkpoint, conf.get("oname") or [])
        self.manager.renames = renames
        try:
            names = recis_names(checkpoint, self.manager, renames)
            check = not conf.get("ignore_error", False)
            for parts, patterns in load_steps(names, load, exclude, check):
                self.manager.load(checkpoint, parts, patterns, strict)
        finally:
            self.manager.renames = None
        return path

    def _renames(self, checkpoint: Checkpoint, oname: list) -> Renames:
        tables = [c for table in self.manager.engine_tables().values() for c in table.children]
        dense = list(self.manager._dense_state())
        return parse_oname(oname, tables, checkpoint.logical, dense)


class _RecisFilesManager(RecisFiles, CheckpointManager):
    """Our manager, each checkpoint also holding RecIS's pickled files."""


class SaverCheckpointManager(RecisFiles, CheckpointManager):
    """``CheckpointManager(saver, save_interval, save_every_n_windows=None)``: our manager over
    the saver's settings and registrations; :meth:`step` saves every ``save_interval`` steps
    (or, with ``save_every_n_windows``, :meth:`window_step` every that many windows)."""

    def __init__(self, saver: Saver, save_interval: int, save_every_n_windows: int | None = None):
        super().__init__(
            saver.output_dir,
            saver.model,
            sparse_optimizer=saver.sparse_optim,
            save_steps=0 if save_every_n_windows else (save_interval or 0),
            max_to_keep=saver.max_keep,
            parallel=saver.concurrency,
            allow_pickle=saver.allow_pickle,
        )
        self.objects = saver.manager.objects
        self.io_datasets = saver.manager.io_datasets
        self._global_step = saver.manager.global_step
        saver.manager = self
        self.saver = saver
        self._save_interval = save_interval
        self.save_every_n_windows = save_every_n_windows
        self.windows = 0

    @property
    def save_interval(self) -> int:
        return self._save_interval

    def window_step(self) -> Path | None:
        """Count a data window; save every ``save_every_n_windows`` windows."""
        self.windows += 1
        if self.save_every_n_windows and self.windows % self.save_every_n_windows == 0:
            return self.save()
        return None

    def restore(self, global_step: int | None = None) -> torch.Tensor:
        """Load ``ckpt_<global_step>`` (default: the newest intact checkpoint, if any) and return
        the global step, a 0-d int64 tensor, as RecIS does."""
        super().restore(global_step)
        return torch.tensor(self.global_step, dtype=torch.int64)

    def load_model_bank(self, model_bank: Iterable[Mapping] | None) -> None:
        """RecIS's model-bank entries (``exclude`` may name parts; a None path is skipped)."""
        entries = []
        for entry in model_bank or ():
            if entry.get("path") is None:
                continue
            parts, patterns = parts_and_patterns(entry)
            entries.append({**entry, "load": sorted(parts), "exclude": patterns})
        super().load_model_bank(entries)


def parts_and_patterns(conf: Mapping) -> tuple[frozenset[str], list[str]]:
    """The parts RecIS's load configuration asks for, and its name patterns to skip.

    >>> parts, patterns = parts_and_patterns({"load": ["*"], "exclude": ["io_state", "fc.*"]})
    >>> sorted(parts), patterns
    (['dense', 'extra', 'sparse', 'sparse_opt'], ['fc.*'])
    """
    load = set(conf.get("load", ["*"]))
    parts = set(PARTS) if "*" in load else load
    unknown = parts - PARTS
    if unknown:
        raise ValueError(
            f"load configuration: unknown parts {sorted(unknown)}; use {sorted(PARTS)}"
        )
    patterns = []
    for name in conf.get("exclude", ()):
        if name == "*":
            parts = set()
        elif name in PARTS:
            parts.discard(name)
        else:
            patterns.append(name)
    return frozenset(parts), patterns


def is_saver(obj) -> bool:
    """Whether ``obj`` is RecIS's run-level :class:`Saver` (what ``CheckpointManager`` wraps)."""
    return isinstance(obj, Saver)


class _IOState:
    """A RecIS dataset's ``dump_io_state``/``load_io_state`` as ``state_dict``/
    ``load_state_dict``."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def state_dict(self):
        return self.dataset.dump_io_state()

    def load_state_dict(self, state) -> None:
        self.dataset.load_io_state(state)


class _Value:
    """A registered value without ``state_dict``: saved as is; loaded in place for a tensor,
    otherwise replacing the registered value."""

    def __init__(self, values: dict, name: str) -> None:
        self.values, self.name = values, name

    def state_dict(self) -> dict:
        return {"value": self.values[self.name]}

    def recis_value(self):
        """The value as RecIS saves it (not wrapped)."""
        return self.values[self.name]

    def load_state_dict(self, state: dict) -> None:
        held, saved = self.values[self.name], state["value"]
        if isinstance(held, torch.Tensor) and isinstance(saved, torch.Tensor):
            with torch.no_grad():
                held.copy_(saved)
        else:
            self.values[self.name] = saved
