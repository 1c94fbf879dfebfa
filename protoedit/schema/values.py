"""Python values -> text-format spellings, guided by the field's schema type."""

from __future__ import annotations

import math
import numbers
from typing import Any

from google.protobuf import text_encoding
from google.protobuf.descriptor import FieldDescriptor

from protoedit.errors import InputError

FD = FieldDescriptor


def quote(text: str | bytes) -> str:
    """A double-quoted text-format string literal, escaped as text_format writes one (text
    stays UTF-8; bytes that are not text become octal escapes)."""
    is_text = isinstance(text, str)
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return '"' + text_encoding.CEscape(data, as_utf8=is_text) + '"'


def format_float(value: float) -> str:
    """Shortest round-tripping spelling; ``inf``/``-inf``/``nan`` as text format writes them."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def render_value(value: Any, fd: FieldDescriptor | None) -> str:
    """The raw text for ``value`` in field ``fd`` (``None``: guess from the Python type)."""
    kind = fd.type if fd is not None else None
    if kind == FD.TYPE_MESSAGE:
        raise InputError(f"'{fd.name}' is a message: insert it as text instead")  # type: ignore[union-attr]
    if kind == FD.TYPE_ENUM:
        assert fd is not None and fd.enum_type is not None
        if isinstance(value, int) and not isinstance(value, bool):
            found = fd.enum_type.values_by_number.get(value)
        else:
            found = fd.enum_type.values_by_name.get(str(value))
        if found is None:
            names = ", ".join(v.name for v in fd.enum_type.values)
            raise InputError(f"'{value}' is not a value of {fd.enum_type.full_name} ({names})")
        return str(found.name)
    if kind == FD.TYPE_BOOL and not isinstance(value, bool):
        raise InputError(f"expected True or False for a bool field, given {value!r}")
    if isinstance(value, bool):
        return "true" if value else "false"
    type_name = "bytes" if kind == FD.TYPE_BYTES else "string"
    if kind in (FD.TYPE_STRING, FD.TYPE_BYTES) or (kind is None and isinstance(value, str)):
        if not isinstance(value, (str, bytes) if kind == FD.TYPE_BYTES else str):
            raise InputError(f"expected a str for a {type_name} field, given {value!r}")
        return quote(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return format_float(float(value))
    raise InputError(f"cannot write {value!r} as a text-format value")
