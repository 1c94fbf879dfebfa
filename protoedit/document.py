"""A loaded model file: the lossless tree, its typed message, and atomic saving."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from protoedit.errors import InputError, Location, excerpt
from protoedit.files import read_text, write_atomic
from protoedit.paths import Walk, absent, field_descriptors, missing_segments, parse_path, walk
from protoedit.schema import Schema, load_schema
from protoedit.schema.binding import (
    Binder,
    BindError,
    Diagnostic,
    bind_linked,
    is_repeated,
    linked_elements,
    scalar_value,
    type_label,
)
from protoedit.schema.values import render_value
from protoedit.syntax import parse, render
from protoedit.syntax.allocation import bulk_allocation
from protoedit.syntax.edit import insert_fields, remove_field, replace_item, replace_value
from protoedit.syntax.split import split_list
from protoedit.syntax.tree import Block, Field, ListValue, Scalar, Tok, Tree

#: Top-level message types tried, in order, when a file does not say what it is.
_DETECTABLE = ("NetParameter", "SolverParameter")


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
        full
        for full in schema.message_names()
        if names and names <= set(schema.descriptor(full).fields_by_name)
    ]
    return fits[0] if len(fits) == 1 else schema.qualified(_DETECTABLE[0])


def message_type_of(tree: Tree, schema: Schema, message_type: str | None) -> str:
    """The qualified message type: the one asked for, else what the content says."""
    return schema.qualified(message_type) if message_type else detect_type(tree, schema)


class Document:
    """A ``.prototxt`` as a lossless tree plus its typed protobuf message.

    ``dumps()`` is byte-identical to the input while the tree is untouched; edits re-render
    only what they change.  Every edit goes through a method of the document (by path:
    :meth:`set`, :meth:`insert`, :meth:`delete`; by node: :meth:`remove`, :meth:`insert_fields`,
    :meth:`replace_value`, :meth:`split_list`), which drops the message: it is rebuilt from
    the tree on first access, so it never goes stale.  :meth:`elements` links message entries
    to the nodes that gave them.  With ``best_effort``, ``message`` never raises:
    values that fail to bind are left out of it and listed in ``dropped``.
    """

    def __init__(
        self,
        tree: Tree,
        schema: Schema,
        message_type: str,
        lenient: bool = False,
        best_effort: bool = False,
    ) -> None:
        self.tree = tree
        self.schema = schema
        self.message_type = message_type
        self.lenient = lenient
        self.best_effort = best_effort
        self._message: Message | None = None
        self._skipped: dict[int, Scalar | Block] = {}  # what binding left out, by id
        self.warnings: list[Diagnostic] = []
        self.dropped: list[Diagnostic] = []  # best-effort mode: the errors left out
        self._outer: Document | None = None  # set by :meth:`nested`

    def nested(self, block: Block, message_type: str) -> Document:
        """The message written in ``block`` (a solver's inline ``net_param``) as a document of
        its own: it shares the block's fields, and each of its edits drops this document's
        message too."""
        inner = Document(
            Tree(block.fields, "", self.tree.source, self.tree.path),
            self.schema,
            self.schema.qualified(message_type),
            self.lenient,
        )
        inner._outer = self
        return inner

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
        with bulk_allocation():
            message, binder = bind_linked(self.tree, cls, self.lenient)
        diagnostics = binder.diagnostics
        self._skipped = binder.skipped
        errors = [d for d in diagnostics if d.severity == "error"]
        self.warnings = [d for d in diagnostics if d.severity != "error"]
        self.dropped = errors if self.best_effort else []
        if errors and not self.best_effort:
            raise _bind_error(errors, self.tree)
        return message

    def diagnostics(self) -> list[Diagnostic]:
        """Every schema problem in the file (errors and warnings), without raising.

        When there is no error, the message built on the way is kept as :attr:`message`, so a
        check followed by a lint binds once.
        """
        cls = self.schema.message_class(self.message_type)
        with bulk_allocation():
            message, binder = bind_linked(self.tree, cls, self.lenient)
        diagnostics = binder.diagnostics
        errors = [d for d in diagnostics if d.severity == "error"]
        if not errors and self._message is None:
            self._message, self._skipped = message, binder.skipped
            self.warnings = list(diagnostics)
            self.dropped = []
        return list(diagnostics)

    def location(self, pos: int) -> Location:
        """The ``path:line:col`` of a source offset."""
        line, col = self.tree.line_col(pos)
        return Location(self.path, line, col)

    def describe(self, diagnostic: Diagnostic) -> str:
        """``path:line:col: CODE message``."""
        return f"{self.location(diagnostic.pos)}: {diagnostic.code} {diagnostic.message}"

    def elements(self, container: Tree | Block, name: str) -> list[tuple[Field, Scalar | Block]]:
        """The nodes that gave the entries of repeated field ``name`` of ``container`` (the
        tree, or a block that bound), as ``(field, item)`` pairs in message order: the N-th
        pair made the N-th entry.  ``item`` is the field's value or an item of its ``[list]``;
        what failed to bind (best-effort mode) has no pair: binding noted what it left out."""
        self.message  # noqa: B018 - bind now if an edit dropped the message
        return linked_elements(container.fields, name, self._skipped)

    def invalidate(self) -> None:
        """Drop the message (rebuilt on next access), and that of the document this one is
        :meth:`nested` in.  The edit methods call it; only code that changes ``tree`` behind
        the document's back needs to."""
        self._message = None
        self._skipped = {}
        if self._outer is not None:
            self._outer.invalidate()

    # -- editing by node: each drops the message itself ---------------------------------------

    def remove(self, container: Tree | Block, field: Field) -> None:
        """Remove ``field`` from ``container`` with its own comments."""
        remove_field(container, field)
        self.invalidate()

    def insert_fields(
        self, container: Tree | Block, fields: list[Field], index: int | None = None
    ) -> None:
        """Insert detached ``fields`` (e.g. from :func:`~protoedit.syntax.edit.parse_fields`)
        into ``container`` at ``index`` (default: the end), laid out like their neighbours."""
        insert_fields(self.tree, container, fields, index)
        self.invalidate()

    def replace_value(self, field: Field, value: str | Scalar | Block | ListValue) -> None:
        """Give ``field`` a new value: text for a scalar (already valid, its trivia kept), or
        a node (e.g. a block re-written elsewhere)."""
        if isinstance(value, str):
            replace_value(field, value)
        else:
            field.value = value
        self.invalidate()

    def replace_item(self, item: Scalar, raw: str) -> None:
        """Give one element of a repeated scalar field (from :meth:`elements`) new text
        (already valid), whether it is a field's value or an item of a ``[list]``."""
        replace_item(item, raw)
        self.invalidate()

    def rename(self, field: Field, name: str) -> None:
        """Give ``field`` another name (e.g. V1 ``layers`` -> ``layer``), trivia kept."""
        field.name = Tok(name, field.name.pre, field.name.pos)
        self.invalidate()

    def split_list(self, container: Tree | Block, field: Field) -> list[Field]:
        """Write a list-form ``field`` of ``container`` as one field per item (the message
        stays the same); return the new fields."""
        new = split_list(self.tree, container, field)
        self.invalidate()
        return new

    def dumps(self) -> str:
        """The document's text (byte-identical to the input when untouched)."""
        return render(self.tree)

    # -- reading and editing by path ---------------------------------------------------------
    # A path that names a field the schema lacks is a PathError in every method (a lenient
    # document may hold such fields: there the names go unchecked); a valid path may match
    # nothing: find() gives [], delete() 0, get() the default where the message has one.

    def find(self, path: str) -> list[Field]:
        """The fields at ``path`` (see :mod:`protoedit.paths`), possibly none."""
        walked = self._walk(path, lenient=self.lenient)[0]
        return walked.picked if walked.complete else []

    def get(self, path: str) -> Any:
        """The typed value at ``path``: a scalar (enums as numbers), a message, or a list for
        a repeated field without a selector.  It reads the nodes :meth:`find` finds; a field
        the file leaves out reads as its default, as in the message (a selector that picks
        nothing has no default: an :class:`InputError`)."""
        walked, fds = self._walk(path)
        last = walked.segments[-1]
        fd = fds[-1]
        assert fd is not None  # strict look-up: unknown names raised above
        if walked.complete and walked.picked:
            values = [v for field in walked.picked for v in self._values(field, fd)]
            if last.index is None and last.key is None and is_repeated(fd):
                return values
            if len(walked.picked) > 1:
                raise InputError(
                    f"{path!r} matches {len(walked.picked)} fields; add [N] to pick one"
                )
            return values[0] if len(values) == 1 else values  # one field may hold a [list]
        missing = missing_segments(walked, fds)
        value: Any = self._container_message(walked.container, fds[: walked.depth])
        for segment in missing:
            value = getattr(value, segment.name)
        return list(value) if is_repeated(fd) else value

    def set(self, path: str, value: Any) -> None:
        """Set a scalar field, inserting it (and missing parent messages) if absent; the rest
        of the text is untouched.  A value the field's type refuses is a :class:`BindError`,
        raised before anything changes."""
        walked, fds = self._walk(path, lenient=self.lenient)
        fd = fds[-1]
        if fd is not None and fd.message_type is not None:
            raise BindError(
                f"{path!r} is a message ({type_label(fd)}): insert its fields as text instead"
            )
        if walked.complete and len(walked.picked) > 1:
            raise InputError(f"{path!r} matches {len(walked.picked)} fields; pick one with [N]")
        target = walked.picked[0] if walked.complete and walked.picked else None
        if target is not None and not isinstance(target.value, Scalar):
            raise InputError(f"{path!r} is a message or list; set its fields instead")
        where = target.value.pos if target is not None else _pos_of(walked.container)
        raw = self._render(path, value, fd, where)
        if target is not None:
            replace_value(target, raw)
            self.invalidate()
            return
        missing = missing_segments(walked, fds)
        text = f"{missing[-1].name}: {raw}"
        for segment in reversed(missing[:-1]):
            text = f"{segment.name} {{ {text} }}"
        fields = _detached(parse(text, "<set>").fields)
        self._insert(walked.container, fields, None, len(missing) == 1)
        self.invalidate()

    def insert(self, path: str, text: str, index: int | None = None) -> None:
        """Insert fields written as text (e.g. ``'layer { name: "x" ... }'``) into the
        message at ``path`` (``""`` for the top level), at ``index`` or after its kind.

        The snippet is bound against the schema in its new place first: a problem is a
        :class:`BindError` located in the snippet, and the tree is left as it was."""
        container: Tree | Block = self.tree
        descriptor: Descriptor | None = self.schema.descriptor(self.message_type)
        if path:
            walked, fds = self._walk(path, lenient=self.lenient)
            if not walked.complete or not walked.picked:
                raise absent(walked)  # what there is instead, with the nearest names
            picked = walked.picked
            if len(picked) != 1 or not isinstance(picked[0].value, Block):
                raise InputError(f"{path!r} must name exactly one message to insert into")
            container = picked[0].value
            descriptor = fds[-1].message_type if fds[-1] is not None else None
        snippet = parse(text, "<snippet>")
        if descriptor is not None:
            self._check_snippet(snippet, container, descriptor, path)
        fields = _detached(snippet.fields)
        if not fields:
            return
        scalars_first = all(isinstance(f.value, Scalar) for f in fields)
        self._insert(container, fields, index, scalars_first)
        self.invalidate()

    def delete(self, path: str) -> int:
        """Remove every field at ``path`` with its own comments; return how many (0 when a
        valid path matches nothing)."""
        walked = self._walk(path, lenient=self.lenient)[0]
        fields = walked.picked if walked.complete else []
        for field in fields:
            remove_field(walked.container, field)
        if fields:
            self.invalidate()
        return len(fields)

    def _walk(self, path: str, lenient: bool = False) -> tuple[Walk, list[FieldDescriptor | None]]:
        """How far ``path`` goes in the tree, and the schema field of each segment: a name
        the schema lacks is a :class:`~protoedit.paths.PathError` (unless ``lenient``)."""
        segments = parse_path(path)
        descriptor = self.schema.descriptor(self.message_type)
        fds = field_descriptors(descriptor, segments, path, allow_unknown=lenient)
        return walk(self.tree, path), fds

    def _insert(
        self, container: Tree | Block, fields: list[Field], index: int | None, scalar: bool
    ) -> None:
        if index is None:
            index = _default_position(container.fields, fields[0].name.text, scalar)
        insert_fields(self.tree, container, fields, index)

    def _values(self, field: Field, fd: FieldDescriptor) -> list[Any]:
        """The typed values one tree field holds (several for a ``[list]``)."""
        value = field.value
        items: list[Scalar | Block] = value.items if isinstance(value, ListValue) else [value]
        out: list[Any] = []
        for item in items:
            if isinstance(item, Block):
                assert fd.message_type is not None
                out.append(self._bind_block(item, fd.message_type))
                continue
            try:
                out.append(scalar_value(item, fd))
            except ValueError as problem:
                code = "E103" if fd.enum_type is not None else "E102"
                diagnostic = Diagnostic(code, f"'{fd.name}': {problem}", item.pos)
                raise _bind_error([diagnostic], self.tree) from None
        return out

    def _bind_block(self, block: Block | Tree, descriptor: Descriptor) -> Message:
        """The message one block of the tree binds to (a document's top level, or a block)."""
        message = self.schema.message_class(descriptor.full_name)()
        binder = Binder(self.lenient)
        binder.bind_fields(block.fields, message)
        errors = [d for d in binder.diagnostics if d.severity == "error"]
        if errors and not self.best_effort:
            raise _bind_error(errors, self.tree)
        return message

    def _container_message(
        self, container: Tree | Block, fds: list[FieldDescriptor | None]
    ) -> Message:
        if isinstance(container, Tree):
            return self.message  # type: ignore[no-any-return]
        descriptor = fds[-1].message_type if fds and fds[-1] is not None else None
        assert descriptor is not None
        return self._bind_block(container, descriptor)

    def _render(self, path: str, value: Any, fd: FieldDescriptor | None, pos: int) -> str:
        """The text for ``value`` in field ``fd``, checked the way binding will check it."""
        location = self.location(pos) if pos >= 0 else Location(self.path)
        detail = excerpt(self.tree.source, location.line, location.column) if pos >= 0 else ""
        given = f"cannot set {path!r} to {value!r}"
        try:
            raw = render_value(value, fd)
        except InputError as exc:
            raise BindError(f"{given}: {exc.message}", location, detail) from None
        if fd is not None:
            try:
                scalar_value(Scalar([Tok(raw)]), fd)
            except ValueError as problem:
                raise BindError(f"{given}: {problem}", location, detail) from None
        return raw

    def _check_snippet(
        self, snippet: Tree, container: Tree | Block, descriptor: Descriptor, path: str
    ) -> None:
        """Bind a snippet where it would go: its own problems, and a non-repeated field the
        container already has."""
        message = self.schema.message_class(descriptor.full_name)()
        binder = Binder(self.lenient)
        binder.bind_fields(snippet.fields, message)
        errors = [d for d in binder.diagnostics if d.severity == "error"]
        present = {f.name.text for f in container.fields}
        for field in snippet.fields:
            fd = descriptor.fields_by_name.get(field.name.text)
            if fd is not None and not is_repeated(fd) and fd.name in present:
                text = f"'{fd.name}' is already set there, and it is not a repeated field"
                errors.append(Diagnostic("E104", text + " (set() changes it)", field.pos))
        if errors:
            errors.sort(key=lambda d: d.pos)
            into = f"{path!r}" if path else "the top level"
            raise _bind_error(errors, snippet, f" (not inserted into {into} of {self.path})")

    def save(self, path: str | os.PathLike[str] | None = None) -> None:
        """Write the text atomically (temp file in the same folder, then rename); text that
        no longer fits the schema is a :class:`BindError` and nothing is written."""
        target = Path(path) if path is not None else Path(self.path)
        text = self.dumps()
        check = Document(parse(text, str(target)), self.schema, self.message_type, self.lenient)
        check.bind()
        write_atomic(target, text)


def _bind_error(errors: list[Diagnostic], tree: Tree, suffix: str = "") -> BindError:
    """The first of ``errors`` as a located :class:`BindError` (the rest counted in it)."""
    first = errors[0]
    line, col = tree.line_col(first.pos)

    def where(pos: int) -> Location:
        return Location(tree.path, *tree.line_col(pos))

    others = [f"{where(d.pos)}: {d.code} {d.message}" for d in errors[1:]]
    detail = excerpt(tree.source, line, col) if line > 0 else ""
    if others:
        detail += f"\n  (and {len(others)} more)"
    return BindError(first.message + suffix, Location(tree.path, line, col), detail, others)


def _pos_of(container: Tree | Block) -> int:
    """Where new fields of ``container`` would go, for messages: its opening brace."""
    return container.open.pos if isinstance(container, Block) else -1


def _detached(fields: list[Field]) -> list[Field]:
    """Forget the snippet offsets of new fields: they would point into the wrong text."""
    for field in fields:
        tokens = [field.name, field.colon, field.sep]
        value = field.value
        items: list[Scalar | Block] = value.items if isinstance(value, ListValue) else [value]
        if isinstance(value, ListValue):
            tokens += [value.open, value.close, *value.commas]
        for item in items:
            if isinstance(item, Scalar):
                tokens += item.parts
            else:
                tokens += [item.open, item.close]
                _detached(item.fields)
        for token in tokens:
            if token is not None:
                token.pos = -1
    return fields


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
