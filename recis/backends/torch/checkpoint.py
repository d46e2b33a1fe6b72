"""``CheckpointManager``: periodic, atomic, exactly resumable checkpoints of a run (RecIS API).

Layout of ``output_dir``::

    checkpoint          names of the kept checkpoints, newest last (rewritten atomically)
    ckpt_<step>/        one checkpoint (format: :mod:`recis.checkpoint`)
        index.json, sparse-*.safetensors   hash tables: rows, optimizer slots, policy state
        model.json, model.safetensors      the dense state dict (hash tables excluded)
        extra.json, extra.safetensors      global step; dense optimizer, LR scheduler and sparse
                        optimizer state; RNG states (``random``, NumPy, torch CPU and CUDA);
                        dataset (IO) states; registered objects' states; the ``extra``
                        callable's dict

Non-tensor state is JSON, tensors safetensors
(:mod:`~recis.checkpoint.state_tree`): loading a checkpoint never unpickles anything.
Checkpoints of older versions hold ``model.pt``, ``extra.pt`` and ``rank-r<rank>.pt`` instead;
they load only with ``allow_pickle=True`` (otherwise :class:`CheckpointError` names the file and
the option), since unpickling a crafted file runs code.

The data positions (dataset states that JSON can hold, as RecIS datasets' are) are also kept in
the index metadata (``io_state``), where the JAX trainer reads them; a checkpoint without
``extra`` state (written by the JAX trainer) gives its data positions from there.

**Several ranks.** Under ``torch.distributed`` with several ranks the hash tables are sharded
(:class:`~recis.nn.HashTable`), and every rank saves and restores together (the ``communicator``,
by default :func:`~recis.backends.torch.default_communicator`): each writes its shard of the
tables, ``rank-state-r<rank>.json``/``.safetensors`` (its RNG states and data positions) and
``rank-r<rank>.json`` (the data positions JSON can hold, for the JAX trainer); rank 0 writes the
model and ``extra`` state (the sparse optimizer's counters being the largest over the ranks), the
list and the rotation. Each rank restores the ids it owns, whatever the number of ranks that
saved; the RNG states and data positions of its own rank when as many ranks saved, else rank 0's
RNG states and no data position (an error when datasets are registered, unless not ``strict``).

A checkpoint is written to a temporary directory, fsynced and renamed, then listed; a kill at any
moment leaves the previous checkpoints listed and loadable. A checkpoint is never written from
weights that hold NaN or infinity.

**Model bank** (warm start): :meth:`CheckpointManager.load_model_bank` takes entries
``{"path": ..., "load": [...], "exclude": [...], "strict": True}``. ``path`` is a checkpoint or a
run directory (its newest checkpoint). ``load`` picks parts (default ``["*"]``, all):
``"sparse"`` (hash-table ids, embeddings, policy state), ``"sparse_opt"`` (optimizer slots and
the sparse optimizer's state), ``"dense"`` (the model's dense state), ``"extra"`` (global step,
dense optimizer, LR scheduler, RNG, registered objects) and ``"io_state"``. ``exclude`` holds
``fnmatch`` patterns of names to skip: logical table names, dense state-dict keys, and the
names in the ``extra`` state (``global_step``, ``dense_optimizer``, ``lr_scheduler``,
``sparse_optimizer``, ``rng``, registered names). ``strict`` makes anything missing on either
side an error, ``cast`` allows tables saved in another dtype, ``allow_pickle`` reads the ``.pt``
files of older versions.

>>> import tempfile, torch
>>> from recis.nn import HashTable
>>> model = torch.nn.ModuleDict({"emb": HashTable([-1, 2], name="item"),
...                              "fc": torch.nn.Linear(2, 1)})
>>> manager = CheckpointManager(tempfile.mkdtemp(), model, save_steps=2)
>>> _ = model["emb"](torch.tensor([1, 2]))
>>> for _ in range(4):
...     _ = manager.step()
>>> manager.directory.names()
['ckpt_2', 'ckpt_4']
>>> again = CheckpointManager(manager.directory.root, model)
>>> again.restore(), again.global_step
(True, 4)
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import ClassVar

import numpy as np
import torch

from recis.backends.torch.communicator import default_communicator
from recis.backends.torch.hashtable import HashTable, filter_out_sparse_param
from recis.backends.torch.serialize.tensors import TENSORS
from recis.checkpoint import (
    EMBEDDING,
    MAX_FILE_BYTES,
    OPTIMIZER,
    Checkpoint,
    CheckpointError,
    CheckpointWriter,
    load_tables,
    plan_load,
    rank_name,
    read_rank_json,
    write_rank_json,
)
from recis.checkpoint.state_tree import read_state, state_file_names, write_state
from recis.checkpoint.writer import check_finite
from recis.core.table import EmbeddingTable
from recis.distributed.communicator import Communicator
from recis.framework.checkpoint_base import (
    SPARSE_OPTIMIZER,
    CheckpointManagerBase,
    saved_sparse_optimizer,
    with_counters_moved,
)

MODEL, EXTRA, RANK_STATE = "model", "extra", "rank-state"  # state trees (JSON + safetensors)
MODEL_FILE = "model.pt"  # files of checkpoints of older versions, read with allow_pickle=True
EXTRA_FILE = "extra.pt"
RANK_FILE = "rank.pt"


class CheckpointManager(CheckpointManagerBase):
    """Saves a run every ``save_steps`` steps into ``output_dir``, keeps ``max_to_keep``
    checkpoints, and restores the newest one (see the module docstring).

    Args:
        output_dir: the run's directory.
        model: the model; its HashTables are saved as sparse tables, the rest as ``model.pt``.
        dense_optimizer, lr_scheduler, sparse_optimizer: saved and restored with it.
        dataset: the training dataset, whose ``state_dict()`` is saved (name ``"dataset"``).
        save_steps: :meth:`step` saves when the global step is a multiple (≤ 0: never).
        max_to_keep: checkpoints kept (None: all).
        extra: called at each save for a dict of JSON-able values and tensors, given back as
            :attr:`loaded_extra` after a restore.
        parallel: threads writing files.
        max_file_bytes: size limit of one sparse file.
        communicator: the ranks saving and restoring together (default: that of
            ``torch.distributed``'s world when it has several ranks, read at each use).
        allow_pickle: also load checkpoints of older versions, whose ``.pt`` files are
            unpickled (unpickling can run code: only for checkpoints from trusted places).

    Built as RecIS's ``CheckpointManager(saver, save_interval)`` around a run-level ``Saver``
    it is a :class:`~recis.backends.torch.framework_saver.SaverCheckpointManager` (RecIS's
    methods, :meth:`restore` returning the step). Built from the objects to save (as the
    ``Trainer`` does), :meth:`restore` returns whether a checkpoint was found (the step is
    :attr:`global_step`).
    """

    def __new__(cls, *args, **kwargs):
        from recis.backends.torch.framework_saver import SaverCheckpointManager, is_saver

        first = args[0] if args else kwargs.get("saver")
        if cls is CheckpointManager and is_saver(first):
            return super().__new__(SaverCheckpointManager)
        return super().__new__(cls)

    def __init__(
        self,
        output_dir,
        model: torch.nn.Module | None = None,
        dense_optimizer: torch.optim.Optimizer | None = None,
        lr_scheduler=None,
        sparse_optimizer=None,
        dataset=None,
        save_steps: int = 1000,
        max_to_keep: int | None = 5,
        extra: Callable[[], dict] | None = None,
        parallel: int = 8,
        max_file_bytes: int = MAX_FILE_BYTES,
        communicator: Communicator | None = None,
        allow_pickle: bool = False,
    ) -> None:
        super().__init__(
            output_dir, dataset, save_steps, max_to_keep, parallel, max_file_bytes, communicator
        )
        self.allow_pickle = allow_pickle
        self.model = model
        self.dense_optimizer = dense_optimizer
        self.lr_scheduler = lr_scheduler
        self.sparse_optimizer = sparse_optimizer
        self.extra = extra
        self.loaded_extra: dict | None = None

    # -- saving ----------------------------------------------------------------------------------

    def _hashtables(self) -> dict[str, HashTable]:
        return filter_out_sparse_param(self.model) if self.model is not None else {}

    def communicator(self) -> Communicator | None:
        return self._communicator if self._communicator is not None else default_communicator()

    def engine_tables(self) -> dict[str, EmbeddingTable]:
        return {name: table.table for name, table in self._hashtables().items()}

    def metadata(self) -> dict:
        # the one collective before the commit comes first: a rank failing later still meets
        # the others at the commit, which then fails on every rank
        core = None if self.sparse_optimizer is None else self.sparse_optimizer.core
        return {
            "io_state": _portable(self.io_states()),
            SPARSE_OPTIMIZER: self.sparse_optimizer_metadata(core),
        }

    def write(self, tables: dict[str, EmbeddingTable], writer: CheckpointWriter) -> None:
        writer.write_tables(tables)
        dense = self._dense_state()
        for name, tensor in dense.items():
            check_finite(name, TENSORS.to_array(tensor))
        write_state(writer, MODEL, dense, TENSORS)
        write_state(writer, EXTRA, self._extra_state(), TENSORS)
        if writer.world_size > 1:
            write_state(writer, RANK_STATE, self._rank_state(), TENSORS, own=True)
            write_rank_json(writer, {"io_state": _portable(self.io_states())})

    def _dense_state(self) -> dict[str, torch.Tensor]:
        if self.model is None:
            return {}
        tables = tuple(f"{n}." for n, m in self.model.named_modules() if isinstance(m, HashTable))
        return {k: v for k, v in self.model.state_dict().items() if not k.startswith(tables)}

    def _extra_state(self) -> dict:
        sparse = self.sparse_optimizer
        return {
            "global_step": self._global_step,
            "dense_optimizer": _state_of(self.dense_optimizer),
            "lr_scheduler": _state_of(self.lr_scheduler),
            "sparse_param_groups": None if sparse is None else sparse.state_dict()["param_groups"],
            "objects": {name: obj.state_dict() for name, obj in self.objects.items()},
            "extra": self.extra() if self.extra is not None else None,
        } | self._rank_state()

    def _rank_state(self) -> dict:
        """What differs by rank: RNG states and data positions."""
        return {"rng": _rng_state(), "io_state": self.io_states()}

    # -- loading ---------------------------------------------------------------------------------

    def load(
        self,
        checkpoint: Checkpoint,
        parts,
        exclude,
        strict: bool,
        cast: bool = False,
        allow_pickle: bool = False,
    ) -> None:
        parts = self.loadable_parts(checkpoint, parts, strict)
        checkpoint.check_files()
        states = _States(checkpoint, allow_pickle or self.allow_pickle)
        states.check_readable(parts, self.place())
        sources = self._load_sparse(checkpoint, parts, exclude, strict, cast)
        if "dense" in parts and self.model is not None:
            self._load_dense(states, exclude, strict)
        if parts & {"sparse_opt", "extra", "io_state"}:
            if not states.has(EXTRA):
                self._load_without_extra(checkpoint, parts, exclude, strict, sources)
                return
            extra = states.read(EXTRA) | self._own_rank_state(states)
            _Restorer(checkpoint, extra, exclude, strict).run(self, parts, sources)

    def _own_rank_state(self, states: _States) -> dict:
        """This rank's RNG states and data positions, when several ranks saved, as many as now
        (otherwise the ``extra`` state holds what is restored: rank 0's)."""
        rank, world_size = self.place()
        if states.checkpoint.world_size != world_size or world_size == 1:
            return {}
        return states.read(RANK_STATE, rank)

    def _load_sparse(self, checkpoint, parts, exclude, strict, cast) -> dict[str, list[str]]:
        kinds = [EMBEDDING, "policy"] if "sparse" in parts else []
        kinds += [OPTIMIZER] if "sparse_opt" in parts else []
        tables = self.engine_tables()
        if not kinds or not tables:
            return {}
        plan = plan_load(checkpoint, tables, kinds, exclude, strict, cast)
        return load_tables(checkpoint, tables, plan, strict, self.communicator())

    def _load_without_extra(self, checkpoint: Checkpoint, parts, exclude, strict, sources) -> None:
        """A checkpoint without ``extra`` state (another front end's): the sparse optimizer's
        state and the data positions from the index metadata (the positions from this rank's
        file when several ranks saved); with ``strict``, asking for ``"extra"`` is an error."""
        if strict and "extra" in parts:
            raise CheckpointError(f"{checkpoint!r} lists no {EXTRA} state ({EXTRA}.json)")
        restorer = _Restorer(checkpoint, {}, exclude, strict)
        if "sparse_opt" in parts and self.sparse_optimizer is not None:
            restorer.sparse_optimizer(self.sparse_optimizer, sources)
        if "io_state" in parts:
            if checkpoint.world_size > 1:
                positions = read_rank_json(checkpoint, self.place()[0]).get("io_state", {})
            else:
                positions = checkpoint.metadata.get("io_state", {})
            _Restorer(checkpoint, {"io_state": positions}, exclude, strict).run(
                self, {"io_state"}, {}
            )

    def _load_dense(self, states: _States, exclude, strict: bool) -> None:
        if not states.has(MODEL) and not strict:
            return
        state = states.read(MODEL)
        state = {k: v for k, v in state.items() if not _excluded(k, exclude)}
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not _excluded(k, exclude)]
        if strict and (missing or unexpected):
            raise CheckpointError(
                f"{states.checkpoint!r}: the dense state does not fit the model: missing "
                f"{missing}, unexpected {unexpected}"
            )


class _States:
    """The state trees of one checkpoint: JSON and safetensors, or — in checkpoints of older
    versions — pickled ``.pt`` files, read only when ``allow_pickle``."""

    PICKLED: ClassVar[dict[str, str]] = {
        MODEL: MODEL_FILE,
        EXTRA: EXTRA_FILE,
        RANK_STATE: RANK_FILE,
    }

    def __init__(self, checkpoint: Checkpoint, allow_pickle: bool) -> None:
        self.checkpoint = checkpoint
        self.allow_pickle = allow_pickle

    def has(self, name: str) -> bool:
        files = self.checkpoint.index["files"]
        return state_file_names(name)[0] in files or self.PICKLED[name] in files

    def check_readable(self, parts, place: tuple[int, int]) -> None:
        """Raise before anything is loaded when a part asked for is pickled and pickles are not
        allowed."""
        wanted = [MODEL] if "dense" in parts else []
        wanted += [EXTRA, RANK_STATE] if parts & {"sparse_opt", "extra", "io_state"} else []
        for name in wanted:
            self._pickled_file(name, place[0])

    def _pickled_file(self, name: str, rank: int | None = None) -> str | None:
        """The ``.pt`` file holding state ``name`` (None when it is JSON and safetensors, even
        beside RecIS's ``model.pt``/``extra.pt`` copies); raises unless pickles are allowed."""
        if name != RANK_STATE and state_file_names(name)[0] in self.checkpoint.index["files"]:
            return None
        file = self.PICKLED[name] if name != RANK_STATE else rank_name(RANK_FILE, rank or 0)
        if file not in self.checkpoint.index["files"] or self.allow_pickle:
            return file if file in self.checkpoint.index["files"] else None
        raise CheckpointError(
            f"{str(self.checkpoint.path / file)!r} is a pickle (a checkpoint of an older "
            f"version): unpickling can run arbitrary code, so it is read only with "
            f"allow_pickle=True (CheckpointManager(..., allow_pickle=True), "
            f"TrainingArguments(allow_pickle=True) or a model bank entry's 'allow_pickle'); "
            f"use it only for checkpoints from trusted places"
        )

    def read(self, name: str, rank: int | None = None):
        pickled = self._pickled_file(name, rank)
        if pickled is None:
            return read_state(self.checkpoint, name, TENSORS, rank)
        path = self.checkpoint.file(pickled)
        return torch.load(path, map_location="cpu", weights_only=name == MODEL)


class _Restorer:
    """Puts the states of ``extra.pt`` back into a manager's objects."""

    def __init__(self, checkpoint: Checkpoint, extra: dict, exclude, strict: bool) -> None:
        self.checkpoint = checkpoint
        self.path = str(checkpoint.path / state_file_names(EXTRA)[0])
        self.extra = extra
        self.exclude = exclude
        self.strict = strict

    def run(self, manager: CheckpointManager, parts, sources: dict[str, list[str]]) -> None:
        if "sparse_opt" in parts and manager.sparse_optimizer is not None:
            self.sparse_optimizer(manager.sparse_optimizer, sources)
        if "extra" in parts:
            self._load("dense_optimizer", manager.dense_optimizer, self.extra["dense_optimizer"])
            self._load("lr_scheduler", manager.lr_scheduler, self.extra["lr_scheduler"])
            for name, obj in manager.objects.items():
                self._load(name, obj, self.extra["objects"].get(name))
            if not _excluded("global_step", self.exclude):
                manager._global_step = int(self.extra["global_step"])
            if not _excluded("rng", self.exclude):
                _set_rng_state(self.extra["rng"])
            manager.loaded_extra = self.extra["extra"]
        if "io_state" in parts:
            for name, dataset in manager.io_datasets.items():
                self._load(name, dataset, self.extra["io_state"].get(name))

    def sparse_optimizer(self, optimizer, sources: dict[str, list[str]]) -> None:
        """The optimizer's state: its counters from the index metadata (older checkpoints: from
        ``extra.pt``) moved to the tables loaded (``sources``), its learning rate from
        ``extra.pt`` when there."""
        state = saved_sparse_optimizer(self.checkpoint, sources)
        if state is None and self.extra.get("sparse_optimizer") is not None:
            state = with_counters_moved(self.extra["sparse_optimizer"], sources)
        if state is not None and self.extra.get("sparse_param_groups") is not None:
            state = {**state, "param_groups": self.extra["sparse_param_groups"]}
        self._load(SPARSE_OPTIMIZER, optimizer, state)

    def _load(self, name: str, target, state) -> None:
        if target is None or _excluded(name, self.exclude):
            return
        if state is None:
            if self.strict:
                raise CheckpointError(f"{self.path!r} holds no state for {name!r}")
            return
        target.load_state_dict(state)


def _portable(states: dict) -> dict:
    """The entries of ``states`` that JSON can hold."""
    portable = {}
    for name, state in states.items():
        try:
            json.dumps(state)
        except (TypeError, ValueError):
            continue
        portable[name] = state
    return portable


def _excluded(name: str, patterns) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def _state_of(obj) -> dict | None:
    return obj.state_dict() if obj is not None else None


def _rng_state() -> dict:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 (the global generator is the user's)
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
