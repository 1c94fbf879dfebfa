"""A loaded model file: the lossless tree, its typed message, and atomic saving."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from protoedit.errors import InputError, Location, ProtoeditError, excerpt
from protoedit.paths import parse_path, resolve
from protoedit.schema import Schema, load_schema
from protoedit.schema.binding import Diagnostic, bind, suggest
from protoedit.schema.values import render_value
from protoedit.syntax import parse, render
from protoedit.syntax.edit import (
    insert_fields,
    new_scalar_field,
    parse_fields,
    remove_field,
    replace_value,
)
from protoedit.syntax.tree import Block, Field, Scalar
from protoedit.syntax.tree import Document as Tree

#: Top-level message types tried, in order, when a file does not say what it is.
_DETECTABLE = ("NetParameter", "SolverParameter")


class BindError(ProtoeditError):
    """The text parses but does not fit the schema (unknown field, wrong type, ...)."""

    def __init__(self, message: str, location: Location, detail: str, others: list[str]) -> None:
        super().__init__(message, location, detail)
        self.others = others  # the further problems, formatted, after this first one


def detect_type(tree: Tree, schema: Schema) -> str:
    """The message type a file holds: ``NetParameter`` unless its fields say otherwise."""
    names = {field.name.text for field in tree.fields}
    for candidate in _DETECTABLE:
        try:
            descriptor = schema.descriptor(candidate)
        except InputError:
            continue
        if names <= set(descriptor.fields_by_name):
            return schema.qualified(candidate)
    fits = [
        full for full in schema.message_names()
        if names and names <= set(schema.descriptor(full).fields_by_name)
    ]  # fmt: skip
    return fits[0] if len(fits) == 1 else schema.qualified(_DETECTABLE[0])


def message_type_of(tree: Tree, schema: Schema, message_type: str | None) -> str:
    """The qualified message type: the one asked for, else what the content says."""
    return schema.qualified(message_type) if message_type else detect_type(tree, schema)


class Document:
    """A ``.prototxt`` as a lossless tree plus its typed protobuf message.

    ``dumps()`` is byte-identical to the input while the tree is untouched; edits (see
    :mod:`protoedit.edit`) re-render only what they change.  ``message`` is rebuilt from the
    tree on first access after an edit.
    """

    def __init__(
        self,
        tree: Tree,
        schema: Schema,
        message_type: str,
        lenient: bool = False,
    ) -> None:
        self.tree = tree
        self.schema = schema
        self.message_type = message_type
        self.lenient = lenient
        self._message: Message | None = None
        self.warnings: list[Diagnostic] = []

    @property
    def path(self) -> str:
        """The file's path as given (``<string>`` for text)."""
        return self.tree.path

    @property
    def message(self) -> Any:
        """The typed message (e.g. ``caffe.NetParameter``); raises :class:`BindError`."""
        if self._message is None:
            self._message = self.bind()
        return self._message

    def bind(self) -> Message:
        """Build the message from the tree now, raising the first error found."""
        cls = self.schema.message_class(self.message_type)
        message, diagnostics = bind(self.tree, cls, self.lenient)
        errors = [d for d in diagnostics if d.severity == "error"]
        self.warnings = [d for d in diagnostics if d.severity != "error"]
        if errors:
            first = errors[0]
            line, col = self.tree.line_col(first.pos)
            others = [self.describe(d) for d in errors[1:]]
            detail = excerpt(self.tree.source, line, col)
            if others:
                detail += f"\n  (and {len(others)} more)"
            raise BindError(first.message, Location(self.path, line, col), detail, others)
        return message

    def diagnostics(self) -> list[Diagnostic]:
        """Every schema problem in the file (errors and warnings), without raising."""
        cls = self.schema.message_class(self.message_type)
        return bind(self.tree, cls, self.lenient)[1]

    def location(self, pos: int) -> Location:
        """The ``path:line:col`` of a source offset."""
        line, col = self.tree.line_col(pos)
        return Location(self.path, line, col)

    def describe(self, diagnostic: Diagnostic) -> str:
        """``path:line:col: CODE message``."""
        return f"{self.location(diagnostic.pos)}: {diagnostic.code} {diagnostic.message}"

    def changed(self) -> None:
        """Call after editing the tree: the message is rebuilt on next access."""
        self._message = None

    def dumps(self) -> str:
        """The document's text (byte-identical to the input when untouched)."""
        return render(self.tree)

    # -- editing ----------------------------------------------------------------------------

    def find(self, path: str) -> list[Field]:
        """The fields at ``path`` (see :mod:`protoedit.paths`), possibly none."""
        return resolve(self.tree, path).fields

    def get(self, path: str) -> Any:
        """The value at ``path`` as the typed message holds it (a scalar, list or message)."""
        target: Any = self.message
        for segment in parse_path(path):
            value = getattr(target, segment.name)
            if segment.key is not None:
                matches = [v for v in value if str(getattr(v, segment.key)) == segment.value]
                if len(matches) != 1:
                    raise InputError(f"{segment} matches {len(matches)} entries in {path!r}")
                value = matches[0]
            elif segment.index is not None:
                value = value[segment.index]
            target = value
        return target

    def set(self, path: str, value: Any) -> None:
        """Set a scalar field, inserting it if absent; the rest of the text is untouched."""
        where = resolve(self.tree, path)
        fd = self._field_descriptor(where.names)
        raw = render_value(value, fd)
        if len(where.fields) > 1:
            raise InputError(f"{path!r} matches {len(where.fields)} fields; pick one with [N]")
        if where.fields:
            target = where.fields[0]
            if not isinstance(target.value, Scalar):
                raise InputError(f"{path!r} is a message or list; set its fields instead")
            replace_value(target, raw)
        else:
            if where.last.index is not None or where.last.key is not None:
                raise InputError(f"no field at {path!r}")
            self._insert(where.container, [new_scalar_field(where.last.name, raw)], None, True)
        self.changed()

    def insert(self, path: str, text: str, index: int | None = None) -> None:
        """Insert fields written as text (e.g. ``'layer { name: "x" ... }'``) into the
        message at ``path`` (``""`` for the top level), at ``index`` or after its kind."""
        container: Tree | Block = self.tree
        if path:
            where = resolve(self.tree, path)
            if len(where.fields) != 1 or not isinstance(where.fields[0].value, Block):
                raise InputError(f"{path!r} must name exactly one message to insert into")
            container = where.fields[0].value
        fields = parse_fields(text)
        scalars_first = all(isinstance(f.value, Scalar) for f in fields)
        self._insert(container, fields, index, scalars_first)
        self.changed()

    def delete(self, path: str) -> int:
        """Remove every field at ``path`` with its own comments; return how many."""
        where = resolve(self.tree, path)
        for field in where.fields:
            remove_field(where.container, field)
        if where.fields:
            self.changed()
        return len(where.fields)

    def _insert(
        self, container: Tree | Block, fields: list[Field], index: int | None, scalar: bool
    ) -> None:
        if index is None:
            index = _default_position(container.fields, fields[0].name.text, scalar)
        insert_fields(self.tree, container, fields, index)

    def _field_descriptor(self, names: list[str]) -> Any:
        descriptor = self.schema.descriptor(self.message_type)
        fd = None
        for name in names:
            fd = descriptor.fields_by_name.get(name)
            if fd is None:
                raise InputError(
                    f"{descriptor.full_name} has no field '{name}'"
                    + suggest(name, list(descriptor.fields_by_name))
                )
            if fd.message_type is not None:
                descriptor = fd.message_type
        return fd

    def save(self, path: str | os.PathLike[str] | None = None) -> None:
        """Write the text atomically (temp file in the same folder, then rename)."""
        target = Path(path) if path is not None else Path(self.path)
        write_atomic(target, self.dumps())


