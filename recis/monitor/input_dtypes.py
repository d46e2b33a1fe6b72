"""The input dtype of a profiled operator, from the type names the torch profiler records.

An operator counts as one dtype only when all its tensor inputs have that dtype; mixed or
unsupported inputs are UNKNOWN (their FLOPS are never given a peak). Non-tensor inputs (scalars,
``None``) do not count.

>>> classify_input_dtype(["c10::BFloat16", "c10::BFloat16", "Scalar"])
<InputDType.BF16: 'bf16'>
>>> classify_input_dtype(["float", "c10::Half"])
<InputDType.UNKNOWN: 'unknown'>
"""

from __future__ import annotations

from enum import Enum


class InputDType(str, Enum):
    FP64 = "fp64"
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    FP8_E4M3 = "fp8_e4m3"
    FP8_E5M2 = "fp8_e5m2"
    INT8 = "int8"
    UNKNOWN = "unknown"


# type names as the profiler's Chrome trace (C++ names) and its event tree (torch.dtype) give them
_BY_TYPE_NAME = {
    **dict.fromkeys(("double", "float64", "torch.float64"), InputDType.FP64),
    **dict.fromkeys(("float", "float32", "torch.float32"), InputDType.FP32),
    **dict.fromkeys(("half", "float16", "torch.float16"), InputDType.FP16),
    **dict.fromkeys(("bfloat16", "torch.bfloat16"), InputDType.BF16),
    **dict.fromkeys(("char", "int8", "torch.int8"), InputDType.INT8),
    **{
        f"{prefix}{name}": InputDType.FP8_E4M3
        for prefix in ("", "torch.")
        for name in ("float8_e4m3fn", "float8_e4m3fnuz")
    },
    **{
        f"{prefix}{name}": InputDType.FP8_E5M2
        for prefix in ("", "torch.")
        for name in ("float8_e5m2", "float8_e5m2fnuz")
    },
}
_NOT_TENSORS = frozenset({"", "none", "scalar", "scalarlist", "tensor"})


def _type_name(value) -> str:
    return str(value).strip().lower().removeprefix("c10::")


def classify_input_dtype(input_types) -> InputDType:
    """The one dtype of an operator's tensor inputs, else UNKNOWN (see the module docstring)."""
    if not isinstance(input_types, list | tuple):
        input_types = [input_types]
    names = [_type_name(t) for t in input_types]
    found = {_BY_TYPE_NAME.get(name) for name in names if name not in _NOT_TENSORS}
    if len(found) == 1 and None not in found:
        return found.pop()
    return InputDType.UNKNOWN


def merge_event_dtype(dtypes: dict[str, InputDType], event_id: str, dtype: InputDType) -> None:
    """Record ``dtype`` for ``event_id``; two known, different dtypes for one id make it
    UNKNOWN, and a known dtype replaces an UNKNOWN one."""
    previous = dtypes.get(event_id)
    if previous in (None, dtype, InputDType.UNKNOWN):
        dtypes[event_id] = dtype
    elif dtype != InputDType.UNKNOWN:
        dtypes[event_id] = InputDType.UNKNOWN


def event_key(value) -> str:
    """An event id as a join key: integers (or their strings) as decimal text."""
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return str(value)
