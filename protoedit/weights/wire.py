"""Protobuf's wire format, just enough to walk a ``.caffemodel`` without parsing its arrays.

A caffemodel is one ``NetParameter`` whose blobs hold nearly all of its bytes.  Walking the
fields by hand lets the reader copy each array once, straight from the file into numpy, and
keep every other field as the exact bytes it was stored as (fork fields included), so that
writing the file back gives the same bytes.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass

#: What the walker reads from: the file's memory map, or bytes.
Buffer = bytes | memoryview | mmap.mmap

VARINT, FIXED64, LEN, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5


class WireError(Exception):
    """The bytes are not a valid protobuf message: ``offset`` is where the reading failed."""

    def __init__(self, message: str, offset: int) -> None:
        self.offset = offset
        super().__init__(message)


@dataclass(frozen=True)
class Field:
    """One field as stored: its number and wire type, where it starts (its tag) and where its
    value starts and ends (a ``LEN`` field's payload; the value bytes otherwise)."""

    number: int
    wire: int
    start: int
    value: int
    end: int


def read_varint(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it (64-bit, as protobuf reads it)."""
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise WireError("the data ends inside a number", pos)
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError("a number runs over ten bytes", pos)


def fields(buf: Buffer, start: int, end: int) -> Iterator[Field]:
    """The fields of the message stored in ``buf[start:end]``, in stored order."""
    pos = start
    while pos < end:
        tag, value = read_varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise WireError("a field numbered 0", pos)
        if wire == VARINT:
            _, after = read_varint(buf, value, end)
        elif wire == FIXED64:
            after = value + 8
        elif wire == FIXED32:
            after = value + 4
        elif wire == LEN:
            length, value = read_varint(buf, value, end)
            after = value + length
        else:
            raise WireError(f"field {number} has wire type {wire} (groups are not Caffe's)", pos)
        if after > end:
            raise WireError(
                f"field {number} claims {after - value} bytes but only {end - value} remain",
                pos,
            )
        yield Field(number, wire, pos, value, after)
        pos = after


def varint(value: int) -> bytes:
    """``value`` as a varint (negative numbers as ten bytes, as protobuf writes int32/int64)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number: int, wire: int) -> bytes:
    """The key of field ``number`` with wire type ``wire``."""
    return varint(number << 3 | wire)


def length_prefix(number: int, length: int) -> bytes:
    """The tag and length of a ``LEN`` field holding ``length`` bytes."""
    return tag(number, LEN) + varint(length)


def string_field(number: int, text: str) -> bytes:
    """A string field, encoded."""
    data = text.encode("utf-8")
    return length_prefix(number, len(data)) + data


def varint_field(number: int, value: int) -> bytes:
    """A varint field (int32, int64, enum), encoded."""
    return tag(number, VARINT) + varint(value)


def packed_varints(buf: Buffer, start: int, end: int) -> list[int]:
    """The varints packed in ``buf[start:end]``."""
    values = []
    pos = start
    while pos < end:
        value, pos = read_varint(buf, pos, end)
        values.append(value)
    return values


def signed(value: int) -> int:
    """A varint read back as a two's complement int64."""
    return value - (1 << 64) if value >= 1 << 63 else value
