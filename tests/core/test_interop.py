"""Zero-copy DLPack exchange between the engine and NumPy, torch and JAX."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from recis.core import arrays as interop


def _pointer(x) -> int:
    if isinstance(x, np.ndarray):
        return x.ctypes.data
    if isinstance(x, torch.Tensor):
        return x.data_ptr()
    return x.unsafe_buffer_pointer()


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.arange(12, dtype=np.int64),
        lambda: torch.arange(12, dtype=torch.float32).reshape(3, 4),
        lambda: jnp.arange(12, dtype=jnp.int32),
        lambda: torch.zeros(5, dtype=torch.float16),
    ],
    ids=["numpy", "torch", "jax", "torch-fp16"],
)
def test_import_shares_memory(make):
    source = make()
    array = interop.as_engine_array(source, name="ids")
    assert isinstance(array, np.ndarray)
    assert array.ctypes.data == _pointer(source)
    np.testing.assert_array_equal(array, np.asarray(source))


def test_torch_writes_are_visible_to_the_engine_and_back():
    tensor = torch.zeros(4)
    array = interop.as_engine_array(tensor)
    array[1] = 5.0
    assert tensor[1].item() == 5.0
    exported = interop.export_like(array, like=tensor)
    assert isinstance(exported, torch.Tensor) and exported.data_ptr() == tensor.data_ptr()


def test_export_of_aligned_engine_arrays_is_zero_copy_for_jax_and_torch():
    array = interop.empty((64, 16), np.float32)
    array[...] = 1.5
    as_jax = interop.export_like(array, like=jnp.zeros(1))
    as_torch = interop.export_like(array, like=torch.zeros(1))
    assert isinstance(as_jax, jax.Array) and as_jax.unsafe_buffer_pointer() == array.ctypes.data
    assert as_torch.data_ptr() == array.ctypes.data
    assert float(as_jax.sum()) == float(as_torch.sum()) == 1.5 * 64 * 16


def test_empty_is_aligned_for_every_dtype_and_shape():
    for dtype in (np.int8, np.float16, np.float32, np.int64):
        for shape in ((1,), (3, 5), (0,), (7, 1, 3)):
            array = interop.empty(shape, dtype)
            assert array.shape == shape and array.dtype == dtype
            assert array.size == 0 or array.ctypes.data % interop.ALIGNMENT == 0


def test_non_contiguous_input_is_rejected_with_its_name():
    with pytest.raises(ValueError, match="offsets: array must be C-contiguous"):
        interop.as_engine_array(torch.arange(12.0).reshape(3, 4).t(), name="offsets")


@pytest.mark.parametrize(
    "value", [torch.zeros(2, dtype=torch.bfloat16), np.zeros(2, np.complex64)], ids=["bf16", "c64"]
)
def test_unsupported_dtypes_are_rejected_with_its_name(value):
    with pytest.raises(TypeError, match=r"^weights: "):
        interop.as_engine_array(value, name="weights")


def test_objects_without_dlpack_are_rejected():
    with pytest.raises(TypeError, match="expected an array with __dlpack__, got list"):
        interop.as_engine_array([1, 2])


def test_namespace_and_framework_resolution():
    assert interop.namespace(np.zeros(1)) is np
    with pytest.raises(TypeError, match="expected a NumPy or CuPy array, got Tensor"):
        interop.namespace(torch.zeros(1))
    assert interop.framework_of(torch.zeros(1)) == "torch"
    assert interop.framework_of(jnp.zeros(1)) == "jax"
    assert interop.framework_of(np.zeros(1)) == "numpy"
