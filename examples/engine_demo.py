"""Train a logistic-regression CTR model with the RecIS engine alone (no deep-learning framework).

Every sample has a user id, an item id and a variable-length list of tag ids: raw int64 ids that
the model has never seen before training. Each feature has a growable embedding table of width 1;
a sample's logit is the sum of its ids' weights (tags are averaged). Gradients flow back through
the engine's segment reduction into a sparse Adagrad update of exactly the rows that were used.

    python examples/engine_demo.py --samples 200000 --epochs 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from recis.core.dedupe import unique_inverse
from recis.core.initializers import NormalInitializer
from recis.core.optim import Adagrad
from recis.core.optim.updater import SparseUpdater
from recis.core.ragged import Ragged
from recis.core.segment import segment_reduce, segment_reduce_backward
from recis.core.table import EmbeddingTable

FEATURES = {"user": 50_000, "item": 20_000, "tag": 2_000}  # distinct ids per feature


def make_data(samples: int, seed: int) -> tuple[dict[str, Ragged], np.ndarray]:
    """Zipf-distributed raw ids (scrambled into the int64 range) and labels from hidden weights."""
    rng = np.random.default_rng(seed)
    truth = np.random.default_rng(1234)
    features, logit = {}, np.zeros(samples)
    for name, vocab in FEATURES.items():
        lengths = rng.integers(1, 6, samples) if name == "tag" else np.ones(samples, np.int64)
        ranks = np.minimum(rng.zipf(1.2, lengths.sum()), vocab) - 1
        ids = ranks * np.int64(-7046029254386353131)  # distinct raw ids spread over int64
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        weight = truth.normal(0, 1.0, vocab)[ranks]
        logit += np.add.reduceat(weight, offsets[:-1]) / lengths
        features[name] = Ragged(ids, offsets)
    labels = (rng.random(samples) < 1 / (1 + np.exp(-(logit - 0.5)))).astype(np.float32)
    return features, labels


def batches(features, labels, batch_size):
    for start in range(0, labels.size, batch_size):
        stop = min(start + batch_size, labels.size)
        yield {name: _slice(r, start, stop) for name, r in features.items()}, labels[start:stop]


def _slice(ragged: Ragged, start: int, stop: int) -> Ragged:
    offsets = ragged.offsets[0][start : stop + 1]
    return Ragged(ragged.values[offsets[0] : offsets[-1]], offsets - offsets[0])


class LogisticRegression:
    """Sum of per-id weights (mean over a feature's ids) plus a bias, trained sparsely."""

    def __init__(self, learning_rate: float) -> None:
        init = NormalInitializer(std=0.01)
        self.tables = {name: EmbeddingTable(name, dim=1, initializer=init) for name in FEATURES}
        self.optimizer = SparseUpdater(Adagrad(initial_accumulator_value=0.1), self.tables.values())
        self.bias = 0.0
        self.learning_rate = learning_rate

    def forward(self, batch: dict[str, Ragged], train: bool):
        logits, cache = np.full(batch["user"].num_rows, self.bias, np.float32), {}
        for name, ragged in batch.items():
            table = self.tables[name]
            unique_ids, index = unique_inverse(ragged.values)
            rows = table.find_or_insert(unique_ids).rows if train else table.find(unique_ids)
            pooled = segment_reduce(table.gather(rows), index, ragged.offsets[0], mode="mean")
            logits += pooled[:, 0]
            cache[name] = (rows, index, ragged.offsets[0])
        return logits, cache

    def train_step(self, batch, labels) -> float:
        logits, cache = self.forward(batch, train=True)
        probabilities = 1 / (1 + np.exp(-logits))
        grad_logits = ((probabilities - labels) / labels.size).astype(np.float32)[:, None]
        for name, (rows, index, offsets) in cache.items():
            grad_rows = segment_reduce_backward(
                grad_logits, index, offsets, mode="mean", num_rows=rows.size
            )
            self.optimizer.accumulate(self.tables[name], rows, grad_rows)
        self.optimizer.step(lr=self.learning_rate)
        self.bias -= self.learning_rate * float(grad_logits.sum())
        return log_loss(probabilities, labels)

    def predict(self, batch) -> np.ndarray:
        logits, _ = self.forward(batch, train=False)
        return 1 / (1 + np.exp(-logits))


def log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum formula (ties get average ranks)."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(scores.size)
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], scores.size]
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    positives = labels.sum()
    negatives = labels.size - positives
    return float(
        (ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=4096)
    parser.add_argument("--learning_rate", type=float, default=0.5)
    args = parser.parse_args()

    train_features, train_labels = make_data(args.samples, seed=0)
    test_features, test_labels = make_data(args.samples // 4, seed=1)
    model = LogisticRegression(args.learning_rate)
    for epoch in range(1, args.epochs + 1):
        start, losses = time.perf_counter(), []
        for batch, labels in batches(train_features, train_labels, args.batch_size):
            losses.append(model.train_step(batch, labels))
        seconds = time.perf_counter() - start
        predictions = np.concatenate(
            [model.predict(b) for b, _ in batches(test_features, test_labels, args.batch_size)]
        )
        print(
            f"epoch {epoch}: train loss {np.mean(losses):.4f}  "
            f"test loss {log_loss(predictions, test_labels):.4f}  "
            f"test AUC {auc(predictions, test_labels):.4f}  "
            f"({args.samples / seconds:,.0f} samples/s)"
        )
    sizes = ", ".join(f"{name} {len(table):,} ids" for name, table in model.tables.items())
    print(f"tables: {sizes}")


if __name__ == "__main__":
    main()
