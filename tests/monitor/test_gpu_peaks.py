"""recis.monitor.gpuinfo_inquirer: device names to datasheet peaks; no GPU, no peak."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from recis.monitor import gpuinfo_inquirer as gpuinfo
from recis.monitor.gpuinfo_inquirer import GpuDevice, GpuInfoInquirer, GpuVendor, Precision


def inquirer_of(*names, monkeypatch):
    fake_cuda = SimpleNamespace(
        is_available=lambda: bool(names),
        device_count=lambda: len(names),
        get_device_name=lambda i: names[i],
        get_device_properties=lambda i: SimpleNamespace(total_memory=80 * 2**30),
    )
    monkeypatch.setattr(gpuinfo, "torch", SimpleNamespace(cuda=fake_cuda))
    return GpuInfoInquirer()


@pytest.mark.parametrize(
    ("name", "vendor", "precision", "peak"),
    [
        ("NVIDIA A100-SXM4-80GB", GpuVendor.NVIDIA, Precision.bf16, 312.0),
        ("NVIDIA H100 SXM5 80GB", GpuVendor.NVIDIA, Precision.fp32, 67.0),
        ("Tesla T4", GpuVendor.NVIDIA, Precision.fp16, 65.0),
        ("NVIDIA L20", GpuVendor.NVIDIA, Precision.int8, 239.0),
        ("AMD Instinct MI308X", GpuVendor.AMD, Precision.bf16, 653.7),
        ("PPU-ZW810E", GpuVendor.PPU, Precision.fp32, 44.0),
    ],
)
def test_peaks_of_known_devices(name, vendor, precision, peak, monkeypatch):
    inquirer = inquirer_of(name, monkeypatch=monkeypatch)
    assert inquirer.devices == [GpuDevice(0, name, vendor, 80 * 1024)]
    assert inquirer.get_peak_tflops(0, precision) == peak


def test_the_longest_contained_model_wins():
    # "A100" also contains "A10": the longer model name is the device's
    table = gpuinfo.PEAK_TFLOPS[GpuVendor.NVIDIA]
    assert gpuinfo._model_in_table("A100 80GB PCIe", table) == "A100"
    assert gpuinfo._model_in_table("A10", table) == "A10"


def test_unknown_models_precisions_and_indices_have_no_peak(monkeypatch, capsys):
    inquirer = inquirer_of("NVIDIA V100-SXM2", monkeypatch=monkeypatch)
    assert inquirer.get_peak_tflops(0, Precision.fp32) is None
    assert inquirer.get_peak_tflops(0, Precision.tf32) is None
    assert inquirer.get_peak_tflops(1, Precision.fp32) is None
    assert "no fp32 figure for GPU 'NVIDIA V100-SXM2'" in capsys.readouterr().err


def test_a_machine_without_a_gpu_says_so(monkeypatch, capsys):
    inquirer = inquirer_of(monkeypatch=monkeypatch)
    assert inquirer.devices == [] and inquirer.vendor == GpuVendor.UNKNOWN
    assert inquirer.get_gpu_name(0) is None
    assert inquirer.get_peak_tflops(0, Precision.bf16) is None
    assert "peak TFLOPS unknown: no GPU 0 (no GPU on this machine)" in capsys.readouterr().err
