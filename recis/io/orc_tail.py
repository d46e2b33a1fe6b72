"""Rows per stripe of an ORC file, read from its file tail.

pyarrow reports an ORC file's stripe count but not the rows of each stripe, which sharding needs.
The reader's serialized file tail is the ORC ``FileTail`` protobuf message with the footer already
decompressed; its ``Footer.stripes`` (field 3) hold ``StripeInformation.numberOfRows``
(field 5). This module decodes just those fields of the protobuf wire format.

>>> footer = bytes([0x1A, 0x02, 0x28, 0x07, 0x1A, 0x02, 0x28, 0x03])  # two stripes: 7, 3 rows
>>> stripe_rows(bytes([0x12, len(footer)]) + footer)
[7, 3]
"""

from __future__ import annotations

from collections.abc import Iterator

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5
_TAIL_FOOTER, _FOOTER_STRIPES, _STRIPE_ROWS = 2, 3, 5


def stripe_rows(file_tail: bytes) -> list[int]:
    """Rows of every stripe, in order, from a serialized ORC ``FileTail``.

    Raises ``ValueError`` when the bytes are not a well-formed message.
    """
    footer = _first(file_tail, _TAIL_FOOTER)
    if footer is None:
        raise ValueError("ORC file tail has no footer")
    return [_first(stripe, _STRIPE_ROWS) or 0 for stripe in _all(footer, _FOOTER_STRIPES)]


def _first(message: bytes, number: int):
    return next(_all(message, number), None)


def _all(message: bytes, number: int) -> Iterator:
    for field, value in _fields(message):
        if field == number:
            yield value


def _fields(message: bytes) -> Iterator[tuple[int, object]]:
    """(field number, value) pairs: ints for varints, bytes for length-delimited fields."""
    view = memoryview(message)
    position = 0
    while position < len(view):
        key, position = _varint(view, position)
        wire_type = key & 7
        if wire_type == _VARINT:
            value, position = _varint(view, position)
        elif wire_type == _LENGTH_DELIMITED:
            length, position = _varint(view, position)
            value, position = bytes(view[position : position + length]), position + length
        elif wire_type in (_FIXED64, _FIXED32):
            size = 8 if wire_type == _FIXED64 else 4
            value, position = bytes(view[position : position + size]), position + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        if position > len(view):
            raise ValueError("truncated protobuf message")
        yield key >> 3, value


def _varint(view: memoryview, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if position >= len(view) or shift > 63:
            raise ValueError("malformed protobuf varint")
        byte = view[position]
        value |= (byte & 0x7F) << shift
        position += 1
        shift += 7
        if byte < 0x80:
            return value, position
