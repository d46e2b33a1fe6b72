"""The CUDA sources and their loader, checked without a GPU: every ``cuda/*.cu`` and ``*.cuh``
compiles with nvcc, the loader finds, compiles (through CuPy, faked here) and launches them as
documented, and a built wheel carries them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from recis.core.cuda import loader, streams
from recis.core.id_map import IdMap

ROOT = Path(__file__).resolve().parents[2]
CUDA_DIR = ROOT / "cuda"
SOURCES = sorted(p.name for p in CUDA_DIR.glob("*.cu"))
HEADERS = sorted(p.name for p in CUDA_DIR.glob("*.cuh"))


@pytest.fixture(scope="module")
def nvcc_results(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """nvcc's verdict on every source (the text the loader hands to CuPy) and header (through a
    file that includes it), compiled as device code to a cubin, as NVRTC and the driver do at
    run time."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("compiling the CUDA sources needs nvcc (the CUDA compiler) on PATH")
    work = tmp_path_factory.mktemp("nvcc")
    inputs = {name: work / name for name in SOURCES}
    for name in SOURCES:
        inputs[name].write_text(loader._read_source(name))
    for header in HEADERS:
        inputs[header] = work / f"include_{header}.cu"
        inputs[header].write_text(f'#include "{header}"\n')

    def compile_one(name: str) -> subprocess.CompletedProcess:
        command = [nvcc, "-std=c++17", "-arch=sm_90", f"-I{CUDA_DIR}", "-cubin"]
        command += [str(inputs[name]), "-o", str(work / f"{name}.cubin")]
        return subprocess.run(command, capture_output=True, text=True)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(inputs, pool.map(compile_one, inputs), strict=True))


def test_the_hash_table_sources_are_there():
    assert {"id_map.cu", "dedupe.cu"} <= set(SOURCES) and "common.cuh" in HEADERS


@pytest.mark.slow
@pytest.mark.parametrize("name", SOURCES + HEADERS)
def test_compiles_with_nvcc(nvcc_results, name):
    result = nvcc_results[name]
    assert result.returncode == 0, result.stderr


def test_loader_finds_the_sources():
    assert loader.source_dir() == CUDA_DIR.resolve()
    for name in SOURCES:
        code = loader._read_source(name)
        assert code.startswith("// headers ") and code.endswith((CUDA_DIR / name).read_text())
    with pytest.raises(FileNotFoundError, match=r"'missing\.cu' not found"):
        loader._read_source("missing.cu")


