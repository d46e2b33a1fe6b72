"""``recis.io`` knows no framework: it imports none, and a backend named in its plugin table
supplies the conversion, the DataLoader integration and the dtype of a framework's output."""

from __future__ import annotations

import ast
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from io_helpers import make_dataset, rows_of

import recis.io
from recis.io import frameworks
from recis.io.dataset_base import float_dtype
from recis.io.frameworks import Backend, Converter, Plugin

FRAMEWORKS = ("torch", "jax", "jaxlib", "flax", "optax")
# RecIS's import path of the torch backend's pipeline prefetch module: a thin re-export that
# no module of recis.io imports
RECIS_PATHS = {"cuda_prefetch_dataset.py"}


def test_reading_numpy_batches_loads_no_framework_and_no_backend(shared_data):
    directory, total = shared_data("orc")
    script = f"""
import sys
from recis.io import OrcDataset
dataset = OrcDataset(100, output="numpy", transform_fn=lambda tables: tables[0])
dataset.add_path({str(directory)!r})
dataset.varlen_feature("ids")
dataset.fixedlen_feature("label", [0.0])
print(sum(len(batch["label"]) for batch in dataset))
print(sorted(m for m in sys.modules if m.split(".")[0] in {FRAMEWORKS!r}))
print(sorted(m for m in sys.modules if m.startswith("recis.backends")))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(total), "[]", "[]"]


def _imported_names(tree: ast.AST):
    """(line, module name) of every import statement and every import by a call with a
    literal name (``importlib.import_module("x")``, ``__import__("x")``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and node.args:
            name = getattr(node.func, "attr", getattr(node.func, "id", None))
            first = node.args[0]
            if name in ("import_module", "__import__") and isinstance(first, ast.Constant):
                yield node.lineno, str(first.value)


def test_io_modules_have_no_framework_or_backend_import():
    package = Path(recis.io.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.name in RECIS_PATHS:
            continue
        for line, name in _imported_names(ast.parse(path.read_text(), str(path))):
            if name.split(".")[0] in FRAMEWORKS or name.startswith("recis.backends"):
                found.append(f"{path.name}:{line}: {name}")
    assert found == []
    assert (
        len(list(_imported_names(ast.parse("import torch\nimportlib.import_module('jax')")))) == 2
    )


class _Doubled(Converter):
    """A test backend's converter: dense numeric columns doubled, others left as they are."""

    def __init__(self, device: str, ragged_format: bool) -> None:
        pass

    def convert(self, columns: dict, num_rows: int) -> dict:
        return {name: _doubled(column) for name, column in columns.items()}


def _doubled(column):
    numeric = isinstance(column, np.ndarray) and column.dtype.kind in "iuf"
    return column * 2 if numeric else column


@pytest.fixture
def fake_framework(monkeypatch):
    """A framework ``fakeframe``, already imported, whose backend ``fakeframe_io`` doubles
    columns, records the dataset classes it adopts and says this is sub-worker 1 of 2."""
    adopted = []
    backend = types.ModuleType("fakeframe_io")
    backend.IO_BACKEND = Backend(
        _Doubled,
        numpy_dtype=lambda dtype: np.dtype(dtype.name),
        adopt_dataset=adopted.append,
        worker_shard=lambda: (1, 2),
    )
    monkeypatch.setitem(sys.modules, "fakeframe", types.ModuleType("fakeframe"))
    monkeypatch.setitem(sys.modules, "fakeframe_io", backend)
    monkeypatch.setitem(frameworks.PLUGINS, "fakeframe", Plugin("fakeframe_io", ("cpu",)))
    return adopted


def test_a_backend_in_the_plugin_table_converts_adopts_and_shards(fake_framework, shared_data):
    directory, total = shared_data("parquet")
    want = rows_of(list(make_dataset("parquet", directory, batch_size=50)))  # sharded too
    fake = make_dataset("parquet", directory, batch_size=50, output="fakeframe")
    assert type(fake) in fake_framework  # adopted, since fakeframe is imported
    np.testing.assert_array_equal(rows_of(list(fake)), want * 2)  # doubled, sub-worker 1 of 2
    assert 0 < len(want) < total and want[0] > 0  # the second of two shards
    with pytest.raises(ValueError, match="device='pin' needs output='torch'"):
        make_dataset("parquet", directory, output="fakeframe", device="pin")


def test_a_frameworks_dtype_object_is_read_by_its_backend(fake_framework):
    fake_dtype = type("Float16", (), {"__module__": "fakeframe.dtypes", "name": "float16"})()
    assert frameworks.numpy_dtype(fake_dtype) == np.dtype(np.float16)
    assert float_dtype(fake_dtype) == np.dtype(np.float16)


def test_a_missing_backend_package_is_named(monkeypatch):
    monkeypatch.setitem(frameworks.PLUGINS, "nowhere", Plugin("absentframe.io", ("cpu",)))
    with pytest.raises(ImportError, match="output='nowhere' needs absentframe installed"):
        frameworks.backend("nowhere")
