"""File discovery, row-balanced sharding and the plan's checks of every file."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from io_helpers import write_files

from recis.io.columns import ColumnSpec
from recis.io.errors import DataError
from recis.io.orc_dataset import OrcFormat
from recis.io.sources import Fragment, build_plan, discover, shard_fragments


def test_discover_walks_directories_recursively_and_skips_hidden_files(tmp_path):
    for name in (
        "b.orc",
        "sub/a.orc",
        "sub/deeper/c.orc",
        "_tmp/x.orc",
        ".hidden.orc",
        "notes.txt",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = [source.path for source in discover(str(tmp_path), (".orc",))]
    assert found == [str(tmp_path / n) for n in ("b.orc", "sub/a.orc", "sub/deeper/c.orc")]


def test_discover_accepts_a_file_whatever_its_name(tmp_path):
    (tmp_path / "data.bin").write_bytes(b"")
    [source] = discover(str(tmp_path / "data.bin"), (".orc",))
    assert source.path == str(tmp_path / "data.bin")
    assert isinstance(source.filesystem, pafs.LocalFileSystem)


def test_discover_resolves_uris_and_explicit_filesystems(tmp_path):
    (tmp_path / "a.orc").write_bytes(b"")
    [source] = discover(f"file://{tmp_path}", (".orc",))
    assert source.path == str(tmp_path / "a.orc")
    sub = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    assert [s.path for s in discover("", (".orc",), filesystem=sub)] == ["a.orc"]


def test_discover_names_missing_paths_and_empty_directories(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        discover(str(tmp_path / "nowhere"), (".orc",))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=f"{tmp_path / 'empty'}: directory holds no .orc files"):
        discover(str(tmp_path / "empty"), (".orc",))


def test_sharding_assigns_every_fragment_once_balanced_by_rows():
    rng = np.random.default_rng(0)
    fragments = [
        Fragment(i // 4, i % 4, int(rows)) for i, rows in enumerate(rng.integers(1, 500, 37))
    ]
    for count in (1, 2, 3, 5, 8):
        shards = [shard_fragments(fragments, index, count) for index in range(count)]
        assigned = sorted((f.file, f.unit) for shard in shards for f in shard)
        assert assigned == sorted((f.file, f.unit) for f in fragments)
        loads = [sum(f.rows for f in shard) for shard in shards]
        assert max(loads) - min(loads) <= max(f.rows for f in fragments)
        assert all(list(shard) == sorted(shard, key=lambda f: (f.file, f.unit)) for shard in shards)


def test_plan_digest_depends_on_the_worker_and_the_data(tmp_path):
    write_files(tmp_path / "a", "orc")
    write_files(tmp_path / "b", "orc", sizes=(100, 200))
    specs = (ColumnSpec.varlen("row"),)

    def plan(directory, shard):
        files = discover(str(directory), (".orc",))
        return build_plan(files, OrcFormat(), specs, shard, threads=2, on_error="raise")

    first = plan(tmp_path / "a", (0, 2))
    assert first.digest == plan(tmp_path / "a", (0, 2)).digest
    assert first.digest != plan(tmp_path / "a", (1, 2)).digest
    assert first.digest != plan(tmp_path / "b", (0, 2)).digest
    assert all(f.rows > 0 for f in first.fragments)


def test_plan_rejects_files_whose_column_type_differs_from_the_first(tmp_path):
    import pyarrow.orc as orc

    orc.write_table(pa.table({"ids": pa.array([[1]])}), str(tmp_path / "a.orc"))
    orc.write_table(pa.table({"ids": pa.array([[1.5]])}), str(tmp_path / "b.orc"))
    files = discover(str(tmp_path), (".orc",))
    specs = (ColumnSpec.varlen("ids"),)
    with pytest.raises(
        DataError, match=r"b\.orc: column 'ids' is list<double>, but list<int64> in"
    ):
        build_plan(files, OrcFormat(), specs, (0, 1), threads=1, on_error="raise")
    plan = build_plan(files, OrcFormat(), specs, (0, 1), threads=1, on_error="skip")
    assert [s.path for s in plan.files] == [str(tmp_path / "a.orc")]
    assert plan.skipped[0][0] == str(tmp_path / "b.orc")
