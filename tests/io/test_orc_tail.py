"""Rows per stripe from the ORC file tail, against reading every stripe."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.orc as orc
import pytest

from recis.io.orc_tail import stripe_rows


@pytest.mark.parametrize("compression", ["uncompressed", "zlib", "snappy", "zstd", "lz4"])
def test_stripe_rows_match_the_stripes(tmp_path, compression):
    table = pa.table({"x": np.arange(3000), "ids": pa.array([[i, i] for i in range(3000)])})
    path = tmp_path / "f.orc"
    writer = orc.ORCWriter(str(path), stripe_size=1, batch_size=64, compression=compression)
    for start in range(0, 3000, 700):
        writer.write(table.slice(start, 700))
    writer.close()
    reader = orc.ORCFile(str(path))
    rows = stripe_rows(reader.reader.serialized_file_tail())
    assert rows == [reader.read_stripe(i).num_rows for i in range(reader.nstripes)]
    assert sum(rows) == 3000


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no footer"),
        (b"\x12\x05\x1a", "truncated"),
        (b"\x08\xff", "malformed protobuf varint"),
        (b"\x0b", "wire type 3"),
    ],
)
def test_malformed_tails_raise(data, message):
    with pytest.raises(ValueError, match=message):
        stripe_rows(data)
