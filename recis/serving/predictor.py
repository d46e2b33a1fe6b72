"""``Predictor``: scores raw rows with a serving bundle, on the CPU or a GPU.

It runs the bundle's feature configuration (:mod:`~recis.serving.features`), looks the ids up in
tables holding the bundle's rows — through the same embedding pipeline as training
(:class:`~recis.embedding.embedder.Embedder`, an evaluation lookup) — and calls the dense program
(``torch.export`` or ``jax.export``, loaded by :data:`RUNNERS`). **Ids never seen in training
read as zeros**, as in the trainer's evaluation. Rows of an ``int8`` bundle are dequantized
when loaded (float32 tables); other dtypes are kept as stored.

With ``device="cuda"`` the tables live on the GPU (CuPy arrays, the engine's GPU tables): the
feature ops run on the host, the ids of a batch are copied to the device once, and the lookup
(the engine's GPU kernels) hands the activations to the dense program over DLPack, which runs
where they are — the torch program is moved to that device, the JAX program is exported for both
``cpu`` and ``cuda``. Scores come back as NumPy arrays.

:meth:`Predictor.apply` applies a delta (the bundle that follows the one loaded), so a server
keeps up with a trainer without reloading everything. A predictor is a plain object; a server
wraps it (README: a standard-library HTTP handler). Calls are not thread-safe: serialise them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping

import numpy as np

from recis.core.arrays import device_namespace
from recis.core.ragged import Ragged
from recis.distributed.communicator import SingleProcess
from recis.embedding.embedder import Embedder
from recis.embedding.option import EmbeddingOption
from recis.export import Bundle, BundleError, Rows, decode, open_bundle
from recis.export.encoding import DTYPES
from recis.serving.features import run_features

RUNNERS = {"torch": "recis.backends.torch.serving", "jax": "recis.backends.jax.serving"}


class Predictor:
    """Scores batches of raw rows with the bundle at ``bundle`` (then each of ``deltas``).

    Args:
        bundle: a :class:`~recis.export.Bundle` or its path; a delta loads its whole chain.
        deltas: deltas to apply after it, in order.
        device: where the tables live and the lookup runs, ``"cpu"`` or ``"cuda"``.
    """

    def __init__(self, bundle, deltas: Iterable = (), device: str = "cpu") -> None:
        self.xp = device_namespace(device, "Predictor")
        self.device = device
        self.bundle = open_bundle(bundle)
        manifest = self.bundle.manifest
        for key in ("embedding", "dense"):
            if key not in manifest:
                raise BundleError(f"{self.bundle!r} has no {key!r} entry: export it with a model")
        self.features = manifest.get("features", {"features": []})
        options = _options(manifest["embedding"], self.bundle, device)
        self.embedder = Embedder(options, communicator=SingleProcess())  # never sharded
        self._load_rows(self.bundle.state())
        self._program = _load_program(self.bundle)
        for delta in deltas:
            self.apply(delta)

    @property
    def step(self) -> int:
        """The training step of the newest bundle applied."""
        return self.bundle.step

    def apply(self, delta) -> None:
        """Apply ``delta``, the bundle exported next after the one loaded."""
        delta = open_bundle(delta)
        link = delta.manifest.get("parent", {})
        if delta.kind != "delta" or link.get("uid") != self.bundle.uid:
            raise BundleError(
                f"{delta!r} does not follow {self.bundle!r} (uid {self.bundle.uid}): apply the "
                f"deltas in the order they were exported"
            )
        self._load_rows(delta.rows())
        self._program = _load_program(delta)
        self.bundle = delta

    def predict(self, batch: Mapping) -> np.ndarray:
        """Scores of a batch of raw columns (NumPy arrays and ``Ragged`` s by column name)."""
        features = run_features(self.features, batch)
        inputs = {f: _on(self.xp, features[f]) for f in self.embedder.options}
        activations, _ = self.embedder.lookup(inputs, train=False)
        dense = {}
        for name in self.bundle.manifest["dense"]["inputs"]:
            if name not in features and name not in batch:
                raise KeyError(f"the batch has no column {name!r}, an input of the dense model")
            dense[name] = features[name] if name in features else batch[name]
        return self._program(dense, activations)

    def predict_dataset(self, dataset) -> Iterable[np.ndarray]:
        """Scores of every batch of ``dataset`` (e.g. a RecIS ``OrcDataset`` or
        ``ParquetDataset`` with ``output="numpy"``), one array per batch."""
        for batch in dataset:
            yield self.predict(batch)

    def _load_rows(self, state: Mapping[str, Rows]) -> None:
        """Write ``state``'s rows (a full state or a delta's) into the tables."""
        for table in self.embedder.tables.values():
            for tag, child in enumerate(table.children):
                if child not in state:
                    continue
                rows = state[child]
                if rows.removed.size:
                    table.erase(self.xp.asarray(rows.removed), tag)
                if len(rows):
                    tags = self.xp.full(len(rows), tag, np.int8)
                    found = table.find_or_insert(self.xp.asarray(rows.ids), tags)
                    values = (
                        decode(rows.values, rows.scale) if rows.scale is not None else rows.values
                    )
                    table.store.scatter(found.rows, values)


def _on(xp, column):
    """A column of ids (array or ``Ragged``) as ``xp`` arrays."""
    if not isinstance(column, Ragged):
        return xp.asarray(column)
    weights = None if column.weights is None else xp.asarray(column.weights)
    offsets = tuple(xp.asarray(o) for o in column.offsets)
    return Ragged(xp.asarray(column.values), offsets, weights)


def _options(embedding: Mapping, bundle: Bundle, device: str) -> dict[str, EmbeddingOption]:
    """Serving options of each feature: its table's dim and combiner, the bundle's dtype, the
    device."""
    dtype = np.float32 if bundle.dtype == "int8" else DTYPES[bundle.dtype]
    sizes = {name: info["rows"] for name, info in bundle.chain()[0].tables.items()}
    options = {}
    for feature, entry in embedding.items():
        tile = entry.get("tile_len")
        options[feature] = EmbeddingOption(
            embedding_dim=entry["dim"],
            shared_name=entry["table"],
            combiner=entry["combiner"],
            combiner_kwargs=None if tile is None else {"tile_len": tile},
            use_weight=entry["use_weight"],
            padding_id=entry.get("padding_id"),
            dtype=dtype,
            capacity=max(1024, 2 * sizes.get(entry["table"], 0)),
            device=device,
        )
    return options


def _load_program(bundle: Bundle):
    """The dense program of ``bundle``: ``program(dense inputs, activations) → scores``."""
    entry = bundle.manifest["dense"]
    framework = entry["framework"]
    if framework not in RUNNERS:
        raise BundleError(f"{bundle!r}: unknown dense framework {framework!r} ({sorted(RUNNERS)})")
    runner = importlib.import_module(RUNNERS[framework])
    return runner.load_program(bundle.file(entry["file"]), entry)
