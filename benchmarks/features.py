"""Feature engine: fused against unfused execution of a 50-feature RecIS pipeline.

The pipeline mixes the op kinds of a real model (all inputs torch tensors / ``RaggedTensor``\\ s,
as the RecIS front end receives them):

- 15 ``Mod`` on ragged int64 id lists (0-10 ids per row, with weights);
- 10 ``Bucketize`` on dense float32 columns (8 boundaries);
- 8 ``Hash`` (4 farm, 4 murmur) of string lists (0-3 strings of 4-24 bytes per row), then ``Mod``;
- 7 ``FeatureCross`` of two id lists, then ``Mod``;
- 7 two-dimensional ``SequenceTruncate`` (rows of 0-100 ids cut to 50), then ``Mod``;
- 3 three-dimensional ``SequenceTruncate`` (0-30 lists of 0-5 ids cut to 20 lists).

The same features run in a ``FeatureEngine`` with fusion (one engine call per op kind and step)
and without (one call per feature and op), on the same batch. Times are the median of repeats
after warm-up, with the engine's kernels on one thread (the default beside torch) and on every
core (``RECIS_ENGINE_THREADS``; the string-hash kernels run in parallel, the feature kernels are
serial). Prints one JSON object.

    python benchmarks/features.py [--batch 4096] [--repeats 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numba
import numpy as np
import torch

from recis.backends.torch.features.feature import Feature
from recis.backends.torch.ragged import RaggedTensor
from recis.features import (
    Bucketize,
    FeatureCross,
    FeatureEngine,
    Hash,
    Mod,
    SelectField,
    SelectFields,
    SequenceTruncate,
)

ID_COLUMNS = 10


def ragged(rng, rows: int, max_length: int, values, weighted=False) -> RaggedTensor:
    lengths = rng.integers(0, max_length + 1, rows)
    offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)]))
    weight = None
    if weighted:
        weight = torch.from_numpy(rng.random(int(offsets[-1]), dtype=np.float32))
    return RaggedTensor(torch.from_numpy(values(int(offsets[-1]))), [offsets], weight)


def random_ids(rng):
    return lambda n: rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)


def strings(rng, rows: int) -> RaggedTensor:
    per_row = ragged(rng, rows, 3, lambda n: np.zeros(n, np.int8))
    sizes = rng.integers(4, 25, len(per_row.values()))
    byte_offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(sizes)]))
    data = torch.from_numpy(rng.integers(-128, 128, int(byte_offsets[-1]), dtype=np.int8))
    return RaggedTensor(data, [per_row.offsets()[0], byte_offsets])


def sequences(rng, rows: int) -> RaggedTensor:
    outer = ragged(rng, rows, 30, lambda n: np.zeros(n, np.int64))
    inner = ragged(rng, len(outer.values()), 5, random_ids(rng))
    return RaggedTensor(inner.values(), [outer.offsets()[0], inner.offsets()[0]])


def make_batch(rows: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    batch = {f"ids{i}": ragged(rng, rows, 10, random_ids(rng), True) for i in range(ID_COLUMNS)}
    batch |= {
        f"dense{i}": torch.from_numpy(rng.normal(0, 100, rows).astype(np.float32))
        for i in range(10)
    }
    batch |= {f"str{i}": strings(rng, rows) for i in range(8)}
    batch |= {f"seq{i}": ragged(rng, rows, 100, random_ids(rng)) for i in range(7)}
    batch |= {f"seq3d{i}": sequences(rng, rows) for i in range(3)}
    return batch


def chain(name: str, select, *ops) -> Feature:
    feature = Feature(name).add_op(select)
    for op in ops:
        feature.add_op(op)
    return feature


def make_features() -> list[Feature]:
    edges = np.linspace(-200, 200, 8).tolist()
    features = [
        chain(f"mod{i}", SelectField(f"ids{i % ID_COLUMNS}"), Mod(1000 + i)) for i in range(15)
    ]
    features += [chain(f"bucket{i}", SelectField(f"dense{i}"), Bucketize(edges)) for i in range(10)]
    features += [
        chain(f"hash{i}", SelectField(f"str{i}"), Hash("farm" if i < 4 else "murmur"), Mod(10**6))
        for i in range(8)
    ]
    features += [
        chain(
            f"cross{i}",
            SelectFields([SelectField(f"ids{i}"), SelectField(f"ids{i + 1}")]),
            FeatureCross(),
            Mod(10**5),
        )
        for i in range(7)
    ]
    features += [
        chain(f"seq{i}", SelectField(f"seq{i}"), SequenceTruncate(50, False), Mod(10**4))
        for i in range(7)
    ]
    features += [
        chain(f"seq3d{i}", SelectField(f"seq3d{i}"), SequenceTruncate(20, False, n_dims=3))
        for i in range(3)
    ]
    return features


def median_seconds(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def compare(fused, unfused, batch: dict, rows: int, repeats: int) -> dict:
    fused_seconds = median_seconds(lambda: fused(batch), repeats)
    unfused_seconds = median_seconds(lambda: unfused(batch), repeats)
    return {
        "fused_ms": fused_seconds * 1e3,
        "unfused_ms": unfused_seconds * 1e3,
        "speedup": unfused_seconds / fused_seconds,
        "fused_samples_per_s": rows / fused_seconds,
    }


def same_results(a: dict, b: dict) -> bool:
    def parts(x):
        if isinstance(x, RaggedTensor):
            return [x.values(), *x.offsets()] + ([x.weight()] if x.weight() is not None else [])
        return [x]

    return list(a) == list(b) and all(
        all(torch.equal(p, q) for p, q in zip(parts(a[k]), parts(b[k]), strict=True)) for k in a
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    batch = make_batch(args.batch, args.seed)
    fused = FeatureEngine(make_features(), fuse=True)
    unfused = FeatureEngine(make_features(), fuse=False)
    identical = same_results(fused(batch), unfused(batch))
    threads = numba.get_num_threads()
    runs = {}
    for count in sorted({1, threads}):
        os.environ["RECIS_ENGINE_THREADS"] = str(count)
        runs[f"engine_threads_{count}"] = compare(fused, unfused, batch, args.batch, args.repeats)
    report = {
        "benchmark": "feature_engine_fused_vs_unfused",
        "batch": args.batch,
        "features": len(fused.features),
        "steps": len(fused.execution_steps),
        "results_identical": identical,
        **runs,
        "machine": {
            "cpus": os.cpu_count(),
            "numba_threads_max": threads,
            "numba_threading_layer": numba.threading_layer(),
            "load_average_1min": os.getloadavg()[0],
            "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": numba.__version__,
            "torch": torch.__version__,
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
