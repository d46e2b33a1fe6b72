"""Sample ids of the form ``<fields>^<timestamp>``: the newest or oldest timestamp of a batch.

RecIS's sample ids end with a timestamp after the last ``^``; a batch's ids name the time span it
covers. The timestamp is read as C's ``strtoll`` reads it (leading spaces, a sign, the digits up to
the first non-digit), so ``"u1^item^1700000000"`` and ``"1700000000 "`` both give 1700000000.

>>> newest_timestamp(["u1^a^1700000002", "u2^b^1700000001"])
1700000002
>>> newest_timestamp(["u1^a^1700000002", "u2^b^1700000001"], newest=False)
1700000001
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_LEADING_INTEGER = re.compile(r"\s*([+-]?\d+)")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def timestamp_of(sample_id: str) -> int:
    """The integer after the last ``^`` of ``sample_id`` (the whole id when it has none).

    Raises:
        ValueError: the text after the last ``^`` does not start with an integer, or the
            integer does not fit in int64.
    """
    token = sample_id.rsplit("^", 1)[-1]
    match = _LEADING_INTEGER.match(token)
    if match is None:
        raise ValueError(f"sample id {sample_id!r}: no integer timestamp after its last '^'")
    value = int(match.group(1))
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"sample id {sample_id!r}: timestamp {value} does not fit in int64")
    return value


def newest_timestamp(sample_ids: Sequence[str], newest: bool = True) -> int:
    """The largest (``newest``) or smallest timestamp of ``sample_ids``.

    Raises:
        ValueError: ``sample_ids`` is empty, or one of them has no timestamp.
    """
    if len(sample_ids) == 0:
        raise ValueError("sample ids: need at least one id to read a timestamp from")
    timestamps = [timestamp_of(sample_id) for sample_id in sample_ids]
    return max(timestamps) if newest else min(timestamps)
