"""``CheckpointManager`` for JAX: periodic, atomic, exactly resumable checkpoints of a
:class:`~recis.backends.jax.TrainStep`, in the format of the torch front end's.

Layout of ``output_dir``, as with torch: ``checkpoint`` (the kept checkpoints, newest last) and
one ``ckpt_<step>/`` per checkpoint (format: :mod:`recis.core.checkpoint`) holding:

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
>>> def loss_fn(params, state, batch):
...     return (batch["f"] @ params["w"] - 1.0) ** 2, state
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

import jax
import numpy as np
from flax import nnx

from recis.backends.jax.flax import NnxTrainStep
from recis.backends.jax.named_arrays import fill_tree, leaf_names, named_arrays
from recis.backends.jax.train import TrainStep
from recis.core.checkpoint import (
    EMBEDDING,
    MAX_FILE_BYTES,
    OPTIMIZER,
    Checkpoint,
    CheckpointError,
    CheckpointWriter,
    load_tables,
    merge_counters,
    plan_load,
)
from recis.core.checkpoint.manager import CheckpointManagerBase
from recis.core.table import EmbeddingTable

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
    ) -> None:
        super().__init__(output_dir, dataset, save_steps, max_to_keep, parallel, max_file_bytes)
        self.train_step = train_step

    # -- saving ----------------------------------------------------------------------------------

    def engine_tables(self) -> dict[str, EmbeddingTable]:
        return {n: t for e in self.train_step.embedders for n, t in e.tables.items()}

    def write(self, tables: dict[str, EmbeddingTable], writer: CheckpointWriter) -> None:
        writer.write_tables(tables)
        step = self.train_step
        arrays = named_arrays(step.params, "params") | named_arrays(step.state, "state")
        arrays |= named_arrays(step.opt_state, "opt_state")
        arrays |= named_arrays(step.loss_scale, "loss_scale")
        writer.write_dense(arrays | _rng_arrays())

    def metadata(self) -> dict:
        buckets = self.train_step.buckets
        return {
            "backend": "jax",
            "io_state": {name: dataset.state_dict() for name, dataset in self.io_datasets.items()},
            "sparse_optimizer": self.train_step.sparse_optimizer.state_dict(),
            "objects": {name: obj.state_dict() for name, obj in self.objects.items()},
            "rng": _rng_metadata(),
            "buckets": None if buckets.fixed else list(buckets.sizes),
        }

    # -- loading ---------------------------------------------------------------------------------

    def load(self, checkpoint: Checkpoint, parts, exclude, strict: bool) -> None:
        checkpoint.check_files()
        loader = _Loader(checkpoint, list(exclude), strict)
        sources = self._load_sparse(checkpoint, parts, loader)
        step = self.train_step
        if "sparse_opt" in parts:
            loader.sparse_optimizer(step.sparse_optimizer, sources)
        if "dense" in parts:
            step.params, step.state = (loader.tree(getattr(step, n), n) for n in MODEL_TREES)
        if "extra" in parts:
            self._load_extra(loader)
        if "io_state" in parts:
            for name, dataset in self.io_datasets.items():
                loader.state(name, dataset, checkpoint.metadata.get("io_state", {}).get(name))
        step.params, step.state, step.opt_state, step.loss_scale = jax.device_put(
            (step.params, step.state, step.opt_state, step.loss_scale), step.device
        )
        if isinstance(step, NnxTrainStep):  # the model holds the variables too
            nnx.update(step.model, step.params, step.state)

    def _load_sparse(self, checkpoint, parts, loader: _Loader) -> dict[str, list[str]]:
        kinds = [EMBEDDING, "policy"] if "sparse" in parts else []
        kinds += [OPTIMIZER] if "sparse_opt" in parts else []
        tables = self.engine_tables()
        if not kinds or not tables:
            return {}
        plan = plan_load(checkpoint, tables, kinds, loader.exclude, loader.strict)
        return load_tables(checkpoint, tables, plan, loader.strict)

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
    """Reads the parts of one checkpoint, honouring ``exclude`` and ``strict``."""

    def __init__(self, checkpoint: Checkpoint, exclude: list[str], strict: bool) -> None:
        self.checkpoint = checkpoint
        self.exclude = exclude
        self.strict = strict

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
        state = self.checkpoint.metadata.get("sparse_optimizer")
        if state is not None:
            counters = {k: v for k, v in state["tables"].items() if isinstance(v, dict)}
            state = {**state, "tables": {**state["tables"], **merge_counters(counters, sources)}}
        self.state("sparse_optimizer", optimizer, state)

    def rng(self) -> None:
        """NumPy's and Python's global generators, as saved."""
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


def _rng_metadata() -> dict:
    """The generators' other fields: NumPy's position and cached Gaussian, Python's version and
    cached Gaussian."""
    _, _, position, has_gauss, gauss = np.random.get_state()  # noqa: NPY002
    version, _, python_gauss = random.getstate()
    return {"numpy": [position, has_gauss, gauss], "python": [version, python_gauss]}
