"""The CSV to ORC converter and the synthetic Criteo-shaped dataset."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.orc as orc
import pytest

from recis.io import OrcDataset
from recis.tools import csv_to_orc, synthetic


def write_csv(path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


def test_csv_to_orc_splits_list_columns_and_rolls_files(tmp_path):
    write_csv(tmp_path / "a.csv", ["label,price,tags", "1,0.5,3|4", "0,1.5,", "1,,7"])
    (tmp_path / "more").mkdir()
    write_csv(tmp_path / "more" / "b.csv", ["label,price,tags", "0,2.5,8|9|10"])
    out = tmp_path / "orc"
    csv_to_orc.main(
        [str(tmp_path / "a.csv"), str(tmp_path / "more"), "--output", str(out),
         "--list-columns", "tags", "--rows-per-file", "3", "--compression", "snappy"]
    )  # fmt: skip
    files = sorted(out.glob("*.orc"))
    assert [orc.ORCFile(str(f)).nrows for f in files] == [3, 1]
    table = pa.concat_tables([orc.read_table(str(f)) for f in files])
    assert table.column("tags").to_pylist() == [[3, 4], [], [7], [8, 9, 10]]
    assert table.column("price").to_pylist() == [0.5, 1.5, None, 2.5]
    dataset = OrcDataset(4, output="numpy")
    dataset.add_path(str(out))
    dataset.fixedlen_feature("price", [-1.0])
    dataset.varlen_feature("tags")
    [batch] = next(iter(dataset))
    np.testing.assert_array_equal(batch["price"].ravel(), [0.5, 1.5, -1.0, 2.5])
    np.testing.assert_array_equal(batch["tags"].offsets[0], [0, 2, 2, 3, 6])


def test_csv_to_orc_without_header_and_with_given_types(tmp_path):
    write_csv(tmp_path / "a.csv", ["1;x", "2;y"])
    paths = csv_to_orc.convert(
        [str(tmp_path / "a.csv")], str(tmp_path / "out"), header=False, delimiter=";",
        column_names=["id", "name"], column_types={"id": "int32"},
    )  # fmt: skip
    table = orc.read_table(paths[0])
    assert table.schema.field("id").type == pa.int32()
    assert table.column("name").to_pylist() == ["x", "y"]


def test_csv_to_orc_names_bad_inputs(tmp_path):
    write_csv(tmp_path / "a.csv", ["tags", "1|x"])
    with pytest.raises(ValueError, match=r"a\.csv: column 'tags'"):
        csv_to_orc.convert([str(tmp_path / "a.csv")], str(tmp_path / "o"), list_columns=["tags"])
    with pytest.raises(ValueError, match="list column 'other' is not in the CSV header"):
        csv_to_orc.convert([str(tmp_path / "a.csv")], str(tmp_path / "o"), list_columns=["other"])
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        csv_to_orc.convert([str(tmp_path / "nope.csv")], str(tmp_path / "o"))


def test_synthetic_dataset_has_the_criteo_shape_and_depends_only_on_the_seed(tmp_path):
    synthetic.main(["--rows", "1000", "--files", "3", "--out", str(tmp_path / "a"), "--seed", "5"])
    paths = synthetic.write_dataset(str(tmp_path / "b"), rows=1000, files=3, seed=5)
    tables = [orc.read_table(p) for p in paths]
    assert [t.num_rows for t in tables] == [333, 333, 334]
    schema = tables[0].schema
    assert schema.names == ["label", *synthetic.DENSE, *synthetic.CATEGORICAL]
    assert len(synthetic.DENSE) == 13 and len(synthetic.CATEGORICAL) == 26
    assert all(schema.field(n).type == pa.list_(pa.int64()) for n in synthetic.CATEGORICAL)
    assert all(schema.field(n).type == pa.float32() for n in ("label", *synthetic.DENSE))
    for path in paths:
        assert orc.read_table(path).equals(orc.read_table(path.replace("/b/", "/a/")))
    labels = np.concatenate([t.column("label").to_numpy() for t in tables])
    assert set(np.unique(labels)) == {0.0, 1.0}
    other = synthetic.make_table(1000, np.random.default_rng(6))
    assert not other.equals(tables[0])
