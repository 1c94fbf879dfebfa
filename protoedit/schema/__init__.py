"""Caffe's schema: the built-in ``caffe.proto`` facts, or a fork's file parsed at run time."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from protoedit.errors import InputError, Location
from protoedit.schema.proto_parser import SchemaError, parse_proto

BUILTIN_PROTO = Path(__file__).resolve().parent / "caffe.proto"


class Schema:
    """A descriptor pool built from one proto2 file, with message classes by name."""

    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.file = parse_proto(text, path)
        self.package = self.file.package
        self.pool = descriptor_pool.DescriptorPool()
        try:
            self.pool.AddSerializedFile(self.file.SerializeToString())
        except Exception as exc:  # the pool's own consistency checks (duplicate numbers, ...)
            raise SchemaError(f"the schema is inconsistent: {exc}", Location(path)) from exc
        self._classes: dict[str, type[Message]] = {}

    def qualified(self, name: str) -> str:
        """``NetParameter`` -> ``caffe.NetParameter`` (names already qualified pass through)."""
        if "." in name or not self.package:
            return name
        return f"{self.package}.{name}"

    def descriptor(self, name: str) -> Descriptor:
        """The descriptor of message ``name`` (short or qualified)."""
        try:
            return self.pool.FindMessageTypeByName(self.qualified(name))
        except KeyError:
            raise InputError(f"the schema has no message '{name}'", Location(self.path)) from None

    def message_class(self, name: str) -> type[Message]:
        """The generated class of message ``name``."""
        full = self.qualified(name)
        cls = self._classes.get(full)
        if cls is None:
            cls = message_factory.GetMessageClass(self.descriptor(full))
            self._classes[full] = cls
        return cls

    def message_names(self) -> list[str]:
        """Qualified names of the file's top-level messages."""
        prefix = f"{self.package}." if self.package else ""
        return [prefix + m.name for m in self.file.message_type]

    @classmethod
    def from_file(cls, path: str | Path) -> Schema:
        """Parse a user's ``.proto`` (e.g. a fork's ``caffe.proto``)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read schema: {exc.strerror}", Location(str(path))) from None
        return cls(text, str(path))


@lru_cache(maxsize=1)
def builtin_schema() -> Schema:
    """protoedit's own schema for BVLC Caffe (facts of Caffe master, our wording)."""
    return Schema(BUILTIN_PROTO.read_text(encoding="utf-8"), str(BUILTIN_PROTO))


@lru_cache(maxsize=16)
def _schema_at(path: str, mtime: float) -> Schema:
    return Schema.from_file(path)


def load_schema(schema: str | Path | Schema | None) -> Schema:
    """The built-in schema for ``None``, a parsed file for a path (cached by path and mtime)."""
    if schema is None:
        return builtin_schema()
    if isinstance(schema, Schema):
        return schema
    path = Path(schema)
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        raise InputError(f"cannot read schema: {exc.strerror}", Location(str(path))) from None
    return _schema_at(str(path.resolve()), mtime)


__all__ = ["BUILTIN_PROTO", "Schema", "SchemaError", "builtin_schema", "load_schema"]


def read_binary(
    path: str | os.PathLike[str],
    message_name: str,
    what: str,
    invalid: str,
    error: type[InputError] = InputError,
) -> Any:
    """The file at ``path`` parsed as a binary ``message_name`` of the built-in schema.

    A file that cannot be read is ``error("cannot read WHAT: ...")`` and one that does not
    parse is ``error(invalid)``, both located at the path.
    """
    where = Location(str(path))
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror or exc}", where) from None
    message: Any = builtin_schema().message_class(message_name)()
    try:
        message.ParseFromString(data)
    except Exception:  # protobuf's DecodeError, and upb's variants of it
        raise error(invalid, where) from None
    return message
