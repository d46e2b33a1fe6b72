"""EmbeddingEngine against a twin built from nn.Embedding over a known vocabulary.

Both models start from the same per-id rows and the same dense weights; after 20 steps their
losses and rows must agree for every sparse optimizer. The batches repeat ids, mix dense and
ragged inputs, carry weights and use every combiner, with tables merged and shared.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from recis.backends.torch.initializers import UniformInitializer
from recis.backends.torch.ragged import RaggedTensor
from recis.core import optim as rules
from recis.nn import EmbeddingEngine, EmbeddingOption, filter_out_sparse_param
from recis.optim import (
    SparseAdagrad,
    SparseAdam,
    SparseAdamW,
    SparseAdamWTF,
    SparseFtrl,
    SparseRowwiseAdagrad,
    SparseSGD,
)

BATCH, STEPS, TILE = 6, 20, 3
INIT = UniformInitializer(-0.5, 0.5)
VOCAB = {  # logical table -> raw ids, extremes included
    "user": np.array([-(2**63), -1, 0, 7, 2**62, 2**63 - 1]),
    "item": np.array([11, 12, 13, -14, 10**15, 99]),
    "tag": np.array([5, 6, 7, 8]),
    "bias": np.array([1, 2, 3]),
}
FEATURES = {  # feature -> (logical table, dim, combiner, input kind)
    "user": ("user", 4, "sum", "dense1"),
    "item": ("item", 4, "sum", "dense2"),
    "history": ("item", 4, "mean", "weighted"),
    "tags": ("tag", 4, "tile", "ragged"),
    "bias": ("bias", 1, "sum", "ragged"),
}
OPTIMIZERS = {
    "sgd": (SparseSGD, {"lr": 0.5}, rules.SGD()),
    "adagrad": (SparseAdagrad, {"lr": 0.3}, rules.Adagrad()),
    "rowwise_adagrad": (SparseRowwiseAdagrad, {"lr": 0.3}, rules.RowWiseAdagrad()),
    "adam": (SparseAdam, {"lr": 0.05, "weight_decay": 0.01}, rules.Adam(weight_decay=0.01)),
    "adamw": (SparseAdamW, {"lr": 0.05}, rules.AdamW()),
    "adamw_tf": (SparseAdamWTF, {"lr": 0.05}, rules.AdamWTF()),
    "ftrl": (SparseFtrl, {"lr": 0.5, "l1": 0.001}, rules.Ftrl(l1=0.001)),
}


def _options():
    options = {}
    for feature, (table, dim, combiner, _) in FEATURES.items():
        kwargs = {"tile_len": TILE} if combiner == "tile" else None
        options[feature] = EmbeddingOption(
            embedding_dim=dim, shared_name=table, combiner=combiner, combiner_kwargs=kwargs,
            initializer=INIT, seed=3,
        )  # fmt: skip
    return options


def _batches(seed):
    rng = np.random.default_rng(seed)
    for _ in range(STEPS):
        batch = {}
        for feature, (table, _, _, kind) in FEATURES.items():
            vocab = VOCAB[table]
            if kind.startswith("dense"):
                width = int(kind[-1])
                batch[feature] = torch.from_numpy(rng.choice(vocab, (BATCH, width)))
                continue
            lengths = rng.integers(0, 5, BATCH)
            values = torch.from_numpy(rng.choice(vocab, lengths.sum()))
            offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)]))
            weights = torch.from_numpy(rng.uniform(0.5, 2, lengths.sum()).astype(np.float32))
            batch[feature] = RaggedTensor(
                values, [offsets], weights if kind == "weighted" else None
            )
        batch["label"] = torch.from_numpy(rng.integers(0, 2, BATCH).astype(np.float32))
        yield batch


def _dense_tower(seed):
    torch.manual_seed(seed)
    width = sum(dim * (TILE if c == "tile" else 1) for _, dim, c, _ in FEATURES.values())
    return nn.Sequential(nn.Linear(width, 8), nn.Tanh(), nn.Linear(8, 1))


def _loss(tower, embedded, labels):
    parts = [embedded[f].reshape(BATCH, -1) for f in FEATURES]
    logits = tower(torch.cat(parts, dim=1)).squeeze(1)
    return nn.functional.binary_cross_entropy_with_logits(logits, labels)


class Twin(nn.Module):
    """The same model with one nn.Embedding (sparse gradients) per logical table."""

    def __init__(self, engine: EmbeddingEngine):
        super().__init__()
        self.index = {t: {k: i for i, k in enumerate(v.tolist())} for t, v in VOCAB.items()}
        self.tables = nn.ModuleDict()
        for table in VOCAB:
            physical = next(t for t in engine.tables.values() if table in t.children_names)
            tag = physical.children_names.index(table)
            start = physical.table.initial_values(VOCAB[table], np.full(VOCAB[table].size, tag))
            self.tables[table] = nn.Embedding.from_pretrained(
                torch.from_numpy(start.copy()), freeze=False, sparse=True
            )

    def forward(self, batch):
        out = {}
        for feature, (table, dim, combiner, _) in FEATURES.items():
            value = batch[feature]
            if isinstance(value, RaggedTensor):
                ids, offsets, weights = value.values(), value.offsets()[0], value.weight()
            else:
                ids = value.reshape(-1)
                offsets = torch.arange(0, ids.numel() + 1, value.shape[1])
                weights = None
            index = torch.tensor([self.index[table][i] for i in ids.tolist()], dtype=torch.long)
            rows = self.tables[table](index)
            out[feature] = _reference_combine(rows, offsets, weights, combiner, dim)
        return out


def _reference_combine(rows, offsets, weights, combiner, dim):
    lengths = offsets[1:] - offsets[:-1]
    segment = torch.repeat_interleave(torch.arange(BATCH), lengths)
    w = torch.ones(rows.shape[0]) if weights is None else weights
    if combiner == "tile":
        position = torch.arange(rows.shape[0]) - offsets[segment]
        keep = position < TILE
        out = torch.zeros(BATCH, TILE, dim)
        return out.index_put((segment[keep], position[keep]), rows[keep] * w[keep, None])
    total = torch.zeros(BATCH, dim).index_add(0, segment, rows * w[:, None])
    if combiner == "mean":
        norm = torch.zeros(BATCH).index_add(0, segment, w)
        total = torch.where(norm[:, None] != 0, total / norm.clamp_min(1e-30)[:, None], 0.0)
    return total


def _lazy_step(embedding: nn.Embedding, rule, slots, step, lr):
    """Apply an engine rule to the rows of a sparse gradient (the reference for every optimizer)."""
    grad = embedding.weight.grad.coalesce()
    rows = grad.indices()[0].numpy()
    params = embedding.weight.detach().numpy()
    new_params, new_slots = rule.update(
        params[rows], grad.values().numpy(), {k: v[rows] for k, v in slots.items()}, step, lr
    )
    params[rows] = new_params
    for name, values in new_slots.items():
        slots[name][rows] = values
    embedding.weight.grad = None


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_engine_matches_nn_embedding_twin(name):
    optimizer_class, kwargs, rule = OPTIMIZERS[name]
    engine = EmbeddingEngine(_options())
    assert len(engine.tables) == 2  # the dim-4 tables are merged; the bias table stands apart
    twin = Twin(engine)
    towers = [_dense_tower(0), _dense_tower(0)]
    sparse = optimizer_class(filter_out_sparse_param(engine), **kwargs)
    dense = [torch.optim.SGD(t.parameters(), lr=0.1) for t in towers]
    slots = {t: rule.init(VOCAB[t].size, e.embedding_dim) for t, e in twin.tables.items()}
    seen = {t: set() for t in VOCAB}
    for step, batch in enumerate(_batches(seed=1), start=1):
        losses = []
        for model, tower, opt in zip((engine, twin), towers, dense, strict=True):
            opt.zero_grad()
            loss = _loss(tower, model(batch), batch["label"])
            loss.backward()
            opt.step()
            losses.append(loss.item())
        sparse.step()
        for table, embedding in twin.tables.items():
            _lazy_step(embedding, rule, slots[table], step, kwargs["lr"])
        for feature, (table, *_rest) in FEATURES.items():
            value = batch[feature]
            ids = value.values() if isinstance(value, RaggedTensor) else value.reshape(-1)
            seen[table].update(ids.tolist())
        assert losses[0] == pytest.approx(losses[1], rel=1e-6, abs=1e-6), f"step {step}"
    for table, ids in seen.items():
        physical = next(t for t in engine.tables.values() if table in t.children_names)
        ids = np.array(sorted(ids))
        tag = physical.children_names.index(table)
        ours = physical.table.gather(physical.table.find(ids, tag))
        theirs = twin.tables[table].weight.detach().numpy()[[twin.index[table][i] for i in ids]]
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda t: SparseSGD(t, lr=0.5), lambda p: torch.optim.SGD(p, lr=0.5)),
        (lambda t: SparseAdagrad(t, lr=0.3), lambda p: torch.optim.Adagrad(p, lr=0.3)),
        # torch's SparseAdam puts eps outside the bias correction, as the TF-style rule does
        (
            lambda t: SparseAdamWTF(t, lr=0.05, weight_decay=0.0),
            lambda p: torch.optim.SparseAdam(p, lr=0.05),
        ),
    ],
    ids=["sgd", "adagrad", "sparse_adam"],
)
def test_engine_matches_torch_sparse_optimizers(ours, theirs):
    engine = EmbeddingEngine(_options())
    twin = Twin(engine)
    towers = [_dense_tower(0), _dense_tower(0)]
    sparse = [ours(filter_out_sparse_param(engine)), theirs(list(twin.tables.parameters()))]
    for batch in _batches(seed=2):
        for model, tower, opt in zip((engine, twin), towers, sparse, strict=True):
            tower.zero_grad()
            _loss(tower, model(batch), batch["label"]).backward()
            opt.step()
            opt.zero_grad()
    for table in VOCAB:
        physical = next(t for t in engine.tables.values() if table in t.children_names)
        tag = physical.children_names.index(table)
        rows = physical.table.find(VOCAB[table], tag)
        present = rows >= 0
        np.testing.assert_allclose(
            physical.table.gather(rows[present]),
            twin.tables[table].weight.detach().numpy()[present],
            rtol=1e-5,  # torch's kernels order the float32 operations differently
            atol=1e-6,
        )


def test_batch_lookup_trains_as_deduplicating_first(monkeypatch):
    """The CPU lookup that deduplicates while probing (EmbeddingTable.lookup_batch) gives the
    same losses, rows and slots, bit for bit, as deduplicating first and looking up the
    distinct ids."""
    from recis.core.table import EmbeddingTable

    def train(engine):
        tower = _dense_tower(0)
        sparse = SparseAdagrad(filter_out_sparse_param(engine), lr=0.3)
        losses = []
        for batch in _batches(seed=3):
            tower.zero_grad()
            loss = _loss(tower, engine(batch), batch["label"])
            loss.backward()
            sparse.step()
            sparse.zero_grad()
            losses.append(loss.item())
        return losses

    taken, real = [], EmbeddingTable.lookup_batch
    monkeypatch.setattr(
        EmbeddingTable, "lookup_batch", lambda *a, **k: taken.append(real(*a, **k)) or taken[-1]
    )
    fused = EmbeddingEngine(_options())
    fused_losses = train(fused)
    assert len(taken) == STEPS * len(fused.tables) and None not in taken
    assert all(t.table.last_stats.new == 0 for t in fused.tables.values())  # ids seen before
    calls = []
    monkeypatch.setattr(EmbeddingTable, "lookup_batch", lambda *a, **k: calls.append(1))
    plain = EmbeddingEngine(_options())
    assert train(plain) == fused_losses
    assert len(calls) == STEPS * len(plain.tables)  # every lookup took the other path
    for name, table in fused.tables.items():
        other = plain.tables[name].table
        for field in table.table.store.fields:
            ids = table.table.ids.export()
            rows = other.find(ids.keys, ids.tags)
            np.testing.assert_array_equal(
                table.table.gather(ids.rows, field), other.gather(rows, field)
            )
