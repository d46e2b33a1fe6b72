"""The GPUs this process sees and their datasheet peak TFLOPS by precision (RecIS API).

Devices are read from torch's CUDA runtime (NVIDIA, AMD ROCm and PPU builds all answer through
``torch.cuda``) when the process has imported torch; this module never imports it. On a machine
without a GPU — or a process without torch — the inquirer finds no device and says so in the
log at each peak lookup, which returns None.

>>> inquirer = GpuInfoInquirer.__new__(GpuInfoInquirer)
>>> inquirer.devices = [GpuDevice(0, "NVIDIA H20", GpuVendor.NVIDIA)]
>>> inquirer.get_peak_tflops(0, Precision.bf16)
148.0
>>> _normalize_gpu_name("AMD Instinct MI308X")
'MI308X'
"""

# (no ``from __future__ import annotations``: the dataclasses must build even when this file is
# loaded on its own, outside the package)
import sys
from dataclasses import dataclass, field
from enum import Enum

from recis.utils.logger import Logger

logger = Logger("GPUInfoInquirer")

# the torch module when this process has imported it (looked up, never imported here)
torch = sys.modules.get("torch")


class GpuVendor(Enum):
    NVIDIA = "nvidia"
    AMD = "amd"
    PPU = "ppu"
    UNKNOWN = "unknown"


class Precision(Enum):
    fp64 = "fp64"
    fp32 = "fp32"
    tf32 = "tf32"
    fp16 = "fp16"
    bf16 = "bf16"
    int8 = "int8"


@dataclass
class GpuDevice:
    index: int
    name: str
    vendor: GpuVendor
    memory_total_mb: int = 0


def _peaks(fp32: float, fp16: float, bf16: float, int8: float) -> dict[Precision, float]:
    return {Precision.fp32: fp32, Precision.fp16: fp16, Precision.bf16: bf16, Precision.int8: int8}


# Datasheet peak TFLOPS (tensor-core figures as the vendors publish them), by normalized model.
_H20 = _peaks(44.0, 148.0, 148.0, 296.0)
PEAK_TFLOPS: dict[GpuVendor, dict[str, dict[Precision, float]]] = {
    GpuVendor.NVIDIA: {
        "H100 SXM": _peaks(67.0, 1979.0, 1979.0, 3958.0),
        "H20": _H20,
        "A100": _peaks(19.5, 312.0, 312.0, 624.0),
        "A10": _peaks(31.2, 125.0, 125.0, 250.0),
        "L40S": _peaks(90.5, 181.0, 181.0, 362.0),
        "L20": _peaks(59.8, 119.5, 119.5, 239.0),
        "T4": _peaks(8.1, 65.0, 65.0, 130.0),
        "RTX 5090": _peaks(104.9, 839.0, 209.0, 1677.0),
    },
    GpuVendor.PPU: {"ZW810E": _H20},
    GpuVendor.AMD: {"MI308X": _peaks(81.7, 653.7, 653.7, 1307.0)},
}

# words of a device name that tell its vendor, tried in order
_VENDOR_WORDS = (
    ("NVIDIA", GpuVendor.NVIDIA),
    ("GEFORCE", GpuVendor.NVIDIA),
    ("TESLA", GpuVendor.NVIDIA),
    ("QUADRO", GpuVendor.NVIDIA),
    ("AMD", GpuVendor.AMD),
    ("RADEON", GpuVendor.AMD),
    ("INSTINCT", GpuVendor.AMD),
    ("PPU", GpuVendor.PPU),
)
# prefixes stripped from a device name, each at most once, in this order
_NAME_PREFIXES = (
    "NVIDIA ",
    "Tesla ",
    "GeForce ",
    "PPU-",
    "PPU ",
    "AMD Instinct ",
    "Instinct ",
    "AMD ",
)


def _normalize_gpu_name(raw_name: str) -> str:
    """The model part of a device name: vendor and family prefixes removed, in turn."""
    name = raw_name.strip()
    for prefix in _NAME_PREFIXES:
        name = name.removeprefix(prefix)
    return name.strip()


def _vendor_of(name: str) -> GpuVendor:
    upper = name.upper()
    return next((vendor for word, vendor in _VENDOR_WORDS if word in upper), GpuVendor.UNKNOWN)


def _query_devices_via_torch() -> list[GpuDevice]:
    """The devices of ``torch.cuda``; none when torch is not loaded or sees no GPU."""
    runtime = torch if torch is not None else sys.modules.get("torch")
    if runtime is None or not runtime.cuda.is_available():
        return []
    devices = []
    for index in range(runtime.cuda.device_count()):
        name = runtime.cuda.get_device_name(index)
        try:
            memory_mb = runtime.cuda.get_device_properties(index).total_memory // 2**20
        except (RuntimeError, AttributeError):
            memory_mb = 0
        devices.append(GpuDevice(index, name, _vendor_of(name), memory_mb))
    return devices


def _model_in_table(name: str, table: dict) -> str | None:
    """The table's model for a normalized name: itself, else the longest model it contains."""
    if name in table:
        return name
    contained = [model for model in table if model in name]
    return max(contained, key=len, default=None)


@dataclass
class GpuInfoInquirer:
    """The process's GPUs (``devices``) and their peak TFLOPS."""

    devices: list[GpuDevice] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.devices = _query_devices_via_torch()
        names = ", ".join(f"{d.name} ({d.vendor.value})" for d in self.devices)
        logger.debug("GPUs found: %s", names or "none")

    @property
    def vendor(self) -> GpuVendor:
        """The first device's vendor, UNKNOWN without a device."""
        return self.devices[0].vendor if self.devices else GpuVendor.UNKNOWN

    def get_device(self, device_index: int = 0) -> GpuDevice | None:
        return self.devices[device_index] if 0 <= device_index < len(self.devices) else None

    def get_gpu_name(self, device_index: int = 0) -> str | None:
        device = self.get_device(device_index)
        return device.name if device else None

    def get_peak_tflops(
        self, device_index: int = 0, precision: Precision = Precision.fp32
    ) -> float | None:
        """The datasheet peak of the device at ``precision``; None (logged) when the device,
        its model or that precision is not known."""
        device = self.get_device(device_index)
        if device is None:
            found = f"{len(self.devices)} GPUs" if self.devices else "no GPU on this machine"
            logger.warning("peak TFLOPS unknown: no GPU %d (%s)", device_index, found)
            return None
        table = PEAK_TFLOPS.get(device.vendor, {})
        model = _model_in_table(_normalize_gpu_name(device.name), table)
        peak = table[model].get(precision) if model is not None else None
        if peak is None:
            logger.warning("peak TFLOPS: no %s figure for GPU %r", precision.value, device.name)
        return peak


Inquirer = GpuInfoInquirer()
