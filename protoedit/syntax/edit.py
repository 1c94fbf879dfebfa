"""Tree edits that keep every untouched byte: insert, remove and replace fields.

New nodes copy the style around them (indentation, line ending, one-line blocks); a removed
field takes its own comments (the block directly above it and its same-line comment) and
leaves a detached comment block (one followed by a blank line) where it was.
"""

from __future__ import annotations

from protoedit.syntax.parser import parse
from protoedit.syntax.printer import comments
from protoedit.syntax.tree import Block, Field, ListValue, Scalar, Tok, Tree, detect_newline

Container = Tree | Block


def indent_of(field: Field) -> str:
    """The indentation before a field's name (what follows the last newline of its leading)."""
    return field.leading.rsplit("\n", 1)[-1] if "\n" in field.leading else field.leading


def is_one_line(block: Block) -> bool:
    """``{ a: 1 b: 2 }``: no newline between the braces."""
    if "\n" in block.open_trailing or "\n" in block.close.pre:
        return False
    return all("\n" not in f.leading and "\n" not in f.trailing for f in block.fields)


def guess_unit(doc: Tree) -> str:
    """The file's indentation step: how much deeper than its parent's line the first nested
    field that starts a line sits; two spaces when no nested field starts a line (a file of
    one-line blocks says nothing about it)."""
    for field, starts_line in zip(doc.fields, _line_starts(doc.fields, True), strict=True):
        value = field.value
        if not starts_line or not isinstance(value, Block):
            continue
        outer = indent_of(field)
        inner_starts = _line_starts(value.fields, value.open_trailing.endswith("\n"))
        for inner, inner_starts_line in zip(value.fields, inner_starts, strict=True):
            if inner_starts_line:
                indent = indent_of(inner)
                if indent.startswith(outer) and indent[len(outer) :] and not indent.strip():
                    return indent[len(outer) :]
                break
    return "  "


class Style:
    """How new text should look in one document: newline and indentation step."""

    def __init__(self, doc: Tree) -> None:
        self.newline = detect_newline(doc.source)
        self.unit = guess_unit(doc)


def _line_starts(fields: list[Field], first_starts_line: bool) -> list[bool]:
    """For each field, whether it is the first thing on its line."""
    starts = []
    at_start = first_starts_line
    for field in fields:
        starts.append(at_start or "\n" in field.leading)
        at_start = field.trailing.endswith("\n")
    return starts


def _container_indent(doc: Tree, container: Container, style: Style) -> str:
    """The indentation of fields directly inside ``container``."""
    if isinstance(container, Tree):
        return ""
    starts = _line_starts(container.fields, container.open_trailing.endswith("\n"))
    for field, starts_line in zip(container.fields, starts, strict=True):
        if starts_line:
            return indent_of(field)
    if "\n" in container.close.pre:
        return container.close.pre.rsplit("\n", 1)[-1] + style.unit
    return (_owner_indent(doc.fields, True, container, "") or "") + style.unit


def _owner_indent(
    fields: list[Field], first_starts_line: bool, block: Block, inherited: str
) -> str | None:
    """The indentation of the line where ``block`` opens, found by searching the tree
    (with a stack of its own: an edited tree may nest deeper than the parser allows)."""
    stack = [(fields, first_starts_line, inherited)]
    while stack:
        level, starts, outer = stack.pop()
        for field, starts_line in zip(level, _line_starts(level, starts), strict=True):
            line = indent_of(field) if starts_line else outer
            value = field.value
            items = (
                [value]
                if isinstance(value, Block)
                else (value.items if isinstance(value, ListValue) else [])
            )
            for item in items:
                if item is block:
                    return line
                if isinstance(item, Block):
                    stack.append((item.fields, item.open_trailing.endswith("\n"), line))
    return None


def reindent(fields: list[Field], indent: str, unit: str, newline: str) -> None:
    """Give parsed fields (from a snippet) the indentation of their new home, recursively."""
    for field in fields:
        comment_lines = [line.strip() for line in field.leading.split("\n")]
        comments = [line for line in comment_lines if line.startswith("#")]
        field.leading = "".join(f"{indent}{c}{newline}" for c in comments) + indent
        same_line = field.trailing.strip()
        field.trailing = (f" {same_line}" if same_line else "") + newline
        value = field.value
        if isinstance(value, Block):
            value.open.pre = " "
            value.open_trailing = (
                f" {value.open_trailing.strip()}" if value.open_trailing.strip() else ""
            ) + newline
            reindent(value.fields, indent + unit, unit, newline)
            value.close.pre = indent
        if field.colon is not None:
            field.colon.pre = ""
            if isinstance(value, Block):
                field.colon = None
        if field.sep is not None:
            field.sep = None


