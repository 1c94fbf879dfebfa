"""Tree -> text.  An untouched tree prints back to its source byte for byte."""

from __future__ import annotations

from protoedit.syntax.tree import Block, Document, Field, Scalar, Value


def _value(value: Value, out: list[str]) -> None:
    if isinstance(value, Scalar):
        for part in value.parts:
            out.append(part.pre)
            out.append(part.text)
    elif isinstance(value, Block):
        _block(value, out)
    else:
        out.append(value.open.pre)
        out.append(value.open.text)
        for index, item in enumerate(value.items):
            _value(item, out)
            if index < len(value.commas):
                comma = value.commas[index]
                out.append(comma.pre)
                out.append(comma.text)
        out.append(value.close.pre)
        out.append(value.close.text)


def _block(block: Block, out: list[str]) -> None:
    out.append(block.open.pre)
    out.append(block.open.text)
    out.append(block.open_trailing)
    for field in block.fields:
        _field(field, out)
    out.append(block.close.pre)
    out.append(block.close.text)


def _field(field: Field, out: list[str]) -> None:
    out.append(field.leading)
    out.append(field.name.pre)
    out.append(field.name.text)
    if field.colon is not None:
        out.append(field.colon.pre)
        out.append(field.colon.text)
    _value(field.value, out)
    if field.sep is not None:
        out.append(field.sep.pre)
        out.append(field.sep.text)
    out.append(field.trailing)


def render_field(field: Field) -> str:
    """The text of one field, trivia included."""
    out: list[str] = []
    _field(field, out)
    return "".join(out)


def render(doc: Document) -> str:
    """The text of a whole document."""
    out: list[str] = []
    for field in doc.fields:
        _field(field, out)
    out.append(doc.end)
    return "".join(out)
