"""Field paths: ``layer[name=conv1].convolution_param.num_output``, ``layer[2].top[0]``.

A path is dot-separated segments; each names a field and may select among the fields of
that name with ``[N]`` (0-based, negative from the end) or ``[key=value]`` (the block whose
scalar field ``key`` equals ``value``; quotes around the value are optional). Values compare
as protobuf reads them: strings by their decoded text, numbers by value (``[lr_mult=1]`` finds
``lr_mult: 1.0``, ``[group=16]`` finds ``group: 0x10``), ``true``/``True``/``t`` alike.

Against a schema (:func:`field_descriptors`), a path that names a field the schema does not
have is a :class:`PathError`, whatever the method; a valid path may match nothing.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from protoedit.errors import InputError, Location
from protoedit.syntax.tree import Block, Field, Scalar, Tree

if TYPE_CHECKING:
    from google.protobuf.descriptor import Descriptor, FieldDescriptor

_SEGMENT = re.compile(
    r"""(?P<name>[A-Za-z_][A-Za-z0-9_]*)
        (?:\[(?:(?P<index>-?\d+)|(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>"[^"]*"|'[^']*'|[^\]]*))\])?
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Segment:
    """One step of a path: a field name and an optional selector."""

    name: str
    index: int | None = None
    key: str | None = None
    value: str | None = None
    start: int = field(default=0, compare=False)  # its offset in the path

    def __str__(self) -> str:
        if self.index is not None:
            return f"{self.name}[{self.index}]"
        if self.key is not None:
            return f"{self.name}[{self.key}={self.value}]"
        return self.name


def parse_path(path: str) -> list[Segment]:
    """Split a path into segments; a malformed path is an :class:`InputError`."""
    segments = []
    position = 0
    while position < len(path):
        match = _SEGMENT.match(path, position)
        if match is None:
            raise InputError(f"bad path {path!r} at character {position + 1}")
        value = match["value"]
        if value is not None and value[:1] in "\"'":
            value = value[1:-1]
        index = int(match["index"]) if match["index"] is not None else None
        segments.append(Segment(match["name"], index, match["key"], value, position))
        position = match.end()
        if position < len(path):
            if path[position] != ".":
                raise InputError(f"bad path {path!r}: expected '.' at character {position + 1}")
            position += 1
    if not segments:
        raise InputError("empty path")
    return segments


class PathError(InputError):
    """A path names a field the schema does not have (or selects by one, or goes on past a
    scalar): ``path``, the bad segment's ``index`` and ``offset`` in it, and the schema's
    nearest names in ``suggestions``.  The detail shows the path with a caret."""

    def __init__(
        self,
        message: str,
        path: str,
        index: int,
        offset: int,
        suggestions: list[str],
        location: Location | None = None,
        detail: str | None = None,
    ) -> None:
        self.path = path
        self.index = index
        self.offset = offset
        self.suggestions = suggestions
        if detail is None:
            detail = f"  {path}\n  {' ' * offset}^"
        super().__init__(message, location, detail)

    @classmethod
    def at(
        cls, problem: str, path: str, index: int, offset: int, name: str, names: list[str]
    ) -> PathError:
        """The error for ``problem`` with ``name`` at ``offset`` of ``path`` (in its
        ``index``-th segment), suggesting the nearest of ``names`` (the schema's there)."""
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6) if name else []
        hint = " or ".join(f"'{name}'" for name in close)
        text = f"{path!r}: {problem}" + (f" (did you mean {hint}?)" if hint else "")
        return cls(text, path, index, offset, close)


def field_descriptors(
    descriptor: Descriptor, segments: list[Segment], path: str, allow_unknown: bool = False
) -> list[FieldDescriptor | None]:
    """The schema field each segment names, from message ``descriptor`` down; a name the
    schema lacks is a :class:`PathError`, or (``allow_unknown``: lenient documents keep such
    fields) ``None`` from there on."""
    from protoedit.schema.binding import type_label

    current: Descriptor | None = descriptor
    fds: list[FieldDescriptor | None] = []
    for depth, segment in enumerate(segments):
        if current is None:
            fds.append(None)
            continue
        fd = current.fields_by_name.get(segment.name)
        if fd is None:
            if allow_unknown:
                fds.append(None)
                current = None
                continue
            problem = f"{current.full_name} has no field '{segment.name}'"
            names = list(current.fields_by_name)
            raise PathError.at(problem, path, depth, segment.start, segment.name, names)
        sub = fd.message_type
        if segment.key is not None:
            keys = list(sub.fields_by_name) if sub is not None else []
            if segment.key not in keys:
                walked = ".".join(str(s) for s in segments[: depth + 1])
                what = sub.full_name if sub is not None else f"'{walked}' ({type_label(fd)})"
                problem = f"{what} has no field '{segment.key}' to select by"
                offset = segment.start + len(segment.name) + 1  # the key follows '['
                raise PathError.at(problem, path, depth, offset, segment.key, keys)
        if depth < len(segments) - 1 and sub is None:
            walked = ".".join(str(s) for s in segments[: depth + 1])
            after = segments[depth + 1]
            problem = (
                f"'{walked}' is a {type_label(fd)} field, not a message, "
                f"so it has no field '{after.name}'"
            )
            raise PathError.at(problem, path, depth + 1, after.start, "", [])
        fds.append(fd)
        current = sub
    return fds


def scalar_text(scalar: Scalar) -> str:
    """A scalar's value as text: strings unquoted and unescaped, others as written."""
    if scalar.is_string():
        from google.protobuf import text_encoding

        try:
            data = b"".join(text_encoding.CUnescape(part.text[1:-1]) for part in scalar.parts)
        except ValueError:  # a bad escape: the binding reports it; compare as written
            return "".join(part.text[1:-1] for part in scalar.parts)
        return data.decode("utf-8", errors="replace")
    return scalar.raw


def _read(text: str) -> float | bool | None:
    """A scalar's value by protobuf's own text-format rules: a number (decimal, hex or octal
    integer, float with an optional ``f``), else a bool spelling, else None (an enum name)."""
    from google.protobuf import text_format

    for parse in (
        lambda: text_format.ParseInteger(text, is_signed=True, is_long=True),
        lambda: text_format.ParseFloat(text),
        lambda: text_format.ParseBool(text),
    ):
        try:
            return parse()
        except ValueError:
            continue
    return None


def same_value(scalar: Scalar, wanted: str) -> bool:
    """Whether ``scalar`` holds the value a selector wrote as ``wanted`` (see the module doc)."""
    if scalar.is_string():
        return scalar_text(scalar) == wanted
    if scalar.raw == wanted:
        return True
    ours, theirs = _read(scalar.raw), _read(wanted)
    if ours is None or theirs is None or isinstance(ours, bool) != isinstance(theirs, bool):
        return False  # a bool is no number here, though Python's True == 1
    return ours == theirs


def _matches(field: Field, segment: Segment) -> bool:
    if segment.key is None:
        return True
    if not isinstance(field.value, Block):
        return False
    return any(
        child.name.text == segment.key
        and isinstance(child.value, Scalar)
        and same_value(child.value, segment.value or "")
        for child in field.value.fields
    )


def select(fields: list[Field], segment: Segment) -> list[Field]:
    """The fields of ``fields`` that one segment picks."""
    named = [f for f in fields if f.name.text == segment.name and _matches(f, segment)]
    if segment.index is not None:
        try:
            return [named[segment.index]]
        except IndexError:
            return []
    return named


@dataclass
class Resolved:
    """Where a path leads: the container holding the last segment's fields, and those fields."""

    container: Tree | Block
    fields: list[Field]
    last: Segment
    names: list[str]  # the field names along the path, for schema look-ups


@dataclass
class Walk:
    """How far a path goes in the tree: ``segments[depth]`` picks ``picked`` in ``container``.

    ``depth`` is the last segment's index, or that of the first segment that picks nothing.
    """

    container: Tree | Block
    depth: int
    picked: list[Field]
    segments: list[Segment]

    @property
    def complete(self) -> bool:
        """Whether every segment before the last picked its block."""
        return self.depth == len(self.segments) - 1

    def walked(self, depth: int | None = None) -> str:
        """The path up to and including ``segments[depth]`` (default: ``self.depth``)."""
        end = self.depth if depth is None else depth
        return ".".join(str(s) for s in self.segments[: end + 1])


def walk(doc: Tree, path: str) -> Walk:
    """Follow ``path`` as far as the tree has it; a segment that picks several blocks, or a
    scalar, on the way is an :class:`InputError`."""
    segments = parse_path(path)
    container: Tree | Block = doc
    for depth, segment in enumerate(segments):
        picked = select(container.fields, segment)
        here = Walk(container, depth, picked, segments)
        if depth == len(segments) - 1 or not picked:
            return here
        walked = here.walked()
        if len(picked) > 1:
            raise InputError(
                f"{walked!r} matches {len(picked)} fields; add [N] or [key=value] to pick one"
            )
        value = picked[0].value
        if not isinstance(value, Block):
            raise InputError(
                f"{walked!r} is not a message, so it has no field {segments[depth + 1].name!r}"
            )
        container = value
    raise AssertionError("unreachable")


def _key_values(fields: list[Field], key: str) -> set[str]:
    """The values of scalar field ``key`` in the blocks of ``fields``."""
    return {
        scalar_text(child.value)
        for field in fields
        if isinstance(field.value, Block)
        for child in field.value.fields
        if child.name.text == key and isinstance(child.value, Scalar)
    }


def absent(walked: Walk) -> InputError:
    """``no field at 'layer[name=z]'``, with what the container does hold."""
    segment = walked.segments[walked.depth]
    fields = walked.container.fields
    named = [f for f in fields if f.name.text == segment.name]
    if segment.index is not None and named:
        count = len(named)
        hint = f" (there {'is' if count == 1 else 'are'} {count} '{segment.name}' field"
        hint += ")" if count == 1 else "s)"
    elif segment.key is not None and named:
        values = sorted(_key_values(named, segment.key))
        close = difflib.get_close_matches(segment.value or "", values, n=3, cutoff=0.6)
        if close:
            hint = " (did you mean " + " or ".join(f"{segment.key}={v}" for v in close) + "?)"
        else:
            hint = f" (no '{segment.name}' has {segment.key}={segment.value})"
    else:
        names = sorted({f.name.text for f in fields})
        close = difflib.get_close_matches(segment.name, names, n=3, cutoff=0.6)
        hint = " (did you mean " + " or ".join(f"'{c}'" for c in close) + "?)" if close else ""
    full = walked.walked(len(walked.segments) - 1)
    inside = f" in {full!r}" if walked.depth < len(walked.segments) - 1 else ""
    return InputError(f"no field at {walked.walked()!r}{inside}{hint}")


def missing_segments(walked: Walk, fds: list[FieldDescriptor | None]) -> list[Segment]:
    """The segments past the end of the tree; only plain names of singular messages the
    schema knows (and the last field) may be missing: their defaults, or new blocks."""
    from protoedit.schema.binding import is_repeated

    segments = walked.segments
    for depth in range(walked.depth, len(segments)):
        segment, fd = segments[depth], fds[depth]
        parent = depth < len(segments) - 1
        if (
            segment.index is not None
            or segment.key is not None
            or (parent and (fd is None or is_repeated(fd)))
        ):
            raise absent(Walk(walked.container, walked.depth, [], segments))
    return segments[walked.depth :]


def resolve(doc: Tree, path: str) -> Resolved:
    """Follow ``path``; every segment but the last must pick exactly one block."""
    walked = walk(doc, path)
    if not walked.complete:
        raise absent(walked)
    segments = walked.segments
    return Resolved(walked.container, walked.picked, segments[-1], [s.name for s in segments])