def parse_fields(text: str) -> list[Field]:
    """Fields from a text-format snippet (e.g. a whole ``layer { ... }``)."""
    return parse(text, "<snippet>").fields


def _one_line(fields: list[Field]) -> None:
    """Lay out comment-free snippet fields for a one-line block: ``a: 1 b { c: 2 }``."""
    for field in fields:
        field.leading = " "
        field.trailing = ""
        field.sep = None
        value = field.value
        if field.colon is not None:
            field.colon.pre = ""
            if isinstance(value, Block):
                field.colon = None
        items = value.items if isinstance(value, ListValue) else [value]
        if isinstance(value, ListValue):
            value.open.pre = " "
            value.close.pre = ""
            for comma in value.commas:
                comma.pre = ""
        for position, item in enumerate(items):
            space = "" if isinstance(value, ListValue) and position == 0 else " "
            if isinstance(item, Scalar):
                for index, part in enumerate(item.parts):
                    part.pre = space if index == 0 else " "
            else:
                item.open.pre = space
                item.open_trailing = ""
                _one_line(item.fields)
                item.close.pre = " " if item.fields else ""


def _open_up(doc: Tree, block: Block, style: Style) -> None:
    """Turn a one-line block into a multi-line one, one field per line."""
    owner = _owner_indent(doc.fields, True, block, "") or ""
    block.open_trailing = style.newline
    for field in block.fields:
        field.leading = owner + style.unit
        field.trailing = style.newline
    block.close.pre = owner


def insert_fields(
    doc: Tree, container: Container, new: list[Field], index: int | None = None
) -> None:
    """Insert ``new`` fields into ``container`` at ``index`` (default: the end), styled to fit.

    A one-line block stays one line, unless the new fields carry comments: a comment runs to
    the end of its line, so the block then opens up into one field per line.
    """
    style = Style(doc)
    fields = container.fields
    index = len(fields) if index is None else max(0, min(index, len(fields)))
    if isinstance(container, Block) and is_one_line(container) and container.fields:
        if not comments(new):
            _one_line(new)
            fields[index:index] = new
            return
        _open_up(doc, container, style)
    indent = _container_indent(doc, container, style)
    reindent(new, indent, style.unit, style.newline)
    if isinstance(container, Block) and not fields and "\n" not in container.open_trailing:
        # An empty block `{}` opens up into a multi-line one.
        container.open_trailing = style.newline
        container.close.pre = indent[: len(indent) - len(style.unit)]
    previous = fields[index - 1] if index > 0 else None
    if previous is not None and not previous.trailing.endswith("\n"):
        previous.trailing += style.newline  # e.g. the last line of a file with no final newline
    fields[index:index] = new


def _split_detached(leading: str) -> tuple[str, str]:
    """(detached part, own part) of a leading: own = the comment block directly above.

    The detached part ends at the last blank line; a comment block followed by a blank
    line belongs to no field.
    """
    lines = leading.split("\n")
    # lines[-1] is the indentation before the name; look for the last blank line above it.
    for i in range(len(lines) - 2, -1, -1):
        if lines[i].strip() == "" and i > 0:
            detached = "\n".join(lines[: i + 1]) + "\n"
            return detached, "\n".join(lines[i + 1 :])
        if lines[i].strip() == "" and i == 0:
            break
    return "", leading


def remove_field(container: Container, field: Field) -> None:
    """Remove ``field`` with its own comments; a detached comment block above it stays."""
    fields = container.fields
    index = next(i for i, f in enumerate(fields) if f is field)
    detached, _ = _split_detached(field.leading)
    del fields[index]
    if index < len(fields):
        fields[index].leading = detached + fields[index].leading
    elif isinstance(container, Block):
        container.close.pre = detached + container.close.pre
    else:
        container.end = detached + container.end


def replace_value(field: Field, raw: str) -> None:
    """Give a scalar field a new value (raw text), keeping the trivia around it."""
    value = field.value
    pre = value.parts[0].pre if isinstance(value, Scalar) else " "
    field.value = Scalar([Tok(raw, pre)])


def replace_item(item: Scalar, raw: str) -> None:
    """Give one scalar element new text in place: a field's value or an item of its
    ``[list]`` alike, its trivia and offset kept (the node stays the one binding linked)."""
    first = item.parts[0]
    item.parts = [Tok(raw, first.pre, first.pos)]
