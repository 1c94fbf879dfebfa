"""Lossless tree -> typed protobuf message, with located, plain-words errors.

Every problem is a :class:`Diagnostic` with a code (``E1xx`` errors, ``W1xx`` warnings) and a
source offset.  In lenient mode unknown fields and unknown enum values are warnings: the
message skips them, while the tree keeps them verbatim, so they survive every edit and print.
Binding never stops at a problem: the message it returns holds every value that did bind
(the best-effort message a lint can still read).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import text_encoding, text_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from protoedit.errors import Location, ProtoeditError
from protoedit.syntax.split import elements
from protoedit.syntax.tree import Block, Field, ListValue, Scalar, Tree

FD = FieldDescriptor


class BindError(ProtoeditError):
    """The text parses but does not fit the schema (unknown field, wrong type, ...)."""

    def __init__(
        self,
        message: str,
        location: Location | None = None,
        detail: str = "",
        others: list[str] | None = None,
    ) -> None:
        super().__init__(message, location, detail)
        self.others = others or []  # the further problems, formatted, after this first one


@dataclass(frozen=True)
class Diagnostic:
    """One finding at one place: ``severity`` is ``error`` or ``warning``."""

    code: str
    message: str
    pos: int
    severity: str = "error"
    #: What the finding is about, for front ends that act on it (E205: the unknown type).
    subject: str | None = None


_INT_RANGES = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}
#: Scalar type -> its name in a .proto file (``TYPE_UINT32`` -> ``uint32``).
_TYPE_NAMES = {
    number: name.removeprefix("TYPE_").lower()
    for name, number in vars(FD).items()
    if name.startswith("TYPE_")
}
# Scalars are parsed by text_format's helpers, with guards where they are laxer than
# protobuf's C++ parser (the one Caffe uses).
_SIGNED = {kind for kind, (low, _) in _INT_RANGES.items() if low < 0}
_WIDE = {kind for kind, (_, high) in _INT_RANGES.items() if high >= 2**32}  # 64-bit
_INTEGER = re.compile(r"-?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$")
_SUFFIXED_WORD = re.compile(r"-?(inf|infinity|nan)f$", re.IGNORECASE)  # C++ refuses `inff`


class _ValueProblem(Exception):
    """A scalar's text does not fit its field's type; the message says how."""


class UnknownEnumValue(_ValueProblem):
    """A name or number the enum lacks (a fork's value, kept as written in lenient mode)."""


def type_label(fd: FieldDescriptor) -> str:
    """A field's type as a user writes it: ``int32``, ``caffe.Phase``, ``caffe.BlobShape``."""
    if fd.message_type is not None:
        return str(fd.message_type.full_name)
    if fd.enum_type is not None:
        return str(fd.enum_type.full_name)
    return _TYPE_NAMES[fd.type]


def _parse_int(raw: str, fd: FieldDescriptor) -> int:
    signed = fd.type in _SIGNED
    try:
        if signed or not raw.startswith("-"):  # C++ takes no sign at all on unsigned types
            return int(text_format.ParseInteger(raw, is_signed=signed, is_long=fd.type in _WIDE))
    except ValueError:
        pass
    if _INTEGER.match(raw):
        raise _ValueProblem(f"{raw} is out of range for {type_label(fd)}")
    raise _ValueProblem(f"expected an integer ({type_label(fd)}), found '{raw}'")


def _parse_float(raw: str, fd: FieldDescriptor) -> float:
    try:
        if not _SUFFIXED_WORD.match(raw):
            return float(text_format.ParseFloat(raw))
    except ValueError:
        pass
    raise _ValueProblem(f"expected a number ({type_label(fd)}), found '{raw}'")


def _parse_bool(raw: str, fd: FieldDescriptor) -> bool:
    try:
        return bool(text_format.ParseBool(raw))
    except ValueError:
        pass
    if _INTEGER.match(raw) and not raw.startswith("-"):  # C++ also reads 0 and 1 as 0x1, 00
        number = text_format.ParseInteger(raw, is_long=True)
        if number in (0, 1):
            return bool(number)
    raise _ValueProblem(f"expected true or false, found '{raw}'")


def _string_bytes(scalar: Scalar) -> bytes:
    try:
        return b"".join(text_encoding.CUnescape(part.text[1:-1]) for part in scalar.parts)
    except Exception as exc:
        raise _ValueProblem(f"bad escape in string: {exc}") from None


_FLOATS = (FD.TYPE_FLOAT, FD.TYPE_DOUBLE)
#: A byte that was not UTF-8 in the file (``protoedit.files`` keeps it as a lone surrogate).
_STRAY_BYTE = re.compile("[\udc80-\udcff]")


def _stray_byte(text: str) -> str:
    """Why a string with a non-UTF-8 byte cannot be a protobuf string, and the fix."""
    found = _STRAY_BYTE.search(text)
    byte = ord(found.group()) - 0xDC00 if found else 0
    return (
        f"byte 0x{byte:02X} in this string is not UTF-8 (Latin-1?); convert the file with "
        "`iconv -f latin1 -t utf-8`"
    )


def _convert(scalar: Scalar, fd: FieldDescriptor) -> Any:
    """The Python value of ``scalar`` for field ``fd``, or :class:`_ValueProblem`."""
    kind = fd.type
    if len(scalar.parts) == 1:  # fast paths for the common spellings
        text = scalar.parts[0].text
        first = text[0]
        if kind == FD.TYPE_STRING and first in "\"'" and "\\" not in text:
            if text.isascii() or not _STRAY_BYTE.search(text):
                return text[1:-1]
            raise _ValueProblem(_stray_byte(text))
        if kind in _FLOATS and first not in "\"'":
            return _parse_float(text, fd)
        elif first in "123456789" and text.isdigit() and kind in _INT_RANGES:
            value = int(text)
            if _INT_RANGES[kind][1] >= value:
                return value
    if kind in (FD.TYPE_STRING, FD.TYPE_BYTES):
        if not scalar.is_string():
            raise _ValueProblem(f"expected a quoted string, found '{scalar.raw}'")
        data = _string_bytes(scalar)
        if kind == FD.TYPE_BYTES:
            return data
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise _ValueProblem("the string is not valid UTF-8") from None
    raw = scalar.parts[0].text
    if scalar.is_string() or len(scalar.parts) > 1:
        raise _ValueProblem(f"expected a {type_label(fd)} value, found a string")
    if kind in _INT_RANGES:
        return _parse_int(raw, fd)
    if kind in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE):
        return _parse_float(raw, fd)
    if kind == FD.TYPE_BOOL:
        return _parse_bool(raw, fd)
    if kind == FD.TYPE_ENUM:
        enum = fd.enum_type
        assert enum is not None
        named = enum.values_by_name.get(raw)
        if named is not None:
            return named.number
        try:  # a number, spelled as C++ reads it (text_format.ParseEnum refuses octal)
            number: int | None = int(text_format.ParseInteger(raw, is_signed=True))
        except ValueError:
            number = None
        if number in enum.values_by_number:
            return number
        names = ", ".join(v.name for v in enum.values)
        # A name or a number could be a fork's value; anything else is just the wrong type.
        unknown = number is not None or re.match(r"[A-Za-z_]\w*$", raw)
        problem = UnknownEnumValue if unknown else _ValueProblem
        raise problem(f"unknown value '{raw}' for enum {enum.full_name}; expected one of {names}")
    raise _ValueProblem(f"unsupported field type {kind}")  # groups: not used by Caffe


