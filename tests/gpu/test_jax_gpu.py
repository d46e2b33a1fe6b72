"""The JAX front end on the GPU: an ``Embedder`` of ``EmbeddingOption(device="cuda")`` tables
takes JAX GPU arrays, returns JAX GPU activations and trains like the CPU one; the arrays cross
over DLPack without copies."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the JAX front end needs jax")
pytest.importorskip("optax", reason="the JAX front end needs optax")

from recis.backends.jax import Embedder, EmbeddingOption  # noqa: E402
from recis.backends.jax.optim import SparseOptimizer, rules  # noqa: E402
from recis.core.arrays import as_engine_array  # noqa: E402
from recis.core.initializers import NormalInitializer  # noqa: E402
from recis.core.ragged import Ragged  # noqa: E402

pytestmark = pytest.mark.gpu

CLOSE = {"rtol": 1e-5, "atol": 1e-6}
BATCH = 32


@pytest.fixture
def gpu(cp):
    try:
        return jax.devices("gpu")[0]
    except RuntimeError as error:
        pytest.skip(f"needs a CUDA build of jax ({error})")


def options(device) -> dict[str, EmbeddingOption]:
    normal = NormalInitializer(std=0.1)
    return {
        "user": EmbeddingOption(embedding_dim=8, shared_name="user", initializer=normal,
                                device=device),
        "item": EmbeddingOption(embedding_dim=8, shared_name="item", combiner="mean",
                                initializer=normal, device=device),
        "tags": EmbeddingOption(embedding_dim=4, shared_name="tags", combiner="tile",
                                combiner_kwargs={"tile_len": 2}, initializer=normal,
                                grad_reduce_by="id", device=device),
    }  # fmt: skip


def batches(steps: int = 3) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(steps):
        lengths = rng.integers(0, 4, BATCH)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        tags = (rng.integers(0, 50, offsets[-1]), offsets, rng.random(offsets[-1], np.float32))
        out.append(
            {
                "user": rng.integers(-(2**62), 2**62, (BATCH, 1)),
                "item": rng.integers(0, 100, (BATCH, 3)),
                "tags": tags,
            }
        )
    return out


def on_device(cp, batch: dict, gpu) -> dict:
    """The batch on ``gpu``: item ids as a JAX array (int32, as JAX keeps integers unless x64
    is enabled), user ids (full int64) as a CuPy array, tags as a CuPy Ragged; host arrays and
    a NumPy Ragged for the CPU (``gpu`` None)."""
    values, offsets, weights = batch["tags"]
    if gpu is None:
        return {"user": batch["user"], "item": batch["item"], "tags": Ragged(*batch["tags"])}
    return {
        "user": cp.asarray(batch["user"]),
        "item": jax.device_put(batch["item"].astype(np.int32), gpu),
        "tags": Ragged(cp.asarray(values), cp.asarray(offsets), cp.asarray(weights)),
    }


def train(cp, gpu, device: str, data: list[dict]):
    """Lookups, gradients from a jitted loss of the activations, AdamW steps; the losses, the
    last activations and the tables' states."""
    embedder = Embedder(options(device))
    optimizer = SparseOptimizer(embedder, rules.AdamW(), learning_rate=0.05)
    grad_fn = jax.jit(jax.value_and_grad(_loss))
    losses, host = [], {}
    for batch in data:
        out, context = embedder.lookup(on_device(cp, batch, gpu), batch_size=BATCH + 8)
        if gpu is not None:
            assert all(a.devices() == {gpu} for a in out.values())
        loss, grads = grad_fn(out)
        embedder.apply_gradients(context, grads)
        optimizer.step()
        losses.append(float(loss))
        host = {f: np.asarray(a) for f, a in out.items()}
    return np.array(losses), host, {n: t.state_dict() for n, t in embedder.tables.items()}


def _loss(out: dict):
    return sum(((a - 0.25) ** 2).sum() for a in out.values())


def test_embedder_on_cuda_equals_the_cpu_embedder(cp, gpu):
    data = batches()
    got, want = train(cp, gpu, "cuda", data), train(cp, None, "cpu", data)
    np.testing.assert_allclose(got[0], want[0], **CLOSE)
    for feature, value in want[1].items():
        np.testing.assert_allclose(got[1][feature], value, err_msg=feature, **CLOSE)
    assert sorted(got[2]) == sorted(want[2])
    for table, state in want[2].items():
        for name, value in state.items():
            if value.dtype.kind == "f":
                np.testing.assert_allclose(got[2][table][name], value, err_msg=name, **CLOSE)
            else:
                np.testing.assert_array_equal(got[2][table][name], value, err_msg=name)


def test_gpu_arrays_cross_into_the_engine_and_out_without_copies(cp, gpu):
    ids = jax.device_put(np.arange(16, dtype=np.int32).reshape(4, 4), gpu)
    view = as_engine_array(ids, "ids")
    assert isinstance(view, cp.ndarray)
    assert view.data.ptr == ids.unsafe_buffer_pointer()
    embedder = Embedder({"f": EmbeddingOption(embedding_dim=16, shared_name="f", device="cuda")})
    out, _ = embedder.lookup({"f": ids}, train=False)
    assert out["f"].devices() == {gpu}
    np.testing.assert_array_equal(np.asarray(out["f"]), np.zeros((4, 16), np.float32))
    exported = jax.dlpack.from_dlpack(cp.arange(8, dtype=cp.float32))
    assert exported.devices() == {gpu} and np.asarray(exported).tolist() == list(range(8))