def _default_position(fields: list[Field], name: str, scalar: bool) -> int:
    """Where a new field goes: after the last field of its name; else a scalar after the
    leading run of scalars (``force_backward`` lands beside ``name``), a message at the end."""
    for index in range(len(fields) - 1, -1, -1):
        if fields[index].name.text == name:
            return index + 1
    if scalar:
        index = 0
        while index < len(fields) and isinstance(fields[index].value, Scalar):
            index += 1
        return index
    return len(fields)


def write_atomic(target: Path, text: str) -> None:
    """Replace ``target`` with ``text`` so that a reader never sees a half-written file.

    The new content goes to a temporary file beside the target (same file system), is
    flushed to disk, takes over the target's permissions, and is renamed over it.
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror}", Location(str(target))) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_text(path: str | os.PathLike[str]) -> str:
    """A model file's text, exactly (no newline translation); errors name the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", Location(str(path))) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise InputError("the file is not valid UTF-8", Location(str(path), line, col)) from None


def loads(
    text: str,
    schema: str | os.PathLike[str] | Schema | None = None,
    lenient: bool = False,
    path: str = "<string>",
    message_type: str | None = None,
) -> Document:
    """Parse text into a :class:`Document` and bind it (raises :class:`ProtoeditError`)."""
    tree = parse(text, path)
    resolved = load_schema(schema)  # type: ignore[arg-type]
    doc = Document(tree, resolved, message_type_of(tree, resolved, message_type), lenient)
    doc.message  # bind now: a file that does not fit the schema is an error at load  # noqa: B018
    return doc


def load(
    path: str | os.PathLike[str],
    schema: str | os.PathLike[str] | Schema | None = None,
    lenient: bool = False,
    message_type: str | None = None,
) -> Document:
    """Read and parse a file into a :class:`Document` (raises :class:`ProtoeditError`)."""
    return loads(read_text(path), schema, lenient, str(path), message_type)
