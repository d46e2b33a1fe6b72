"""Device work per training step does not grow with the number of features of a merged table:
the JAX front end's step on GPU tables, with its kernel launches counted by the loader (and, on
the host stand-in, CuPy's own operations too)."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the step is driven by the JAX front end")
pytest.importorskip("optax", reason="the JAX front end needs optax")

from recis.backends.jax import Embedder, EmbeddingOption  # noqa: E402
from recis.backends.jax.optim import SparseOptimizer, rules  # noqa: E402
from recis.core.cuda import loader  # noqa: E402

pytestmark = pytest.mark.gpu
IDS = 1536  # ids per step, over all features


def step_counts(cp, features: int) -> tuple[int, int]:
    """(engine kernels, CuPy operations or 0 on a GPU) of the third step over ``features``
    features of dim 8 sharing one physical table, one new id per row, :data:`IDS` ids in all (the
    radix sorts' passes depend on that count)."""
    rows = IDS // features
    names = [f"f{k}" for k in range(features)]
    embedder = Embedder({n: EmbeddingOption(8, shared_name=n, device="cuda") for n in names})
    optimizer = SparseOptimizer(embedder, rules.Adam(), learning_rate=0.01)
    assert len({id(t) for t in embedder.tables.values()}) == 1
    rng = np.random.default_rng(0)
    grads = {n: cp.ones((rows, 8), np.float32) for n in names}
    counting = getattr(cp, "counting", None)
    for step in range(3):
        ids = rng.choice(10**9, (features, rows, 1), replace=False)  # all new: equal growth
        batch = {n: cp.asarray(ids[k]) for k, n in enumerate(names)}
        with loader.counting_launches() as ours:
            if counting is not None and step == 2:
                with counting() as device:
                    _, context = embedder.lookup(batch)
                    embedder.apply_gradients(context, grads)
                    optimizer.step()
            else:
                _, context = embedder.lookup(batch)
                embedder.apply_gradients(context, grads)
                optimizer.step()
    cupy_operations = (
        0 if counting is None else sum(n for (kind, _), n in device.items() if kind == "cupy")
    )
    return sum(ours.values()), cupy_operations


def test_a_steps_device_work_does_not_grow_with_the_features_of_a_table(cp):
    few, many = step_counts(cp, 2), step_counts(cp, 12)
    assert few[0] > 0
    assert many == few


def test_the_deepfm_step_launches_at_most_20_kernels_per_merged_table(cp):
    if not hasattr(cp, "counting"):
        pytest.skip("counting CuPy's own operations needs the host stand-in (--cupy-standin)")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    try:
        import gpu_launches
    finally:
        sys.path.pop(0)
    report = gpu_launches.measure(batch_size=256, warmup=2)
    assert report["merged_tables"] == 2
    assert report["kernels_per_merged_table"] <= 20
    assert sum(report["kernels_per_merged_table_by_stage"].values()) == pytest.approx(
        report["kernels_per_merged_table"]
    )
