"""``CheckpointManager`` for JAX: periodic, atomic, exactly resumable checkpoints of a
:class:`~recis.backends.jax.TrainStep`, in the format of the torch front end's.

Layout of ``output_dir``, as with torch: ``checkpoint`` (the kept checkpoints, newest last) and
one ``ckpt_<step>/`` per checkpoint (format: :mod:`recis.checkpoint`) holding:

- ``sparse-*.safetensors``: the hash tables (rows, optimizer slots, policy state) keyed by
  logical table and id — the very tensors the torch front end writes, so tables load across
  front ends;
- ``dense-*.safetensors``: named arrays (see :mod:`~recis.backends.jax.named_arrays`):
  ``params/<path>`` and ``state/<path>`` (the model), ``opt_state/<path>`` (optax),
  ``loss_scale/<field>``, and the raw states of NumPy's and Python's global generators
  (``rng/numpy``, ``rng/python``);
- ``index.json`` metadata (JSON): ``step``, ``backend``, ``io_state`` (each dataset's
  ``state_dict``), ``sparse_optimizer`` (its counters), ``objects`` (registered objects' states,
  which must be JSON-able), ``rng`` (the generators' other fields) and ``buckets`` (the batch
  sizes compiled so far, so that a resumed run pads as the first one did).

**Several ranks.** When the tables are sharded over ranks (the ``communicator``, by default the
train step's: that of ``torch.distributed``'s world, which JAX programs launched with ``torchrun``
share), every rank saves and restores together: each writes its shard of the tables and
``rank-r<rank>.json`` (its data positions and generator states); rank 0 writes the dense arrays,
the metadata (the sparse optimizer's counters being the largest over the ranks), the list and the
rotation. Each rank restores the ids it owns whatever the number of ranks that saved; its own
data positions and generator states when as many ranks saved, else rank 0's generator states and
no data position (an error when datasets are registered, unless not ``strict``).

**Model bank** entries are those of the torch front end: ``{"path", "load", "exclude",
"strict"}`` with the parts ``"sparse"``, ``"sparse_opt"`` (optimizer slots and the sparse
optimizer's counters), ``"dense"`` (``params/`` and ``state/``), ``"extra"`` (global step,
``dense_optimizer``, ``loss_scale``, ``rng``, ``buckets`` and registered objects) and
``"io_state"``; ``exclude`` matches logical tables, dense array names and those names. A torch
checkpoint offers its tables, its global step and — where its datasets' states are in its
metadata — the data position; its dense model (``model.pt``) is torch's own.

>>> import tempfile, numpy as np, optax, jax.numpy as jnp
>>> from recis.backends.jax import Embedder, EmbeddingOption, SparseOptimizer, TrainStep, rules
>>> embedder = Embedder({"f": EmbeddingOption(embedding_dim=2, shared_name="f")})
>>> def loss_fn(params, batch):
...     return (batch["f"] @ params["w"] - 1.0) ** 2
>>> def make_step():
...     sparse = SparseOptimizer(embedder, rules.SGD(), 0.1)
...     return TrainStep(loss_fn, {"w": jnp.ones(2)}, optax.sgd(0.1), sparse, [embedder])
>>> manager = CheckpointManager(tempfile.mkdtemp(), make_step(), save_steps=2)
>>> for _ in range(4):
...     _ = manager.train_step({"f": np.array([[1], [2]])})
...     _ = manager.step()
>>> manager.directory.names()
['ckpt_2', 'ckpt_4']
>>> again = CheckpointManager(manager.directory.root, make_step())
>>> again.restore(), again.global_step
(True, 4)
>>> np.array_equal(again.train_step.params["w"], manager.train_step.params["w"])
True
"""

from __future__ import annotations

import random
from fnmatch import fnmatchcase

import numpy as np
from flax import nnx

from recis.backends.jax.flax import NnxTrainStep
from recis.backends.jax.named_arrays import fill_tree, leaf_names, named_arrays
from recis.backends.jax.train import TrainStep
from recis.checkpoint import (
    EMBEDDING,
    MAX_FILE_BYTES,
    OPTIMIZER,
    Checkpoint,
    CheckpointError,
    CheckpointWriter,
    load_tables,
    plan_load,
    read_rank_json,
    write_rank_json,
)
from recis.checkpoint.writer import check_finite
from recis.core.table import EmbeddingTable
from recis.distributed.communicator import Communicator
from recis.framework.checkpoint_base import (
    SPARSE_OPTIMIZER,
    CheckpointManagerBase,
    saved_sparse_optimizer,
)

MODEL_TREES = ("params", "state")


