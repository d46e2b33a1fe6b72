"""The torch front end on CUDA tensors: ``EmbeddingOption(device="cuda")`` layers and sparse
optimizers train like the CPU ones, run on the caller's stream, share memory with the engine over
DLPack, and keep a training step's tensors on the GPU (the profiler sees no device-to-host copy
in a step, with the engine's layers or with the Trainer)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch front end needs torch")

from recis.backends.torch.embedding import DynamicEmbedding  # noqa: E402
from recis.backends.torch.initializers import NormalInitializer, UniformInitializer  # noqa: E402
from recis.core.cuda import loader, memory  # noqa: E402
from recis.nn import EmbeddingEngine, EmbeddingOption, HashTable, filter_out_sparse_param  # noqa: E402
from recis.nn.functional import as_engine, as_tensor  # noqa: E402
from recis.nn.hashtable_hook import AdmitHook, FilterHook  # noqa: E402
from recis.optim import SparseAdamW  # noqa: E402
from recis.ragged import RaggedTensor  # noqa: E402

pytestmark = pytest.mark.gpu

CLOSE = {"rtol": 1e-5, "atol": 1e-6}
BATCH, STEPS = 64, 4


@pytest.fixture
def cuda(cp):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA build of torch")
    return torch.device("cuda")


def options(device, policies: bool = True) -> dict[str, EmbeddingOption]:
    """Three features: two sharing a physical table, one ragged, weighted and tiled in a table
    with frequency admission and LRU eviction (unless not ``policies``)."""
    normal = NormalInitializer(std=0.1)
    hooks = {
        "admit_hook": AdmitHook("Frequency", {"threshold": 2}),
        "filter_hook": FilterHook("LRU", {"max_size": 150}),
    }
    return {
        "user": EmbeddingOption(
            embedding_dim=8, shared_name="user", initializer=normal, device=device
        ),
        "item": EmbeddingOption(
            embedding_dim=8, shared_name="item", combiner="mean", initializer=normal,
            device=device,
        ),
        "tags": EmbeddingOption(
            embedding_dim=4, shared_name="tags", combiner="tile",
            combiner_kwargs={"tile_len": 3}, initializer=UniformInitializer(-0.1, 0.1),
            device=device, **(hooks if policies else {}),
        ),
    }  # fmt: skip


def batches(seed: int = 0) -> list[dict]:
    """CPU batches: dense user and item ids, weighted ragged tags."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(STEPS):
        lengths = rng.integers(0, 5, BATCH)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        tags = RaggedTensor(
            torch.from_numpy(rng.integers(0, 300, offsets[-1])),
            [torch.from_numpy(offsets)],
            torch.from_numpy(rng.random(offsets[-1]).astype(np.float32)),
        )
        out.append(
            {
                "user": torch.from_numpy(rng.integers(-(2**62), 2**62, (BATCH, 1))),
                "item": torch.from_numpy(rng.integers(0, 500, (BATCH, 2))),
                "tags": tags,
            }
        )
    return out


def to_device(batch: dict, device) -> dict:
    return {name: value.to(device) for name, value in batch.items()}


class Trainer:
    """An EmbeddingEngine trained by SparseAdamW on an elementwise loss, so that the gradients
    reaching the tables do not depend on reduction order."""

    def __init__(self, device, policies: bool = True) -> None:
        self.engine = EmbeddingEngine(options(device, policies))
        self.optimizer = SparseAdamW(filter_out_sparse_param(self.engine), lr=0.05)

    def step(self, batch: dict) -> tuple[torch.Tensor, dict]:
        out = self.engine(batch)
        loss = sum(((out[f] - 0.25) ** 2).sum() for f in ("user", "item", "tags"))
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        return loss.detach(), out

    def tables(self) -> dict[str, dict]:
        return {n: t.table.state_dict() for n, t in filter_out_sparse_param(self.engine).items()}


def run(trainer: Trainer, data: list[dict], device) -> tuple[np.ndarray, dict]:
    """Train on ``data``; the losses and the last activations, on the host."""
    losses, out = [], {}
    for batch in data:
        loss, out = trainer.step(to_device(batch, device))
        losses.append(loss)
    activations = {name: value.detach().cpu().numpy() for name, value in out.items()}
    return torch.stack(losses).cpu().numpy(), activations


def train(device, data: list[dict]) -> tuple[np.ndarray, dict, dict]:
    trainer = Trainer(device)
    return (*run(trainer, data, device), trainer.tables())


def assert_same_training(got, want, **close) -> None:
    (got_losses, got_out, got_tables), (want_losses, want_out, want_tables) = got, want
    np.testing.assert_allclose(got_losses, want_losses, **close)
    for name, value in want_out.items():
        np.testing.assert_allclose(got_out[name], value, err_msg=name, **close)
    assert sorted(got_tables) == sorted(want_tables)
    for table, state in want_tables.items():
        for name, value in state.items():
            if value.dtype.kind == "f":
                np.testing.assert_allclose(got_tables[table][name], value, err_msg=name, **close)
            elif not name.startswith("admission."):  # the admission map is in slot order
                np.testing.assert_array_equal(got_tables[table][name], value, err_msg=name)


