"""Errors of the IO layer; each names the file and, where it applies, the column."""

from __future__ import annotations


class ColumnError(ValueError):
    """A column's type or content does not fit its declaration.

    >>> str(ColumnError("ids", "null values inside lists"))
    "column 'ids': null values inside lists"
    """

    def __init__(self, column: str, detail: str) -> None:
        super().__init__(f"column {column!r}: {detail}")
        self.column = column


class DataError(ValueError):
    """A data file cannot be read as declared: missing, corrupt, or a column does not fit.

    >>> str(DataError("part-0.orc", "stripe 2: column 'ids': null values inside lists"))
    "part-0.orc: stripe 2: column 'ids': null values inside lists"
    """

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
