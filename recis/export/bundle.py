"""Serving bundles on disk: a directory with ``manifest.json``, the rows, and front-end files.

::

    manifest.json            format, version, kind (full or delta), step, dtype, tables, files
                             (bytes and sha256 of each), parent (a delta's), and the front end's
                             entries: embedding (feature → table, combiner), features (ops per
                             feature), dense (framework, program file, inputs)
    rows.safetensors         per logical table <t>: <t>/id (int64, ascending), <t>/values
                             ([n, dim] of the bundle's dtype), <t>/scale (int8 only: float32
                             per row), <t>/removed (a delta's removed ids)
    dense.*                  the dense program (a front end's file)

A delta's ``parent`` is the path of the bundle it follows, relative to the delta's directory, and
that bundle's ``uid``; :meth:`Bundle.chain` follows parents back to the full export. Bundles are
written like checkpoints: into a hidden temporary directory, fsynced, then renamed into place.

>>> import tempfile
>>> import numpy as np
>>> from recis.export.rows import Rows
>>> root = tempfile.mkdtemp()
>>> rows = {"item": Rows(np.array([3, 7]), np.ones((2, 4), np.float32))}
>>> base = write_bundle(f"{root}/base", rows, dtype="float32", step=10)
>>> delta = write_bundle(f"{root}/d1", {"item": Rows(np.array([8]), np.zeros((1, 4), np.float32))},
...                      dtype="float32", step=20, parent=base)
>>> [b.step for b in delta.chain()], delta.state()["item"].ids.tolist()
([10, 20], [3, 7, 8])
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

import ml_dtypes  # noqa: F401  (registers bfloat16 for safetensors' NumPy reader)
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from recis.checkpoint.files import TEMP_PREFIX, check_file, fsync, index_digest, seal
from recis.export.encoding import check_dtype
from recis.export.rows import Rows, apply

FORMAT = "recis.serving"
VERSION = 1
MANIFEST = "manifest.json"
ROWS_FILE = "rows.safetensors"


class BundleError(RuntimeError):
    """A bundle is missing, corrupt, or does not follow the bundle it says it follows."""


class Bundle:
    """An opened serving bundle; every file is checked against the manifest before use."""

    def __init__(self, path) -> None:
        self.path = Path(path)
        self.manifest = _read_manifest(self.path)
        self._rows: dict[str, Rows] | None = None

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, kind={self.kind!r}, step={self.step})"

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def step(self) -> int:
        return self.manifest["step"]

    @property
    def uid(self) -> str:
        return self.manifest["uid"]

    @property
    def dtype(self) -> str:
        return self.manifest["dtype"]

    @property
    def tables(self) -> dict[str, dict]:
        """Per logical table: ``dim``, ``rows`` and ``removed`` counts in this bundle."""
        return self.manifest["tables"]

    def file(self, name: str) -> Path:
        """The path of the bundle's file ``name``, checked against the manifest."""
        if name not in self.manifest["files"]:
            raise BundleError(f"bundle {str(self.path)!r} has no file {name!r}")
        path = self.path / name
        try:
            check_file(path, self.manifest["files"][name])
        except Exception as error:
            raise BundleError(f"bundle {str(self.path)!r}: {error}") from None
        return path

    def rows(self) -> dict[str, Rows]:
        """Every logical table's rows as stored in this bundle (a delta's: only its changes)."""
        if self._rows is None:
            self._rows = _read_rows(self.file(ROWS_FILE), self.tables)
        return self._rows

    def parent(self) -> Bundle | None:
        """The bundle this delta follows (None for a full export)."""
        if self.kind == "full":
            return None
        link = self.manifest["parent"]
        parent = Bundle((self.path / link["path"]).resolve())
        if parent.uid != link["uid"]:
            raise BundleError(
                f"bundle {str(self.path)!r} follows {link['path']!r} of uid {link['uid']}, "
                f"but that directory now holds uid {parent.uid}"
            )
        return parent

    def chain(self) -> list[Bundle]:
        """The full export this bundle builds on, then every delta up to this one."""
        chain = [self]
        while (parent := chain[-1].parent()) is not None:
            chain.append(parent)
        return chain[::-1]

    def state(self) -> dict[str, Rows]:
        """Every logical table's full rows as of this bundle (its chain applied in order)."""
        base, *deltas = self.chain()
        state = dict(base.rows())
        for delta in deltas:
            state = apply_delta(state, delta.rows())
        return state