def test_training_on_cuda_equals_training_on_the_cpu(cuda):
    data = batches()
    assert_same_training(train(cuda, data), train("cpu", data), **CLOSE)


def test_a_side_stream_runs_every_kernel_and_gives_the_same_results(cp, cuda, monkeypatch):
    data = batches(1)
    on_default = train(cuda, data)
    trainer, streams, launch = Trainer(cuda), [], loader.launch

    def recording_launch(kernel, n, *args, **kwargs):
        if n > 0:
            streams.append(cp.cuda.get_current_stream().ptr)
        return launch(kernel, n, *args, **kwargs)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with monkeypatch.context() as patch, torch.cuda.stream(side):
        patch.setattr(loader, "launch", recording_launch)
        losses, activations = run(trainer, data, cuda)
    torch.cuda.current_stream().wait_stream(side)
    assert streams and set(streams) == {side.cuda_stream}
    on_side = (losses, activations, trainer.tables())
    assert_same_training(on_side, on_default, rtol=1e-6, atol=1e-7)


def test_a_step_on_a_side_stream_runs_while_the_default_stream_is_busy(cp, cuda):
    """Tables made and trained on a side stream take their memory from torch's pool on that
    stream and never wait for the default stream, which is busy all the while."""
    data = batches(2)
    reference = Trainer(cuda, policies=False)
    want = run(reference, data, cuda)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    torch.cuda._sleep(2_000_000_000)  # about a second of GPU time on the default stream
    busy = torch.cuda.Event()
    busy.record()
    with torch.cuda.stream(side):
        trainer = Trainer(cuda, policies=False)
        got = run(trainer, data, cuda)  # reads its results back on the side stream only
    assert not busy.query(), "the side stream's step waited for the default stream"
    assert memory.shared_pool() == "torch"
    torch.cuda.synchronize()
    assert_same_training((*got, trainer.tables()), (*want, reference.tables()), **CLOSE)


WAITS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def host_waits(prof, path) -> list[str]:
    """Every device-to-host memcpy (with its bytes) and every call that waits for the device
    (from any library: CuPy's and Thrust's too) that the profiler saw."""
    prof.export_chrome_trace(str(path))
    found = []
    for event in json.loads(path.read_text())["traceEvents"]:
        name = event.get("name", "")
        if event.get("cat") == "gpu_memcpy" and "DtoH" in name:
            found.append(f"{name}: {event.get('args', {}).get('bytes', '?')} bytes")
        elif any(wait in name for wait in WAITS):
            found.append(name)
    return found


def profiled(fn, path) -> list[str]:
    """:func:`host_waits` of ``fn()`` (the device is synchronised after the profile)."""
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as prof:
        fn()
    torch.cuda.synchronize()
    return host_waits(prof, path)


def test_a_training_step_copies_nothing_to_the_host(cuda, tmp_path):
    """Tables without admission and eviction policies are sync-free; the second and third steps
    meet new ids and ids already there."""
    trainer, data = Trainer(cuda, policies=False), [to_device(b, cuda) for b in batches(2)]
    assert all(t.sync_free for t in filter_out_sparse_param(trainer.engine).values())
    _, out = trainer.step(data[0])  # compiles the kernels, fills the memory pools
    torch.cuda.synchronize()
    activation = out["item"].detach()
    control = profiled(lambda: activation.cpu(), tmp_path / "control.json")
    assert any(f"{activation.nbytes} bytes" in c for c in control), control
    assert profiled(torch.cuda.synchronize, tmp_path / "wait.json"), "the profiler missed a wait"
    for batch in data[1:3]:
        assert profiled(lambda b=batch: trainer.step(b), tmp_path / "step.json") == []
    cpu = Trainer("cpu", policies=False)
    for batch in data[:3]:
        cpu.step(to_device(batch, "cpu"))
    assert_same_training(
        (np.zeros(1), {}, trainer.tables()), (np.zeros(1), {}, cpu.tables()), **CLOSE
    )


def test_tensors_reach_the_engine_and_come_back_without_copies(cp, cuda):
    ids = torch.arange(12).reshape(3, 4).to(cuda)
    view = as_engine(ids, "ids")
    assert isinstance(view, cp.ndarray) and view.data.ptr == ids.data_ptr()
    back = as_tensor(view)
    assert back.is_cuda and back.data_ptr() == ids.data_ptr()
    ragged = RaggedTensor(torch.arange(5), [torch.tensor([0, 2, 5])], torch.ones(5)).to(cuda)
    engine = ragged.to_engine()
    assert engine.values.data.ptr == ragged.values().data_ptr()
    assert engine.offsets[0].data.ptr == ragged.offsets()[0].data_ptr()
    assert engine.weights.data.ptr == ragged.weight().data_ptr()
    dense = ragged.to_dense(-1)
    assert dense.is_cuda and dense.tolist() == [[0, 1, -1], [2, 3, 4]]


