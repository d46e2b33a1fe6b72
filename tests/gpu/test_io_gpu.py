"""Batches straight to the GPU: ``device="cuda"`` batches equal the CPU ones and live on the
current GPU, ``device="pin"`` batches live in pinned memory, and a consumer working on a stream of
its own reads every batch complete (its stream waits for the side-stream copy)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.orc as orc
import pytest

from recis.io import OrcDataset

pytestmark = pytest.mark.gpu

torch = pytest.importorskip("torch", reason="device='pin' and 'cuda' batches are torch tensors")

ROWS = 3000


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Three ORC files of 1000 rows with dense, ragged, 3-D, weighted and string columns."""
    rng = np.random.default_rng(0)
    directory = tmp_path_factory.mktemp("orc")
    for part, first in enumerate(range(0, ROWS, 1000)):
        rows = list(zip(range(first, first + 1000), rng.integers(0, 4, 1000), strict=True))
        table = pa.table(
            {
                "row": pa.array(np.arange(first, first + 1000)),
                "label": pa.array(rng.random(1000)),
                "ids": pa.array([list(range(r, r + n)) for r, n in rows]),
                "seq": pa.array([[[r] * (k % 3) for k in range(n)] for r, n in rows]),
                "kv": pa.array([[{"k": r + k, "v": k / 2} for k in range(n)] for r, n in rows]),
                "name": pa.array([f"n{r}" for r, _ in rows]),
                "dense": pa.array([[r, -r] for r, _ in rows], pa.list_(pa.float32())),
            }
        )
        orc.write_table(table, str(directory / f"part-{part}.orc"), stripe_size=64 << 10)
    return directory


@pytest.fixture
def cuda_torch():
    if not torch.cuda.is_available():
        pytest.skip("GPU batches need a CUDA build of torch (this torch sees no CUDA device)")
    return torch


def dataset(directory, device: str, varlen=("row", "ids", "seq", "kv", "name"), **options):
    data = OrcDataset(
        256, read_threads_num=2, device=device, transform_fn=lambda t: t[0], **options
    )
    data.add_path(str(directory))
    for name in varlen:
        data.varlen_feature(name)
    data.fixedlen_feature("label", [0.0])
    data.fixedlen_feature("dense", [0.0, 0.0])
    return data


def parts(value) -> list:
    """The tensors (or host arrays) of a batch value, in a fixed order."""
    if isinstance(value, np.ndarray | torch.Tensor):
        return [value]
    weight = [] if value.weight() is None else [value.weight()]
    return [value.values(), *value.offsets(), *weight]


def assert_same_batches(got: list, want: list, check) -> None:
    assert len(got) == len(want) == -(-ROWS // 256)
    for number, (batch, expected) in enumerate(zip(got, want, strict=True)):
        assert batch.keys() == expected.keys()
        for name in batch:
            for a, b in zip(parts(batch[name]), parts(expected[name]), strict=True):
                if isinstance(b, np.ndarray):  # strings stay on the host
                    assert isinstance(a, np.ndarray) and a.tolist() == b.tolist(), name
                    continue
                check(a, name)
                assert torch.equal(a.cpu(), b), f"batch {number}, column {name}"


@pytest.mark.parametrize("prefetch", [0, 2])
def test_cuda_batches_equal_the_cpu_ones_on_the_current_gpu(cuda_torch, data_dir, prefetch):
    device = torch.device("cuda", torch.cuda.current_device())

    def on_gpu(tensor, name):
        assert tensor.device == device, name

    want = list(dataset(data_dir, "cpu"))
    assert_same_batches(list(dataset(data_dir, "cuda", prefetch=prefetch)), want, on_gpu)


def test_pinned_batches_equal_the_cpu_ones(cuda_torch, data_dir):
    def pinned(tensor, name):
        assert tensor.device.type == "cpu" and tensor.is_pinned(), name

    assert_same_batches(list(dataset(data_dir, "pin")), list(dataset(data_dir, "cpu")), pinned)


def test_a_consumer_on_its_own_busy_stream_reads_complete_batches(cuda_torch, data_dir):
    want = [batch["ids"].values().sum() for batch in dataset(data_dir, "cpu")]
    stream = torch.cuda.Stream()
    sums = []
    with torch.cuda.stream(stream):
        for batch in dataset(data_dir, "cuda", prefetch=3):
            torch.cuda._sleep(2_000_000)  # keeps the consumer's stream busy while copies run
            values = batch["ids"].values()
            sums.append(values.sum())
            del batch, values  # freed while the stream may still read them: record_stream's job
    stream.synchronize()
    assert [int(s) for s in sums] == [int(s) for s in want]


def test_sparse_batches_reach_the_gpu(cuda_torch, data_dir):
    got = next(iter(dataset(data_dir, "cuda", ["ids"], ragged_format=False)))["ids"]
    want = next(iter(dataset(data_dir, "cpu", ["ids"], ragged_format=False)))["ids"]
    assert got.is_cuda and got.is_sparse
    assert torch.equal(got.cpu().to_dense(), want.to_dense())


def test_transform_thread_gpu_work_reaches_the_consumer_through_an_event(cuda_torch, data_dir):
    """With ``prefetch_transform``, the user's GPU work runs on the transform thread's own
    stream, late (behind a long kernel); a consumer on a stream of its own reads every result
    complete, and nothing makes the host wait for the transform stream."""
    want = [2 * int(batch["ids"].values().sum()) for batch in dataset(data_dir, "cpu")]
    streams = []

    def doubled_ids(tables):
        streams.append(torch.cuda.current_stream())
        torch.cuda._sleep(50_000_000)  # the result below is written late on this stream
        return [tables[0] | {"twice": tables[0]["ids"].values() * 2}]

    data = dataset(data_dir, "cuda", prefetch=2, prefetch_transform=2)
    data.map(doubled_ids)
    consumer = torch.cuda.Stream()
    sums = []
    with torch.cuda.stream(consumer):
        for batch in data:
            sums.append(batch["twice"].sum())
            del batch  # freed while the consumer's stream may still read it
        transform_done = streams[-1].query()
    consumer.synchronize()
    assert not transform_done, "the host waited for the transform stream"
    assert [int(total) for total in sums] == want
    [own] = {stream.cuda_stream for stream in streams}  # one stream for every batch
    assert own not in (consumer.cuda_stream, torch.cuda.default_stream().cuda_stream)
    assert streams[0].device == torch.device("cuda", torch.cuda.current_device())
