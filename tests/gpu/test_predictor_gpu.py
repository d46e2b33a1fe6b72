"""``Predictor(device="cuda")``: the bundle's rows live in GPU tables, the lookup runs on the
engine's GPU path, and the scores equal the CPU Predictor's (to rounding), base + delta, for a
torch and a JAX bundle."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch export needs torch")

from examples.deepfm.model import DeepFM  # noqa: E402
from recis.backends.torch.export import export_model  # noqa: E402
from recis.framework.trainer import Trainer, TrainingArguments  # noqa: E402
from recis.io import OrcDataset  # noqa: E402
from recis.nn import filter_out_sparse_param  # noqa: E402
from recis.optim import SparseAdamW  # noqa: E402
from recis.serving import Predictor  # noqa: E402
from recis.tools.synthetic import declare_columns, write_dataset  # noqa: E402

pytestmark = pytest.mark.gpu

BATCH = 64


def batches(path, output: str) -> list[dict]:
    data = OrcDataset(BATCH, output=output, transform_fn=[lambda tables: tables[0]])
    data.add_path(str(path))
    declare_columns(data)
    return list(data)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_dataset(str(root / "train"), rows=384, files=1, seed=1)
    write_dataset(str(root / "eval"), rows=128, files=1, seed=2)
    return {"train": batches(root / "train", "torch"), "eval": batches(root / "eval", "numpy")}


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_a_gpu_predictor_scores_as_the_cpu_one(cp, tmp_path, data, dtype):
    torch.manual_seed(0)
    model = DeepFM(dim=4, hidden=(16, 8))
    trainer = Trainer(
        model,
        TrainingArguments(output_dir=str(tmp_path / "run"), log_steps=1000),
        dense_optimizers=(torch.optim.AdamW(model.parameters(), lr=1e-2), None),
        sparse_optimizer=SparseAdamW(filter_out_sparse_param(model), lr=1e-2),
    )
    trainer.prepare_training()
    for batch in data["train"][:3]:
        trainer.run_step(batch)
    base = export_model(model, tmp_path / "base", data["train"][0], dtype=dtype)
    for batch in data["train"][3:]:
        trainer.run_step(batch)
    delta = export_model(model, tmp_path / "delta", data["train"][0], dtype=dtype, since=base)

    gpu = Predictor(base, device="cuda")
    gpu.apply(delta)
    cpu = Predictor(base, deltas=[delta])
    for table in gpu.embedder.tables.values():
        assert table.xp is cp and isinstance(table.gather(np.arange(2)), cp.ndarray)
    for raw in data["eval"]:
        got = gpu.predict(raw)
        assert isinstance(got, np.ndarray)
        np.testing.assert_allclose(got, cpu.predict(raw), rtol=1e-5, atol=1e-5)
    assert sum(len(t) for t in gpu.embedder.tables.values()) == sum(
        len(t) for t in cpu.embedder.tables.values()
    )


def test_a_gpu_predictor_runs_a_jax_bundle_as_the_cpu_one(cp, tmp_path, data):
    pytest.importorskip("jax", reason="the JAX export needs jax")
    import optax

    from examples.deepfm.model_jax import DeepFM as JaxDeepFM
    from recis.backends.jax import SparseOptimizer, rules
    from recis.backends.jax.export import export_model as export_jax
    from recis.backends.jax.flax import sparse_layers
    from recis.backends.jax.trainer import Trainer as JaxTrainer
    from recis.backends.jax.trainer import TrainingArguments as JaxArguments
    from recis.tools.synthetic import CATEGORICAL

    model = JaxDeepFM(dim=4, hidden=(16, 8), seed=0)
    trainer = JaxTrainer(
        model,
        JaxArguments(output_dir=str(tmp_path / "run"), log_steps=1000),
        dense_optimizer=optax.adamw(1e-2),
        sparse_optimizer=SparseOptimizer(sparse_layers(model), rules.AdamW(), 1e-2),
    )
    trainer.prepare_training()
    train = [JaxDeepFM.prepare_batch(b) for b in data["eval"]]  # any batches do
    for batch in train:
        trainer.run_step(batch)
    features = {f"{c}_{kind}": c for c in CATEGORICAL for kind in ("emb", "bias")}
    bundle = export_jax(model, tmp_path / "jax", train[0], features=features)
    gpu, cpu = Predictor(bundle, device="cuda"), Predictor(bundle)
    assert all(table.xp is cp for table in gpu.embedder.tables.values())
    for raw in data["eval"]:
        np.testing.assert_allclose(gpu.predict(raw), cpu.predict(raw), rtol=1e-5, atol=1e-5)