def test_wheel_carries_the_sources(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")
    shutil.copytree(ROOT / "recis", project / "recis", symlinks=True, ignore=ignore)
    shutil.copytree(CUDA_DIR, project / "cuda")
    command = [sys.executable, "-m", "pip", "wheel", str(project), "--no-deps"]
    command += ["--no-build-isolation", "--quiet", "-w", str(tmp_path / "dist")]
    subprocess.run(command, check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("recis-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    for name in SOURCES + HEADERS:
        assert f"recis/core/cuda/src/{name}" in shipped


class FakeCupy(SimpleNamespace):
    """The part of CuPy the loader uses, recording what it is asked."""

    def __init__(self):
        super().__init__(compiled=[], launches=[], device=0, entered=[], fails=None)
        self.cuda = SimpleNamespace(
            runtime=SimpleNamespace(
                getDevice=lambda: self.device,
                getDeviceProperties=lambda device: {"multiProcessorCount": 4 + device},
            ),
            ExternalStream=self._external_stream,
        )
        self.RawModule = self._raw_module

    def _raw_module(self, code, options):
        fake = self
        if self.fails is not None:
            raise self.fails

        class Module:
            def compile(self):
                fake.compiled.append((code, options))

            def get_function(self, name):
                return lambda grid, block, args, shared_mem: fake.launches.append(
                    (name, grid, block, args, shared_mem)
                )

        return Module()

    def _external_stream(self, ptr):
        fake = self

        class Stream:
            def __enter__(self):
                fake.entered.append(ptr)

            def __exit__(self, *exc):
                fake.entered.append(-ptr)

        return Stream()


@pytest.fixture
def fake_cupy(monkeypatch):
    fake = FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(loader, "_modules", {})
    monkeypatch.setattr(loader, "_kernels", {})
    loader._multiprocessors_of.cache_clear()
    yield fake
    loader._multiprocessors_of.cache_clear()


def test_module_compiles_once_per_source_options_and_device(fake_cupy):
    first = loader.module("id_map.cu")
    assert loader.module("id_map.cu") is first
    assert len(fake_cupy.compiled) == 1
    code, options = fake_cupy.compiled[0]
    assert code.endswith((CUDA_DIR / "id_map.cu").read_text())
    assert options == ("-std=c++17", "--fmad=false", f"-I{CUDA_DIR.resolve()}")
    loader.module("id_map.cu", ("-DEXTRA=1",))
    fake_cupy.device = 1
    loader.module("id_map.cu")
    assert len(fake_cupy.compiled) == 3 and fake_cupy.compiled[1][1][-1] == "-DEXTRA=1"


def test_kernels_are_cached_and_launched_over_a_capped_grid(fake_cupy):
    find = loader.kernel("id_map.cu", "id_map_find")
    assert loader.kernel("id_map.cu", "id_map_find") is find
    loader.launch(find, 1000, ("args",))
    loader.launch(find, 10**9, ("args",), block=128, shared_mem=64)
    loader.launch(find, 0, ("args",))
    assert fake_cupy.launches == [
        ("id_map_find", (4,), (256,), ("args",), 0),
        ("id_map_find", (4 * loader.MAX_BLOCKS_PER_SM,), (128,), ("args",), 64),
    ]


@pytest.mark.parametrize(
    ("message", "why", "fix"),
    [
        ("CompileException: catastrophic error: cannot open source file \"cuda_fp16.h\"",
         "cannot find the CUDA headers", "recis\\[cuda12\\].*CUDA_PATH"),
        ("CUDADriverError: CUDA_ERROR_UNSUPPORTED_PTX_VERSION: the provided PTX was compiled "
         "with an unsupported toolchain", "driver is older", "update the driver"),
        ("CUDADriverError: CUDA_ERROR_NO_BINARY_FOR_GPU: no kernel image is available",
         "no kernel image for this GPU", "recis\\[cuda13\\]"),
    ],
)  # fmt: skip
def test_build_failures_say_what_to_install(fake_cupy, message, why, fix):
    fake_cupy.fails = RuntimeError(message)
    with pytest.raises(loader.KernelBuildError, match=f"cuda/dedupe.cu: .*{why}.*{fix}"):
        loader.module("dedupe.cu")


def test_sources_are_read_as_utf8_whatever_the_locale(tmp_path):
    script = "from recis.core.cuda import loader; [loader._read_source(s) for s in %r]"
    environment = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "PYTHONUTF8": "0"}
    environment["PYTHONCOERCECLOCALE"] = "0"
    environment["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-c", script % (SOURCES,)]
    subprocess.run(command, env=environment, check=True, capture_output=True, cwd=tmp_path)
    assert any(not (CUDA_DIR / s).read_bytes().isascii() for s in SOURCES)  # a test that can fail


def test_without_cupy_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(ImportError, match=r"'dedupe\.cu' needs CuPy: pip install 'recis\[cuda\]'"):
        loader.module("dedupe.cu")
    with pytest.raises(ImportError, match="external CUDA stream needs CuPy"), streams.on_stream(0):
        pass
    with pytest.raises(ImportError, match=r"IdMap 'user' on cuda needs CuPy: .*recis\[cuda\]"):
        IdMap("user", device="cuda")


def test_id_maps_live_on_cpu_or_cuda():
    with pytest.raises(ValueError, match="IdMap 'user': device must be 'cpu' or 'cuda', got 'tpu'"):
        IdMap("user", device="tpu")


def test_on_stream_makes_the_callers_stream_current(fake_cupy):
    with streams.on_stream(1234):
        assert fake_cupy.entered == [1234]
    assert fake_cupy.entered == [1234, -1234]
    with pytest.raises(TypeError, match="stream_ptr must be"), streams.on_stream("default"):
        pass