class CheckpointManager(CheckpointManagerBase):
    """Saves ``train_step`` every ``save_steps`` steps into ``output_dir``, keeps
    ``max_to_keep`` checkpoints and restores the newest (see the module docstring).

    Args:
        output_dir: the run's directory.
        train_step: the :class:`TrainStep` whose tables, dense state and optimizers are saved;
            an NNX step's model is updated after a load.
        dataset: the training dataset, whose ``state_dict()`` is saved (name ``"dataset"``).
        save_steps: :meth:`step` saves when the global step is a multiple (≤ 0: never).
        max_to_keep: checkpoints kept (None: all).
        parallel: threads writing files.
        max_file_bytes: size limit of one safetensors file.
        communicator: the ranks saving and restoring together (default: the train step's).
    """

    def __init__(
        self,
        output_dir,
        train_step: TrainStep,
        dataset=None,
        save_steps: int = 1000,
        max_to_keep: int | None = 5,
        parallel: int = 8,
        max_file_bytes: int = MAX_FILE_BYTES,
        communicator: Communicator | None = None,
    ) -> None:
        super().__init__(
            output_dir, dataset, save_steps, max_to_keep, parallel, max_file_bytes, communicator
        )
        self.train_step = train_step

    def communicator(self) -> Communicator | None:
        if self._communicator is not None:
            return self._communicator
        return self.train_step.communicator

    # -- saving ----------------------------------------------------------------------------------

    def engine_tables(self) -> dict[str, EmbeddingTable]:
        return {n: t for e in self.train_step.embedders for n, t in e.tables.items()}

    def write(self, tables: dict[str, EmbeddingTable], writer: CheckpointWriter) -> None:
        writer.write_tables(tables)
        step = self.train_step
        arrays = named_arrays(step.params, "params") | named_arrays(step.state, "state")
        arrays |= named_arrays(step.opt_state, "opt_state")
        for name, array in arrays.items():  # the weights and their optimizer state
            check_finite(name, array)
        arrays |= named_arrays(step.loss_scale, "loss_scale")
        writer.write_dense(arrays | _rng_arrays())
        if writer.world_size > 1:
            write_rank_json(writer, {"io_state": self.io_states(), "rng": _rng_json()})

    def metadata(self) -> dict:
        buckets = self.train_step.buckets
        sparse = self.sparse_optimizer_metadata(self.train_step.sparse_optimizer.core)
        return {
            "backend": "jax",
            "io_state": self.io_states(),
            SPARSE_OPTIMIZER: sparse,
            "objects": {name: obj.state_dict() for name, obj in self.objects.items()},
            "rng": _rng_metadata(),
            "buckets": None if buckets.fixed else list(buckets.sizes),
        }

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
        """Load ``parts`` of ``checkpoint`` (see the base class); nothing here is pickled, so
        ``allow_pickle`` changes nothing."""
        parts = self.loadable_parts(checkpoint, parts, strict)
        checkpoint.check_files()
        loader = _Loader(checkpoint, list(exclude), strict, self._own_rank_state(checkpoint))
        sources = self._load_sparse(checkpoint, parts, loader, cast)
        step = self.train_step
        if "sparse_opt" in parts:
            loader.sparse_optimizer(step.sparse_optimizer, sources)
        if "dense" in parts:
            step.params, step.state = (loader.tree(getattr(step, n), n) for n in MODEL_TREES)
        if "extra" in parts:
            self._load_extra(loader)
        if "io_state" in parts:
            for name, dataset in self.io_datasets.items():
                loader.state(name, dataset, loader.io_states().get(name))
        step.params, step.state, step.opt_state, step.loss_scale = step.place(
            (step.params, step.state, step.opt_state, step.loss_scale)
        )
        if isinstance(step, NnxTrainStep):  # the model holds the variables too
            nnx.update(step.model, step.params, step.state)

    def _own_rank_state(self, checkpoint: Checkpoint) -> dict | None:
        """This rank's data positions and generator states, when several ranks saved, as many
        as now (otherwise the metadata holds what is restored: rank 0's)."""
        rank, world_size = self.place()
        if checkpoint.world_size != world_size or world_size == 1:
            return None
        return read_rank_json(checkpoint, rank)

    def _load_sparse(self, checkpoint, parts, loader: _Loader, cast) -> dict[str, list[str]]:
        kinds = [EMBEDDING, "policy"] if "sparse" in parts else []
        kinds += [OPTIMIZER] if "sparse_opt" in parts else []
        tables = self.engine_tables()
        if not kinds or not tables:
            return {}
        plan = plan_load(checkpoint, tables, kinds, loader.exclude, loader.strict, cast)
        return load_tables(checkpoint, tables, plan, loader.strict, self.communicator())

    def _load_extra(self, loader: _Loader) -> None:
        step, metadata = self.train_step, loader.checkpoint.metadata
        if not loader.excluded("dense_optimizer"):
            step.opt_state = loader.tree(step.opt_state, "opt_state")
        if not loader.excluded("loss_scale"):
            step.loss_scale = loader.tree(step.loss_scale, "loss_scale")
        for name, obj in self.objects.items():
            loader.state(name, obj, metadata.get("objects", {}).get(name))
        if not loader.excluded("global_step"):
            self._global_step = int(metadata["step"])
        if not loader.excluded("rng"):
            loader.rng()
        saved_buckets = metadata.get("buckets")
        if saved_buckets is not None and not step.buckets.fixed and not loader.excluded("buckets"):
            step.buckets.sizes = [int(size) for size in saved_buckets]


