"""A ``.proto`` file (proto2, as ``caffe.proto`` and its forks write it) -> protobuf descriptors.

Parsed by ``grammars/proto.lark`` into a ``FileDescriptorProto``, type names resolved with
protobuf's scoping rules, then loaded into a fresh ``DescriptorPool``: no ``protoc`` needed.
"""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, text_encoding
from google.protobuf.descriptor_pb2 import FieldDescriptorProto
from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedInput, VisitError

from protoedit.errors import Location, ProtoeditError, excerpt
from protoedit.grammars import GRAMMARS

SCALAR_TYPES = {
    "double": FieldDescriptorProto.TYPE_DOUBLE,
    "float": FieldDescriptorProto.TYPE_FLOAT,
    "int64": FieldDescriptorProto.TYPE_INT64,
    "uint64": FieldDescriptorProto.TYPE_UINT64,
    "int32": FieldDescriptorProto.TYPE_INT32,
    "fixed64": FieldDescriptorProto.TYPE_FIXED64,
    "fixed32": FieldDescriptorProto.TYPE_FIXED32,
    "bool": FieldDescriptorProto.TYPE_BOOL,
    "string": FieldDescriptorProto.TYPE_STRING,
    "bytes": FieldDescriptorProto.TYPE_BYTES,
    "uint32": FieldDescriptorProto.TYPE_UINT32,
    "sfixed32": FieldDescriptorProto.TYPE_SFIXED32,
    "sfixed64": FieldDescriptorProto.TYPE_SFIXED64,
    "sint32": FieldDescriptorProto.TYPE_SINT32,
    "sint64": FieldDescriptorProto.TYPE_SINT64,
}
LABELS = {
    "optional": FieldDescriptorProto.LABEL_OPTIONAL,
    "required": FieldDescriptorProto.LABEL_REQUIRED,
    "repeated": FieldDescriptorProto.LABEL_REPEATED,
}


class SchemaError(ProtoeditError):
    """A schema file could not be parsed or its types do not resolve."""


#: The escapes protoc's tokenizer knows; any other backslash is an error there too.
_ESCAPE = re.compile(
    r"\\(?:[abfnrtv\\?'\"]|[0-7]{1,3}|x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|(.?))"
)


