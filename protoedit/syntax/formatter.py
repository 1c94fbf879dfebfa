"""Canonical layout of a text-format tree: what ``protoedit format`` prints.

Two-space indentation, one field per line, ``name: value`` and ``name {``, ``{}`` brackets, no
``,``/``;`` separators, at most one blank line between fields and none just inside braces.
Comments stay with what they belong to (see :mod:`protoedit.syntax.tree`): a comment block
above a field stays above it, a same-line comment stays at the end of its line, comments
before a closing brace stay before it, and a comment found between the tokens of one field
moves above that field.  Values keep their spelling; the file's line ending is kept.
"""

from __future__ import annotations

from protoedit.syntax.tree import Block, Document, Field, Scalar, Tok

INDENT = "  "
_BLANK = None  # marks a blank line in a list of comment lines


def _comments(trivia: str) -> list[str]:
    """The ``#`` comments in a piece of trivia, stripped."""
    found = []
    for line in trivia.split("\n"):
        hash_at = line.find("#")
        if hash_at >= 0:
            found.append(line[hash_at:].rstrip())
    return found


def _lines_with_blanks(trivia: str, at_line_start: bool) -> list[str | None]:
    """Comments and blank lines (``None``) in leading trivia, in order.

    The last piece (the indentation before the next token) is not a line; the first piece is
    a whole line only when the trivia starts at the beginning of a line.
    """
    pieces = trivia.split("\n")
    items: list[str | None] = []
    for index, piece in enumerate(pieces[:-1]):
        stripped = piece.strip()
        if stripped.startswith("#") or "#" in stripped:
            items.append(stripped[stripped.find("#") :].rstrip())
        elif index > 0 or at_line_start:
            items.append(_BLANK)
    last = pieces[-1]
    if "#" in last:  # a comment with no newline after it (end of file)
        items.append(last[last.find("#") :].rstrip())
    return items


def _squeeze(items: list[str | None], drop_leading: bool, drop_trailing: bool) -> list[str | None]:
    """At most one blank line in a row; blank lines at either edge dropped if asked."""
    out: list[str | None] = []
    for item in items:
        if item is _BLANK and ((out and out[-1] is _BLANK) or (not out and drop_leading)):
            continue
        out.append(item)
    while drop_trailing and out and out[-1] is _BLANK:
        out.pop()
    return out


def _inner_comments(field: Field) -> list[str]:
    """Comments found between the tokens of one field (they move above it)."""
    toks: list[Tok] = []
    if field.colon is not None:
        toks.append(field.colon)
    value = field.value
    if isinstance(value, Scalar):
        toks.extend(value.parts)
    elif isinstance(value, Block):
        toks.append(value.open)
    else:
        toks.extend([value.open, *value.commas, value.close])
        for item in value.items:
            toks.extend(item.parts if isinstance(item, Scalar) else [item.open])
    if field.sep is not None:
        toks.append(field.sep)
    found: list[str] = []
    for tok in toks:
        found.extend(_comments(tok.pre))
    return found


class _Formatter:
    def __init__(self, newline: str) -> None:
        self.nl = newline
        self.out: list[str] = []

    def line(self, level: int, text: str) -> None:
        self.out.append(f"{INDENT * level}{text}{self.nl}" if text else self.nl)

    def comment_lines(self, level: int, items: list[str | None]) -> None:
        for item in items:
            self.line(level, "" if item is None else item)

    def fields(self, fields: list[Field], level: int, at_line_start: bool) -> None:
        for position, field in enumerate(fields):
            items = _lines_with_blanks(field.leading, at_line_start)
            items = _squeeze(items, drop_leading=position == 0, drop_trailing=False)
            items += _inner_comments(field)
            self.comment_lines(level, items)
            self.field(field, level)
            at_line_start = field.trailing.endswith("\n")

    def field(self, field: Field, level: int) -> None:
        name = field.name.text
        trailing = _comments(field.trailing)
        suffix = f"  {trailing[0]}" if trailing else ""
        extra = trailing[1:]
        value = field.value
        if isinstance(value, Scalar):
            self.line(level, f"{name}: {value.raw}{suffix}")
        elif isinstance(value, Block):
            self.block(name, value, level, suffix)
        elif value.items and isinstance(value.items[0], Block):
            # A list of messages is the same as the repeated field written out.
            for index, item in enumerate(value.items):
                assert isinstance(item, Block)
                self.block(name, item, level, suffix if index == len(value.items) - 1 else "")
        else:
            raw = ", ".join(item.raw for item in value.items if isinstance(item, Scalar))
            self.line(level, f"{name}: [{raw}]{suffix}")
        self.comment_lines(level, list(extra))

    def block(self, name: str, block: Block, level: int, suffix: str) -> None:
        opener = _comments(block.open_trailing)
        head = f"{name} {{" + (f"  {opener[0]}" if opener else "")
        closing = _lines_with_blanks(block.close.pre, block_ends_line(block))
        closing = _squeeze(closing, drop_leading=not block.fields, drop_trailing=True)
        if not block.fields and not closing and not opener:
            self.line(level, f"{name} {{}}{suffix}")
            return
        self.line(level, head)
        self.fields(block.fields, level + 1, block.open_trailing.endswith("\n"))
        self.comment_lines(level + 1, closing)
        self.line(level, f"}}{suffix}")


def block_ends_line(block: Block) -> bool:
    """Whether the text before the closing brace starts at the beginning of a line."""
    if block.fields:
        return block.fields[-1].trailing.endswith("\n")
    return block.open_trailing.endswith("\n")


def detect_newline(source: str) -> str:
    """The file's line ending: CRLF when most lines end with it, else LF."""
    crlf = source.count("\r\n")
    return "\r\n" if crlf and crlf * 2 >= source.count("\n") else "\n"


def format_tree(doc: Document) -> str:
    """The canonical text of ``doc`` (comments kept, values as written)."""
    fmt = _Formatter(detect_newline(doc.source))
    fmt.fields(doc.fields, 0, True)
    at_start = doc.fields[-1].trailing.endswith("\n") if doc.fields else True
    tail = _lines_with_blanks(doc.end, at_start)
    fmt.comment_lines(0, _squeeze(tail, drop_leading=not doc.fields, drop_trailing=True))
    return "".join(fmt.out)
