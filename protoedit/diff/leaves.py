"""A message as flat leaves (``convolution_param.kernel_size``: value) and where each is written.

Leaves compare by value, so an explicit default equals an absent field and ``0.1`` equals
``0.10``: what Caffe reads is what counts.  Paths index repeated messages (``param[1].lr_mult``);
a repeated scalar is one leaf holding a tuple.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from google.protobuf.descriptor import FieldDescriptor

from protoedit.schema.binding import is_repeated
from protoedit.schema.values import format_float, quote
from protoedit.syntax.split import element_pos
from protoedit.syntax.tree import Block, Tree

if TYPE_CHECKING:
    from protoedit.document import Document

FD = FieldDescriptor


class _Absent:
    """The value of a leaf under a repeated entry the message does not have."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Segment:
    """One step of a leaf path: a field name and, for a repeated message, the entry."""

    name: str
    index: int | None = None

    def __str__(self) -> str:
        return self.name if self.index is None else f"{self.name}[{self.index}]"


Path = tuple[Segment, ...]
Leaves = dict[Path, tuple[FieldDescriptor, Any]]


def leaves(message: Any, skip: frozenset[str] = frozenset(), prefix: Path = ()) -> Leaves:
    """Every set scalar below ``message`` (fields named in ``skip`` left out at the top)."""
    out: Leaves = {}
    for fd, value in message.ListFields():
        if fd.name in skip:
            continue
        if fd.type != FD.TYPE_MESSAGE:
            out[(*prefix, Segment(fd.name))] = (fd, tuple(value) if is_repeated(fd) else value)
        elif is_repeated(fd):
            out[(*prefix, Segment(fd.name, -1))] = (fd, len(value))  # the entry count
            for index, item in enumerate(value):
                out.update(leaves(item, frozenset(), (*prefix, Segment(fd.name, index))))
        else:
            out.update(leaves(value, frozenset(), (*prefix, Segment(fd.name))))
    return out


def lookup(message: Any, path: Path, fd: FieldDescriptor) -> Any:
    """The value Caffe reads at ``path`` (the default when unset), or :data:`ABSENT`."""
    value = message
    for segment in path:
        value = getattr(value, segment.name)
        if segment.index == -1:
            return len(value)
        if segment.index is not None:
            if segment.index >= len(value):
                return ABSENT
            value = value[segment.index]
    return tuple(value) if is_repeated(fd) else value


def enclosed_absent(message: Any, path: Path) -> bool:
    """Whether a sub-message on the way to ``path`` is unset in ``message``: the leaf then
    reads its default, which shows as ``(absent)``: a Data layer's ``data_param.backend``
    against an Input layer has no ``LEVELDB`` of its own."""
    value = message
    for segment in path[:-1]:
        if segment.index is None and not value.HasField(segment.name):
            return True
        value = getattr(value, segment.name)
        if segment.index is not None:
            if segment.index < 0 or segment.index >= len(value):
                return False  # an entry count, or an entry lookup() reports ABSENT
            value = value[segment.index]
    return False


def show_path(path: Path) -> str:
    """``convolution_param.kernel_size``; an entry count reads ``param (entries)``."""
    text = ".".join(str(s) if s.index != -1 else s.name for s in path)
    return f"{text} (entries)" if path and path[-1].index == -1 else text


def show_value(value: Any, fd: FieldDescriptor) -> str:
    """The value as text format spells it; a repeated scalar as ``[a, b]``."""
    if value is ABSENT:
        return "(absent)"
    if isinstance(value, tuple):
        return "[" + ", ".join(show_value(v, fd) for v in value) + "]"
    if fd.type == FD.TYPE_MESSAGE:  # an entry count
        return str(value)
    if fd.type == FD.TYPE_ENUM:
        found = fd.enum_type.values_by_number.get(value) if fd.enum_type else None
        return found.name if found is not None else str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, bytes):
        return quote(value.decode("latin-1"))
    if fd.type == FD.TYPE_FLOAT:
        text = str(np.float32(value))  # the shortest spelling that reads back as this float32
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, float):
        return format_float(value)
    return str(value)


def json_value(value: Any, fd: FieldDescriptor) -> Any:
    """The value for JSON: numbers and booleans as such, enums by name, absent as null."""
    if value is ABSENT:
        return None
    if isinstance(value, tuple):
        return [json_value(v, fd) for v in value]
    if fd.type == FD.TYPE_ENUM:
        return show_value(value, fd)
    if fd.type == FD.TYPE_FLOAT:
        return float(str(np.float32(value)))
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def position(doc: Document, container: Tree | Block, path: Path, default: int) -> int:
    """The source offset where ``path`` is written in ``container`` (a block of ``doc``, or its
    tree); the nearest enclosing node written in the source (else ``default``) when the leaf
    itself is not (absent, or made by an edit).

    Entries are the nodes binding made them from (:meth:`Document.elements`), so ``param[1]``
    of ``param: [{..}, {..}]`` is the second item, at its own ``{``, not the list's field."""
    best = default
    current: Tree | Block | None = container
    for segment in path:
        if current is None:
            break
        pairs = doc.elements(current, segment.name)
        entry = segment.index is not None and segment.index >= 0
        nth = segment.index if entry and segment.index is not None else 0
        if nth >= len(pairs):
            break
        node, item = pairs[nth]
        # one entry of a repeated message: where that entry is; else the (first) field itself
        pos = element_pos(node, item) if entry else node.pos
        if pos >= 0:
            best = pos
        current = item if isinstance(item, Block) else None
    return best