class _Loader:
    """Reads the parts of one checkpoint, honouring ``exclude`` and ``strict``; ``own`` is this
    rank's own file (:func:`read_rank_json`) when it is to be restored."""

    def __init__(
        self, checkpoint: Checkpoint, exclude: list[str], strict: bool, own: dict | None = None
    ) -> None:
        self.checkpoint = checkpoint
        self.exclude = exclude
        self.strict = strict
        self.own = own

    def io_states(self) -> dict:
        """The saved data positions of this rank."""
        source = self.own if self.own is not None else self.checkpoint.metadata
        return source.get("io_state", {})

    def excluded(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.exclude)

    def complain(self, message: str) -> None:
        if self.strict:
            raise CheckpointError(f"{self.checkpoint!r}: {message}")

    def tree(self, template, prefix: str):
        """``template`` with the leaves saved under ``prefix`` (others keep their values)."""
        names = set(leaf_names(template, prefix))
        saved = {n for n in self.checkpoint.index["dense"] if n.startswith(f"{prefix}/")}
        missing = sorted(n for n in names - saved if not self.excluded(n))
        unexpected = sorted(n for n in saved - names if not self.excluded(n))
        if missing or unexpected:
            self.complain(f"{prefix!r} does not fit: missing {missing}, unexpected {unexpected}")
        current = named_arrays(template, prefix)

        def read(name: str) -> np.ndarray:
            if name in saved and not self.excluded(name):
                return self.checkpoint.read_tensor(name)
            return current[name]

        try:
            return fill_tree(template, prefix, read)
        except ValueError as error:
            raise CheckpointError(f"{self.checkpoint!r}: {error}") from None

    def state(self, name: str, target, state) -> None:
        """``target.load_state_dict(state)`` unless excluded; a missing state is complained of."""
        if self.excluded(name):
            return
        if state is None:
            self.complain(f"it holds no state for {name!r}")
            return
        target.load_state_dict(state)

    def sparse_optimizer(self, optimizer, sources: dict[str, list[str]]) -> None:
        """The optimizer's counters, moved to the tables loaded (``sources``)."""
        state = saved_sparse_optimizer(self.checkpoint, sources)
        self.state(SPARSE_OPTIMIZER, optimizer, state)

    def rng(self) -> None:
        """NumPy's and Python's global generators, as saved (by this rank, when it has a file
        of its own with them)."""
        if self.own is not None and "rng" in self.own:
            _set_rng_json(self.own["rng"])
            return
        saved = self.checkpoint.metadata.get("rng")
        if saved is None:
            self.complain("it holds no generator states")
            return
        numpy_key = self.checkpoint.read_tensor("rng/numpy")
        np.random.set_state(("MT19937", numpy_key, *saved["numpy"]))  # noqa: NPY002
        python_state = tuple(int(x) for x in self.checkpoint.read_tensor("rng/python"))
        random.setstate((saved["python"][0], python_state, saved["python"][1]))


def _rng_arrays() -> dict[str, np.ndarray]:
    """The key arrays of NumPy's and Python's global generators."""
    return {
        "rng/numpy": np.random.get_state()[1],  # noqa: NPY002 (the global generator is the user's)
        "rng/python": np.asarray(random.getstate()[1], np.uint32),
    }


def _rng_json() -> dict:
    """The full states of NumPy's and Python's global generators, as JSON."""
    _, key, position, has_gauss, gauss = np.random.get_state()  # noqa: NPY002
    version, state, python_gauss = random.getstate()
    return {
        "numpy": [key.tolist(), position, has_gauss, gauss],
        "python": [version, list(state), python_gauss],
    }


def _set_rng_json(saved: dict) -> None:
    """Restore :func:`_rng_json`."""
    key, *rest = saved["numpy"]
    np.random.set_state(("MT19937", np.asarray(key, np.uint32), *rest))  # noqa: NPY002
    version, state, gauss = saved["python"]
    random.setstate((version, tuple(state), gauss))


def _rng_metadata() -> dict:
    """The generators' other fields: NumPy's position and cached Gaussian, Python's version and
    cached Gaussian."""
    _, _, position, has_gauss, gauss = np.random.get_state()  # noqa: NPY002
    version, _, python_gauss = random.getstate()
    return {"numpy": [position, has_gauss, gauss], "python": [version, python_gauss]}
