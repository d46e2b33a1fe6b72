"""Fixtures of the IO tests (helpers live in ``io_helpers``)."""

from __future__ import annotations

import pytest
from io_helpers import write_files


@pytest.fixture(params=["orc", "parquet"])
def fmt(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def shared_data(tmp_path_factory):
    """``shared_data(fmt)``: (directory, total rows) of the default files, written once per run.

    Tests must not modify these files.
    """
    written = {}

    def get(fmt: str):
        if fmt not in written:
            directory = tmp_path_factory.mktemp(f"shared-{fmt}")
            written[fmt] = directory, write_files(directory, fmt)
        return written[fmt]

    return get