def _string(token: Token, text: str, path: str) -> str:
    """The value of a quoted proto string literal: C escapes read as protobuf reads them
    (``CUnescape`` gives bytes, as protoc does), then decoded as UTF-8."""

    def check(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            raise _located(f"invalid escape '{match.group()}' in a string", token, text, path)
        return "?" if match.group() == "\\?" else match.group()  # \? is C's, not Python's

    body = _ESCAPE.sub(check, token[1:-1])
    try:
        return text_encoding.CUnescape(body).decode("utf-8")
    except UnicodeDecodeError:
        raise _located("the string is not UTF-8 once unescaped", token, text, path) from None


def _located(message: str, token: Token, text: str, path: str) -> SchemaError:
    line, col = token.line or 0, token.column or 0
    return SchemaError(message, Location(path, line, col), excerpt(text, line, col))


def _normal_default(text: str, kind: int) -> str:
    """A default value spelled as protoc writes it into descriptors (``1.`` -> ``1``,
    ``0.7`` in a float field -> ``0.699999988``), so descriptors compare equal."""
    if kind in (FieldDescriptorProto.TYPE_FLOAT, FieldDescriptorProto.TYPE_DOUBLE):
        try:
            value = float(text)
        except ValueError:
            return text  # inf, -inf, nan
        if math.isinf(value) or math.isnan(value):
            return text
        if kind == FieldDescriptorProto.TYPE_FLOAT:  # protoc prints the float32 value with 9 digits
            return f"{struct.unpack('f', struct.pack('f', value))[0]:.9g}"
        return f"{value:.17g}"
    if kind in SCALAR_TYPES.values() and kind not in (
        FieldDescriptorProto.TYPE_STRING,
        FieldDescriptorProto.TYPE_BYTES,
        FieldDescriptorProto.TYPE_BOOL,
    ):
        try:
            return str(int(text, 0))
        except ValueError:
            return text
    return text


class _ToDescriptor(Transformer[Token, Any]):
    """Builds descriptor protos bottom-up; type names stay unresolved until :func:`_resolve`."""

    def __init__(self, text: str, path: str) -> None:
        super().__init__()
        self.text = text
        self.path = path

    def _string(self, token: Token) -> str:
        return _string(token, self.text, self.path)

    def start(self, items: list[Any]) -> descriptor_pb2.FileDescriptorProto:
        fdp = descriptor_pb2.FileDescriptorProto(syntax="proto2")
        for kind, value in (item for item in items if item is not None):
            if kind == "syntax":
                fdp.syntax = value
            elif kind == "package":
                fdp.package = value
            elif kind == "message":
                fdp.message_type.append(value)
            elif kind == "enum":
                fdp.enum_type.append(value)
        return fdp

    def syntax(self, items: list[Token]) -> tuple[str, str]:
        return ("syntax", self._string(items[0]))

    def package(self, items: list[str]) -> tuple[str, str]:
        return ("package", items[0])

    def import_(self, items: list[Any]) -> tuple[str, str]:
        return ("import", self._string(items[-1]))

    def option(self, items: list[Any]) -> tuple[str, Any]:
        return ("option", items)

    def full_ident(self, items: list[Token]) -> str:
        return ".".join(items)

    def type_name(self, items: list[Any]) -> str:
        return "".join(str(item) for item in items)

    def option_name(self, items: list[Any]) -> str:
        return ".".join(str(item) for item in items)

    def constant(self, items: list[Any]) -> str:
        if len(items) == 2:  # SIGN full_ident, e.g. -inf
            return f"{items[0]}{items[1]}"
        token = items[0]
        if isinstance(token, Token) and token.type == "STRING":
            return "\0" + self._string(token)  # marks a string constant
        return str(token)

    def field_option(self, items: list[Any]) -> tuple[str, str]:
        return (items[0], items[1])

    def field_options(self, items: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return items

    def field(self, items: list[Any]) -> tuple[str, FieldDescriptorProto]:
        label, type_name, name, number, options = items
        field = FieldDescriptorProto(
            name=str(name), number=int(number, 0), label=LABELS[str(label)]
        )
        if type_name in SCALAR_TYPES:
            field.type = SCALAR_TYPES[type_name]
        else:
            field.type_name = type_name  # resolved later
        for key, value in options or []:
            if key == "default":
                field.default_value = _normal_default(value.lstrip("\0"), field.type)
            elif key == "packed":
                field.options.packed = value == "true"
            elif key == "deprecated":
                field.options.deprecated = value == "true"
        return ("field", field)

    def enum_value(self, items: list[Any]) -> tuple[str, descriptor_pb2.EnumValueDescriptorProto]:
        return (
            "value",
            descriptor_pb2.EnumValueDescriptorProto(name=str(items[0]), number=int(items[1], 0)),
        )

    def enum(self, items: list[Any]) -> tuple[str, descriptor_pb2.EnumDescriptorProto]:
        enum = descriptor_pb2.EnumDescriptorProto(name=str(items[0]))
        for kind, value in (item for item in items[1:] if item is not None):
            if kind == "value":
                enum.value.append(value)
            elif kind == "option" and value[0] == "allow_alias":
                enum.options.allow_alias = value[1] == "true"
        return ("enum", enum)

    def message(self, items: list[Any]) -> tuple[str, descriptor_pb2.DescriptorProto]:
        message = descriptor_pb2.DescriptorProto(name=str(items[0]))
        for kind, value in (item for item in items[1:] if item is not None):
            if kind == "field":
                message.field.append(value)
            elif kind == "message":
                message.nested_type.append(value)
            elif kind == "enum":
                message.enum_type.append(value)
            elif kind == "extensions":
                for start, end in value:
                    message.extension_range.add(start=start, end=end)
            elif kind == "reserved":
                for start, end in value:
                    message.reserved_range.add(start=start, end=end)
        return ("message", message)

    def range(self, items: list[Any]) -> tuple[int, int]:
        start = int(items[0], 0)
        if len(items) < 2 or items[1] is None:
            return (start, start + 1)
        end = 536870912 if items[1] == "max" else int(items[1], 0) + 1
        return (start, end)

    def extensions(self, items: list[tuple[int, int]]) -> tuple[str, list[tuple[int, int]]]:
        return ("extensions", items)

    def reserved(self, items: list[Any]) -> tuple[str, list[tuple[int, int]]]:
        return ("reserved", [item for item in items if isinstance(item, tuple)])


def _resolve(fdp: descriptor_pb2.FileDescriptorProto, path: str) -> None:
    """Give every message/enum-typed field its fully qualified type name and its kind."""
    package = f".{fdp.package}" if fdp.package else ""
    kinds: dict[str, int] = {}

    def collect(scope: str, messages: Any, enums: Any) -> None:
        for enum in enums:
            kinds[f"{scope}.{enum.name}"] = FieldDescriptorProto.TYPE_ENUM
        for message in messages:
            name = f"{scope}.{message.name}"
            kinds[name] = FieldDescriptorProto.TYPE_MESSAGE
            collect(name, message.nested_type, message.enum_type)

    collect(package, fdp.message_type, fdp.enum_type)

    def lookup(scope: str, name: str) -> str | None:
        if name.startswith("."):
            return name if name in kinds else None
        first, _, rest = name.partition(".")
        while True:
            candidate = f"{scope}.{first}"
            if candidate in kinds or any(k.startswith(candidate + ".") for k in kinds):
                full = f"{candidate}.{rest}" if rest else candidate
                return full if full in kinds else None
            if not scope:
                return None
            scope = scope.rpartition(".")[0]

    def visit(scope: str, messages: Any) -> None:
        for message in messages:
            inner = f"{scope}.{message.name}"
            for field in message.field:
                if field.type_name and not field.HasField("type"):
                    full = lookup(inner, field.type_name)
                    if full is None:
                        raise SchemaError(
                            f"unknown type '{field.type_name}' of field '{inner[1:]}.{field.name}'",
                            Location(path),
                        )
                    field.type_name = full
                    field.type = kinds[full]
            visit(inner, message.nested_type)

    visit(package, fdp.message_type)


_PARSER: Lark | None = None


def parse_proto(text: str, path: str = "<schema>") -> descriptor_pb2.FileDescriptorProto:
    """Parse proto2 schema text into a resolved ``FileDescriptorProto``."""
    global _PARSER
    if _PARSER is None:
        _PARSER = Lark((GRAMMARS / "proto.lark").read_text(), parser="lalr")
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as exc:
        line, col = exc.line, exc.column
        raise SchemaError(
            "cannot parse the schema here", Location(path, line, col), excerpt(text, line, col)
        ) from None
    try:
        fdp: descriptor_pb2.FileDescriptorProto = _ToDescriptor(text, path).transform(tree)
    except VisitError as exc:  # Lark wraps what a callback raises
        if isinstance(exc.orig_exc, SchemaError):
            raise exc.orig_exc from None
        raise
    fdp.name = Path(path).name if path != "<schema>" else "schema.proto"
    _resolve(fdp, path)
    return fdp