def test_hash_tables_and_dynamic_embeddings_on_cuda_equal_the_cpu(cuda):
    ids = torch.tensor([[5, -(2**63), 5], [2**63 - 1, 0, 7]])
    ragged = RaggedTensor(torch.tensor([3, 9, 9, 4]), [torch.tensor([0, 3, 3, 4])])
    results = {}
    for device in ("cpu", cuda):
        table = HashTable([-1, 6], name="h", device=device, initializer=NormalInitializer())
        option = EmbeddingOption(
            embedding_dim=6, shared_name="d", combiner="tile", combiner_kwargs={"tile_len": 2},
            initializer=NormalInitializer(), device=device,
        )  # fmt: skip
        out = table(ids.to(device)), DynamicEmbedding(option)(ragged.to(device))
        assert all(o.is_cuda == (device != "cpu") for o in out)
        results[str(device)] = [o.detach().cpu().numpy() for o in out]
    for got, want in zip(results["cuda"], results["cpu"], strict=True):
        np.testing.assert_allclose(got, want, **CLOSE)


def test_cuda_tables_take_host_ids_by_moving_them(cuda):
    table = HashTable([-1, 2], name="gpu_table", device=cuda, initializer=NormalInitializer())
    ids = torch.tensor([1, 2, 1])
    from_host, from_device = table(ids), table(ids.to(cuda))
    assert from_host.is_cuda and torch.equal(from_host, from_device)


class ClickModel(torch.nn.Module):
    """The three features into a linear layer; the loss is the mean softplus of its output."""

    def __init__(self, device) -> None:
        super().__init__()
        self.engine = EmbeddingEngine(options(device, policies=False))
        self.dense = torch.nn.Linear(8 + 8 + 12, 1).to(device)

    def forward(self, batch: dict) -> torch.Tensor:
        out = self.engine(batch)
        tags = out["tags"].reshape(out["user"].shape[0], -1)
        features = torch.cat([out["user"].reshape(tags.shape[0], -1), out["item"], tags], 1)
        return torch.nn.functional.softplus(self.dense(features)).mean()


def test_a_trainer_step_copies_only_the_finiteness_flag_to_the_host(cuda, tmp_path):
    from recis.backends.torch.trainer import Trainer as FrameworkTrainer
    from recis.backends.torch.trainer import TrainingArguments

    model = ClickModel(cuda)
    trainer = FrameworkTrainer(
        model,
        TrainingArguments(output_dir=str(tmp_path / "run"), save_steps=0),
        dense_optimizers=(torch.optim.Adam(model.dense.parameters()), None),
        sparse_optimizer=SparseAdamW(filter_out_sparse_param(model), lr=0.05),
        data_to_cuda=True,
    )
    data = batches(3)
    trainer.run_step(data[0])  # compiles the kernels, fills the memory pools
    torch.cuda.synchronize()
    metrics = []
    waits = profiled(lambda: metrics.append(trainer.run_step(data[1])), tmp_path / "step.json")
    # the batch goes to the GPU; only the non-finite guard's one flag (1 byte) comes back
    copies = [w for w in waits if "DtoH" in w]
    assert len(copies) == 1 and copies[0].endswith(": 1 bytes"), waits
    loss = metrics[0]["loss"]
    assert isinstance(loss, torch.Tensor) and loss.is_cuda and torch.isfinite(loss)


def test_auroc_counts_gpu_predictions_on_the_gpu_like_the_cpu(cuda, tmp_path):
    from recis.metrics import AUROC

    rng = np.random.default_rng(5)
    on_cpu, on_gpu = AUROC(num_thresholds=50), AUROC(num_thresholds=50).to(cuda)
    for _ in range(3):
        predictions = torch.from_numpy(rng.random(1000).astype(np.float32))
        labels = torch.from_numpy(rng.integers(0, 2, 1000))
        want = on_cpu(predictions, labels)
        got = on_gpu(predictions.to(cuda), labels.to(cuda))
        assert got.is_cuda and abs(got.item() - want.item()) < 1e-6
    assert abs(on_gpu.compute().item() - on_cpu.compute().item()) < 1e-6
    batch = (predictions.to(cuda), labels.to(cuda))
    torch.cuda.synchronize()
    assert profiled(lambda: (on_gpu.update(*batch), on_gpu.compute()), tmp_path / "auc.json") == []
    on_gpu.update(torch.tensor([float("nan")], device=cuda), torch.tensor([1], device=cuda))
    assert torch.isnan(on_gpu.compute())