def apply_delta(state: Mapping[str, Rows], delta: Mapping[str, Rows]) -> dict[str, Rows]:
    """Full rows ``state`` (per logical table) after the delta's rows."""
    unknown = sorted(set(delta) - set(state))
    if unknown:
        raise BundleError(f"the delta has tables the bundle lacks: {unknown}")
    return {
        name: apply(rows, delta[name]) if name in delta else rows for name, rows in state.items()
    }


def write_bundle(
    path,
    rows: Mapping[str, Rows],
    *,
    dtype: str,
    step: int,
    parent: Bundle | None = None,
    entries: Mapping | None = None,
    files: Mapping[str, Callable[[BinaryIO], None]] | None = None,
) -> Bundle:
    """Write a bundle of ``rows`` (per logical table, encoded as ``dtype``) to ``path``.

    ``parent``: the bundle a delta follows (None: a full export). ``entries``: the front end's
    manifest entries (``embedding``, ``features``, ``dense``, ``lineage``). ``files``: extra
    files by name, each written by a function of the open binary file.
    """
    path = Path(path)
    check_dtype(dtype)
    if parent is not None and parent.dtype != dtype:
        raise ValueError(
            f"a delta of {parent!r} must use its dtype {parent.dtype!r}, not {dtype!r}"
        )
    temp = path.parent / f"{TEMP_PREFIX}{path.name}-{secrets.token_hex(4)}"
    temp.mkdir(parents=True)
    try:
        manifest = _write_files(temp, rows, files or {})
        manifest |= {"format": FORMAT, "version": VERSION, "uid": secrets.token_hex(8)}
        manifest |= {"kind": "full" if parent is None else "delta", "step": int(step)}
        manifest |= {"dtype": dtype, **dict(entries or {})}
        if parent is not None:
            link = os.path.relpath(parent.path.resolve(), path.resolve())
            manifest["parent"] = {"path": link, "uid": parent.uid}
        manifest["sha256"] = index_digest(manifest)
        (temp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        fsync(temp / MANIFEST)
        fsync(temp)
        if path.exists():
            raise FileExistsError(f"bundle {str(path)!r} exists already")
        temp.rename(path)
        fsync(path.parent)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return Bundle(path)


def _write_files(temp: Path, rows: Mapping[str, Rows], files) -> dict:
    tensors, tables = {}, {}
    for name, table in rows.items():
        tensors[f"{name}/id"] = np.ascontiguousarray(table.ids, np.int64)
        tensors[f"{name}/values"] = np.ascontiguousarray(table.values)
        tensors[f"{name}/removed"] = np.ascontiguousarray(table.removed, np.int64)
        if table.scale is not None:
            tensors[f"{name}/scale"] = np.ascontiguousarray(table.scale, np.float32)
        dim = int(table.values.shape[1])
        tables[name] = {"dim": dim, "rows": len(table), "removed": int(table.removed.size)}
    save_file(tensors, temp / ROWS_FILE)
    sealed = {ROWS_FILE: seal(temp / ROWS_FILE)}
    for name, write in files.items():
        if "/" in name or name in (MANIFEST, ROWS_FILE):
            raise ValueError(f"bundle file name {name!r} is reserved or not a plain name")
        with open(temp / name, "wb") as out:
            write(out)
        sealed[name] = seal(temp / name)
    return {"tables": tables, "files": sealed}


def _read_manifest(path: Path) -> dict:
    file = path / MANIFEST
    if not file.exists():
        raise BundleError(f"{str(path)!r} is not a serving bundle: it has no {MANIFEST}")
    try:
        manifest = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise BundleError(f"bundle manifest {str(file)!r} is not valid JSON: {error}") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise BundleError(
            f"bundle {str(path)!r} has format {manifest.get('format')!r} version "
            f"{manifest.get('version')!r}; this version of RecIS reads {FORMAT!r} {VERSION}"
        )
    if manifest.get("sha256") != index_digest(manifest):
        raise BundleError(f"bundle manifest {str(file)!r} is corrupt: sha256 mismatch")
    return manifest


def _read_rows(file: Path, tables: Mapping[str, dict]) -> dict[str, Rows]:
    rows = {}
    with safe_open(file, framework="numpy") as f:
        names = set(f.keys())
        for name in tables:
            scale = f.get_tensor(f"{name}/scale") if f"{name}/scale" in names else None
            rows[name] = Rows(
                f.get_tensor(f"{name}/id"),
                f.get_tensor(f"{name}/values"),
                scale,
                f.get_tensor(f"{name}/removed"),
            )
    return rows