def scalar_value(scalar: Scalar, fd: FieldDescriptor) -> Any:
    """The Python value of ``scalar`` for field ``fd``; a :class:`ValueError` says why not."""
    try:
        return _convert(scalar, fd)
    except _ValueProblem as problem:
        raise ValueError(str(problem)) from None


@dataclass(frozen=True)
class _Slot:
    fd: FieldDescriptor
    name: str
    is_message: bool
    repeated: bool


def _slots_of(descriptor: Any) -> dict[str, _Slot]:
    """What binding needs to know about each field name of one message type."""
    return {
        fd.name: _Slot(fd, fd.name, fd.type == FD.TYPE_MESSAGE, is_repeated(fd))
        for fd in descriptor.fields
    }


def is_repeated(fd: FieldDescriptor) -> bool:
    """Whether a field is repeated (protobuf >= 6 has ``is_repeated``; older ones ``label``)."""
    flag = getattr(fd, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(fd.label == FD.LABEL_REPEATED)  # type: ignore[attr-defined]


def suggest(name: str, candidates: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the nearest names, or an empty string."""
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    if not close:
        return ""
    quoted = " or ".join(f"'{c}'" for c in close)
    return f" (did you mean {quoted}?)"


class Binder:
    """Fills a message from tree fields, reporting every problem found along the way."""

    def __init__(self, lenient: bool = False) -> None:
        self.lenient = lenient
        self.diagnostics: list[Diagnostic] = []
        # By full name: upb hands out short-lived descriptor wrappers, so id() is no key.
        self._slots: dict[str, dict[str, _Slot]] = {}
        self._hints: dict[tuple[str, str], str] = {}  # unknown names recur (lenient mode)
        #: The items of repeated fields that gave no entry (by id, kept alive here).  Every
        #: other item of a repeated field gave one, in file order, so this is the whole
        #: tree-to-message link (:func:`linked_elements`) at no cost while binding.
        self.skipped: dict[int, Scalar | Block] = {}

    def _report(self, code: str, message: str, pos: int, severity: str = "error") -> None:
        self.diagnostics.append(Diagnostic(code, message, pos, severity))

    def bind_fields(self, fields: list[Field], message: Message) -> None:
        descriptor = message.DESCRIPTOR
        slots = self._slots.get(descriptor.full_name)
        if slots is None:
            slots = self._slots[descriptor.full_name] = _slots_of(descriptor)
        seen: set[str] = set()
        for field in fields:
            name = field.name.text
            slot = slots.get(name)
            if slot is None:
                key = (descriptor.full_name, name)
                hint = self._hints.get(key)
                if hint is None:
                    hint = self._hints[key] = suggest(name, list(slots))
                text = f"unknown field '{name}' in {descriptor.full_name}{hint}"
                if self.lenient:
                    self._report("W101", text + "; kept as written", field.pos, "warning")
                else:
                    self._report("E101", text, field.pos)
                continue
            value = field.value
            if not slot.repeated:
                if name in seen:
                    self._report(
                        "E104",
                        f"'{name}' is given twice, but it is not a repeated field",
                        field.pos,
                    )
                    continue
                seen.add(name)
            if isinstance(value, ListValue):
                if not slot.repeated:
                    self._report(
                        "E106",
                        f"'{name}' is not a repeated field: a [list] is not allowed",
                        value.pos,
                    )
                    continue
                items: list[Scalar | Block] = value.items
            else:
                items = [value]
            if slot.is_message:
                self._bind_messages(field, slot, items, message)
            else:
                self._bind_scalars(field, slot, items, message)

    def _bind_messages(
        self, field: Field, slot: _Slot, items: list[Scalar | Block], message: Message
    ) -> None:
        for item in items:
            if not isinstance(item, Block):
                if slot.repeated:
                    self.skipped[id(item)] = item
                self._report(
                    "E105",
                    f"'{slot.name}' is a message ({type_label(slot.fd)}): expected '{{', "
                    f"found '{item.raw}'",
                    item.pos,
                )
                continue
            target = getattr(message, slot.name)
            sub = target.add() if slot.repeated else target
            if not slot.repeated:
                sub.SetInParent()
            self.bind_fields(item.fields, sub)

    def _bind_scalars(
        self, field: Field, slot: _Slot, items: list[Scalar | Block], message: Message
    ) -> None:
        for item in items:
            if isinstance(item, Block):
                if slot.repeated:
                    self.skipped[id(item)] = item
                self._report(
                    "E105",
                    f"'{slot.name}' is a {type_label(slot.fd)} field, not a message: "
                    "expected a value, found '{'",
                    item.pos,
                )
                continue
            if slot.repeated:  # dropped below unless the value binds
                self.skipped[id(item)] = item
            try:
                value = _convert(item, slot.fd)
                if slot.repeated:
                    getattr(message, slot.name).append(value)
                    del self.skipped[id(item)]
                else:
                    setattr(message, slot.name, value)
            except UnknownEnumValue as problem:
                if self.lenient:
                    text = f"'{slot.name}': {problem}; kept as written"
                    self._report("W102", text, item.pos, "warning")
                else:
                    self._report("E103", f"'{slot.name}': {problem}", item.pos)
            except _ValueProblem as problem:
                code = "E103" if slot.fd.type == FD.TYPE_ENUM else "E102"
                self._report(code, f"'{slot.name}': {problem}", item.pos)
            except (ValueError, TypeError) as exc:
                self._report("E102", f"'{slot.name}': {exc}", item.pos)


def bind(
    doc: Tree, message_class: Callable[[], Message], lenient: bool = False
) -> tuple[Message, list[Diagnostic]]:
    """Build the typed message of ``doc``; return it with every diagnostic found.

    The message holds every value that bound; those with an error diagnostic are left out.
    """
    message, binder = bind_linked(doc, message_class, lenient)
    return message, binder.diagnostics


def bind_linked(
    doc: Tree, message_class: Callable[[], Message], lenient: bool = False
) -> tuple[Message, Binder]:
    """:func:`bind`, returning the binder: its ``diagnostics``, and what :func:`linked_elements`
    needs (``skipped``)."""
    message = message_class()
    binder = Binder(lenient)
    binder.bind_fields(doc.fields, message)
    return message, binder


def linked_elements(
    fields: list[Field], name: str, skipped: dict[int, Scalar | Block]
) -> list[tuple[Field, Scalar | Block]]:
    """The nodes that gave the entries of repeated field ``name`` of the message that
    ``fields`` bound into, as ``(field, item)`` pairs: the N-th made the N-th entry.

    Binding fills a repeated field from the fields of that name in file order, a ``[list]``
    contributing its items in order, and leaves out only the ``skipped`` items."""
    pairs = elements(fields, name)
    if skipped:
        pairs = [pair for pair in pairs if id(pair[1]) not in skipped]
    return pairs
