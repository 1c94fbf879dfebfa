"""Repeated fields written in list form (``name: [a, b]``): their elements, and splitting
such a field into one field per element.

Binding fills a repeated field from the fields of that name in file order, a list field
contributing its items in order; :func:`elements` walks them the same way, so the N-th
element it returns is the N-th entry of the repeated field in the message.
"""

from __future__ import annotations

from protoedit.syntax.edit import Style, indent_of, is_one_line
from protoedit.syntax.tree import Block, Field, ListValue, Scalar, Tok, Tree

Container = Tree | Block


def items(field: Field) -> list[Scalar | Block]:
    """The values a field contributes: its value, or each item of a list."""
    value = field.value
    return list(value.items) if isinstance(value, ListValue) else [value]


def elements(fields: list[Field], name: str) -> list[tuple[Field, Scalar | Block]]:
    """Every value of the fields called ``name``, with its field, in binding order."""
    return [(f, item) for f in fields if f.name.text == name for item in items(f)]


def element_pos(field: Field, item: Scalar | Block) -> int:
    """Where one element is: the field name for a field of its own, else the item."""
    return field.pos if field.value is item else item.pos


def _comments(trivia: str) -> list[str]:
    return [line.strip() for line in trivia.split("\n") if line.strip().startswith("#")]


def indent_block(block: Block, indent: str, unit: str, newline: str) -> None:
    """Lay a multi-line block out at ``indent``: one field per line, nested multi-line
    blocks one ``unit`` deeper, one-line blocks and comments kept."""
    for field in block.fields:
        field.leading = "".join(f"{indent}{unit}{c}{newline}" for c in _comments(field.leading))
        field.leading += indent + unit
        same_line = field.trailing.strip()
        field.trailing = (f" {same_line}" if same_line else "") + newline
        for value in items(field):
            if isinstance(value, Block) and not is_one_line(value):
                indent_block(value, indent + unit, unit, newline)
    opening = block.open_trailing.strip()
    block.open_trailing = (f" {opening}" if opening else "") + newline
    block.close.pre = "".join(f"{indent}{unit}{c}{newline}" for c in _comments(block.close.pre))
    block.close.pre += indent


def split_list(doc: Tree, container: Container, field: Field) -> list[Field]:
    """Replace a list-valued ``field`` of ``container`` by one field per item, in order.

    Comments inside the brackets stay, above the element they precede; a multi-line item
    block is re-indented to its new place.  Returns the new fields (none for ``[]``).
    """
    value = field.value
    assert isinstance(value, ListValue)
    style = Style(doc)
    # Trivia before each item: after '[' for the first, before each comma for the others.
    before = [value.open.pre, *(comma.pre for comma in value.commas)]
    inner = "".join(before) + value.close.pre
    inner += "".join(i.open.pre if isinstance(i, Block) else i.parts[0].pre for i in value.items)
    one_line = isinstance(container, Block) and is_one_line(container) and "\n" not in inner
    indent = indent_of(field)
    new: list[Field] = []
    for nth, item in enumerate(value.items):
        pre = before[nth] + (item.open.pre if isinstance(item, Block) else item.parts[0].pre)
        comments = _comments(pre)
        name = Tok(field.name.text, "", item.pos)  # where the element was: errors still point there
        if isinstance(item, Block):
            item.open.pre = " "
            if not one_line and not is_one_line(item):
                indent_block(item, indent, style.unit, style.newline)
            part = Field(name, item)
        else:
            item.parts[0].pre = " "
            part = Field(name, item, Tok(":"))
        if one_line:
            part.leading = field.leading if nth == 0 else " "
            part.trailing = ""
        else:
            head = field.leading if nth == 0 else indent
            head = head[: len(head) - len(indent)] if head.endswith(indent) else head
            part.leading = head + "".join(f"{indent}{c}{style.newline}" for c in comments)
            part.leading += indent
            part.trailing = style.newline
        new.append(part)
    index = next(i for i, f in enumerate(container.fields) if f is field)
    # Comments after the last item (all of them for an empty list) go below the new fields.
    after = _comments(value.close.pre) if new else _comments(inner)
    if new:
        new[-1].trailing = field.trailing
        new[-1].sep = field.sep
    else:
        after += _comments(field.trailing)
    container.fields[index : index + 1] = new
    lines = "".join(f"{indent}{c}{style.newline}" for c in after)
    following = index + len(new)
    if not new:
        lines = field.leading[: len(field.leading) - len(indent)] + lines
    if following < len(container.fields):
        container.fields[following].leading = lines + container.fields[following].leading
    elif isinstance(container, Block):
        container.close.pre = lines + container.close.pre
    else:
        container.end = lines + container.end
    return new
