"""Just enough of the protobuf wire format to read the few fields the operator uses from Restate's
node gRPC API, without generated stubs: varints, and length-delimited strings and messages."""

from __future__ import annotations

Fields = dict[int, list[int | bytes]]


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7


def decode(data: bytes) -> Fields:
    """Field number -> values (ints for varints, bytes for length-delimited); other wire types skipped."""
    fields: Fields = {}
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            fields.setdefault(number, []).append(value)
        elif wire == 2:
            length, at = _varint(data, at)
            fields.setdefault(number, []).append(data[at : at + length])
            at += length
        elif wire == 5:
            at += 4
        elif wire == 1:
            at += 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return fields


def first_int(fields: Fields, number: int) -> int | None:
    value = next(iter(fields.get(number, [])), None)
    return value if isinstance(value, int) else None


def first_message(fields: Fields, number: int) -> Fields:
    value = next(iter(fields.get(number, [])), None)
    return decode(value) if isinstance(value, bytes) else {}


def first_string(fields: Fields, number: int) -> str | None:
    value = next(iter(fields.get(number, [])), None)
    return value.decode() if isinstance(value, bytes) else None
