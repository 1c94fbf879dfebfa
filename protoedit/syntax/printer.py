"""Tree -> text.  An untouched tree prints back to its source byte for byte.

The walk keeps its own stack instead of recursing, so printing needs no Python frames per
nesting level (an edited tree may nest deeper than the parser allows).
"""

from __future__ import annotations

from collections.abc import Iterator

from protoedit.syntax.tree import Block, Field, Scalar, Tree, Value

#: A piece of output text and whether it is trivia (whitespace and comments).
Piece = tuple[str, bool]
_Part = Piece | Field | Value


def _field_parts(field: Field) -> list[_Part]:
    parts: list[_Part] = [(field.leading, True), (field.name.pre, True), (field.name.text, False)]
    if field.colon is not None:
        parts += [(field.colon.pre, True), (field.colon.text, False)]
    value = field.value
    if isinstance(value, Scalar):
        for tok in value.parts:
            parts += [(tok.pre, True), (tok.text, False)]
    else:
        parts.append(value)
    if field.sep is not None:
        parts += [(field.sep.pre, True), (field.sep.text, False)]
    parts.append((field.trailing, True))
    return parts


def _value_parts(value: Value) -> list[_Part]:
    parts: list[_Part] = []
    if isinstance(value, Scalar):
        for tok in value.parts:
            parts += [(tok.pre, True), (tok.text, False)]
    elif isinstance(value, Block):
        parts += [(value.open.pre, True), (value.open.text, False), (value.open_trailing, True)]
        parts += value.fields
        parts += [(value.close.pre, True), (value.close.text, False)]
    else:
        parts += [(value.open.pre, True), (value.open.text, False)]
        for index, item in enumerate(value.items):
            parts.append(item)
            if index < len(value.commas):
                comma = value.commas[index]
                parts += [(comma.pre, True), (comma.text, False)]
        parts += [(value.close.pre, True), (value.close.text, False)]
    return parts


def pieces(fields: list[Field], end: str = "") -> Iterator[Piece]:
    """The text of ``fields`` (then ``end``) in order, as non-empty pieces."""
    return _pieces([*fields, (end, True)])


def _pieces(parts: list[_Part]) -> Iterator[Piece]:
    stack: list[Iterator[_Part]] = [iter(parts)]
    while stack:
        for part in stack[-1]:
            if isinstance(part, tuple):
                if part[0]:
                    yield part
            else:
                stack.append(
                    iter(_field_parts(part) if isinstance(part, Field) else _value_parts(part))
                )
                break
        else:
            stack.pop()


def comment_lines(trivia: str) -> list[str]:
    """The ``#`` comments in a piece of trivia, in order, without trailing whitespace."""
    found = []
    for line in trivia.split("\n"):
        hash_at = line.find("#")
        if hash_at >= 0:
            found.append(line[hash_at:].rstrip())
    return found


def comments(fields: list[Field], end: str = "") -> list[str]:
    """Every comment of ``fields`` (then ``end``) in document order."""
    found: list[str] = []
    for text, trivia in pieces(fields, end):
        if trivia and "#" in text:
            found += comment_lines(text)
    return found


def render_field(field: Field) -> str:
    """The text of one field, trivia included."""
    return "".join(text for text, _ in pieces([field]))


def render_value(value: Value) -> str:
    """The text of one value (a block that is an item of a ``[list]``, say), trivia included."""
    return "".join(text for text, _ in _pieces([value]))


def render(doc: Tree) -> str:
    """The text of a whole document."""
    return "".join(text for text, _ in pieces(doc.fields, doc.end))
