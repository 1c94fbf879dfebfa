"""Canonical layout of a text-format tree: what ``protoedit format`` prints.

Two-space indentation, one field per line, ``name: value`` and ``name {``, ``{}`` brackets, no
``,``/``;`` separators, at most one blank line between fields and none just inside braces.
Comments stay with what they belong to (see :mod:`protoedit.syntax.tree`) and keep their
order: a comment block above a field stays above it, a same-line comment stays at the end of
its line, comments before a closing brace stay before it, and a comment found between the
tokens of one field moves above that field.  A list of scalars with comments in it is written
one item per line, each comment with its item; a list of messages becomes the repeated field
written out, comments between its items kept between them.  Values keep their spelling; the
file's line ending is kept.

The formatter recurses once per nesting level; the parser's depth limit bounds that.
"""

from __future__ import annotations

from protoedit.errors import Location, ProtoeditError
from protoedit.syntax import canonical
from protoedit.syntax.parser import parse
from protoedit.syntax.printer import comment_lines
from protoedit.syntax.tree import Block, Field, ListValue, Scalar, Tok, Tree, detect_newline

INDENT = "  "
_BLANK = ""  # a blank line in a list of comment lines (a comment is never empty)


def _lines_with_blanks(trivia: str, at_line_start: bool) -> list[str]:
    """Comments and blank lines (:data:`_BLANK`) in leading trivia, in order.

    The last piece (the indentation before the next token) is not a line; the first piece is
    a whole line only when the trivia starts at the beginning of a line.
    """
    pieces = trivia.split("\n")
    items: list[str] = []
    for index, piece in enumerate(pieces[:-1]):
        stripped = piece.strip()
        if "#" in stripped:
            items.append(stripped[stripped.find("#") :].rstrip())
        elif index > 0 or at_line_start:
            items.append(_BLANK)
    last = pieces[-1]
    if "#" in last:  # a comment with no newline after it (end of file)
        items.append(last[last.find("#") :].rstrip())
    return items


def _squeeze(items: list[str], drop_leading: bool, drop_trailing: bool) -> list[str]:
    """At most one blank line in a row; blank lines at either edge dropped if asked."""
    out: list[str] = []
    for item in items:
        if item == _BLANK and ((out and out[-1] == _BLANK) or (not out and drop_leading)):
            continue
        out.append(item)
    while drop_trailing and out and out[-1] == _BLANK:
        out.pop()
    return out


def _same_line_and_after(gap: str) -> tuple[list[str], list[str]]:
    """(the comment on the line where ``gap`` starts, the comments on later lines)."""
    head, newline, rest = gap.partition("\n")
    return comment_lines(head), comment_lines(rest) if newline else []


def _hoisted(field: Field) -> list[str]:
    """Comments between the tokens of a field that move above it, in order."""
    toks: list[Tok] = []
    if field.colon is not None:
        toks.append(field.colon)
    value = field.value
    if isinstance(value, Scalar):
        toks.extend(value.parts)
        if field.sep is not None:  # before the value's end of line: above keeps the order
            toks.append(field.sep)
    else:
        toks.append(value.open)
    found: list[str] = []
    for tok in toks:
        found.extend(comment_lines(tok.pre))
    return found


def _after(field: Field) -> list[str]:
    """Comments after a message or list value's closing bracket, then its same-line comment."""
    found: list[str] = []
    if not isinstance(field.value, Scalar) and field.sep is not None and "#" in field.sep.pre:
        found = comment_lines(field.sep.pre)
    return found + comment_lines(field.trailing) if "#" in field.trailing else found


def _list_has_comments(value: ListValue) -> bool:
    toks = [*value.commas, value.close]
    for item in value.items:
        toks.extend(item.parts if isinstance(item, Scalar) else [item.open])
    return any("#" in tok.pre for tok in toks)


class _Formatter:
    def __init__(self, doc: Tree) -> None:
        self.doc = doc
        self.nl = detect_newline(doc.source)
        self.out: list[str] = []
        self.indents: list[str] = [""]

    def indent(self, level: int) -> str:
        indents = self.indents
        while len(indents) <= level:
            indents.append(INDENT * len(indents))
        return indents[level]

    def line(self, level: int, text: str, tail: list[str] | None = None) -> None:
        """One line, with the first of ``tail`` at its end and the rest on lines below."""
        if tail:
            text = f"{text}  {tail[0]}"
        self.out.append(f"{self.indent(level)}{text}{self.nl}" if text else self.nl)
        if tail:
            self.comment_lines(level, tail[1:])

    def comment_lines(self, level: int, items: list[str]) -> None:
        for item in items:
            self.line(level, item)

    def fields(self, fields: list[Field], level: int, at_line_start: bool) -> None:
        """The fields of one level.  The common cases (no comment near a field; a scalar of
        one token, or a message) take a short path: ``#`` tests before any splitting."""
        out = self.out
        nl = self.nl
        indent = self.indent(level)
        previous: Field | None = None  # the field before, whose trailing ends its line or not
        for field in fields:
            leading = field.leading
            if "#" in leading:
                if previous is not None:
                    at_line_start = previous.trailing.endswith("\n")
                items = _squeeze(
                    _lines_with_blanks(leading, at_line_start), previous is None, False
                )
                self.comment_lines(level, items)
            elif (
                previous is not None
                and "\n" in leading
                and (leading.count("\n") > 1 or previous.trailing.endswith("\n"))
            ):
                out.append(nl)  # blank lines above the field: one is kept
            previous = field
            value = field.value
            colon = field.colon
            kind = type(value)
            if kind is Scalar and len(value.parts) == 1:  # type: ignore[union-attr]
                sep = field.sep
                tok = value.parts[0]  # type: ignore[union-attr]
                if (
                    "#" in tok.pre
                    or (colon is not None and "#" in colon.pre)
                    or (sep is not None and "#" in sep.pre)
                ):
                    self.comment_lines(level, _hoisted(field))
                trailing = field.trailing
                if "#" in trailing:
                    self.line(level, f"{field.name.text}: {tok.text}", comment_lines(trailing))
                else:
                    out.append(f"{indent}{field.name.text}: {tok.text}{nl}")
                continue
            if kind is Scalar:  # adjacent strings
                hoist = True
            else:
                hoist = "#" in value.open.pre or (colon is not None and "#" in colon.pre)  # type: ignore[union-attr]
            if hoist:
                self.comment_lines(level, _hoisted(field))
            if kind is Block:
                block: Block = value  # type: ignore[assignment]
                sep = field.sep
                opener_text = block.open_trailing
                if (
                    block.fields
                    and "#" not in opener_text
                    and "#" not in block.close.pre
                    and "#" not in field.trailing
                    and (sep is None or "#" not in sep.pre)
                ):  # no comment at either bracket
                    out.append(f"{indent}{field.name.text} {{{nl}")
                    self.fields(block.fields, level + 1, opener_text.endswith("\n"))
                    out.append(f"{indent}}}{nl}")
                    continue
            self.field(field, level)

    def field(self, field: Field, level: int) -> None:
        name = field.name.text
        value = field.value
        if isinstance(value, Scalar):
            self.line(level, f"{name}: {value.raw}", comment_lines(field.trailing))
        elif isinstance(value, Block):
            self.block(name, value, level, _after(field))
        elif any(isinstance(item, Block) for item in value.items):
            if not all(isinstance(item, Block) for item in value.items):
                line, col = self.doc.line_col(value.pos)
                raise ProtoeditError(
                    "a list that mixes messages and scalars has no canonical layout",
                    Location(self.doc.path, line, col),
                )
            self.message_list(name, value, level, _after(field))
        elif _list_has_comments(value):
            self.scalar_list(name, value, level, _after(field))
        else:
            raw = ", ".join(item.raw for item in value.items if isinstance(item, Scalar))
            self.line(level, f"{name}: [{raw}]", _after(field))

    def block(self, name: str, block: Block, level: int, tail: list[str]) -> None:
        opener_text = block.open_trailing
        opener = comment_lines(opener_text) if "#" in opener_text else []
        close_pre = block.close.pre
        closing: list[str] = []
        if "#" in close_pre:  # without a comment the closing lines are blank: all dropped
            closing = _lines_with_blanks(close_pre, block_ends_line(block))
            closing = _squeeze(closing, drop_leading=not block.fields, drop_trailing=True)
        if not block.fields and not closing and not opener:
            self.line(level, f"{name} {{}}", tail)
            return
        if opener:
            self.line(level, f"{name} {{", opener)
        else:
            self.out.append(f"{self.indent(level)}{name} {{{self.nl}")
        self.fields(block.fields, level + 1, opener_text.endswith("\n"))
        self.comment_lines(level + 1, closing)
        if tail:
            self.line(level, "}", tail)
        else:
            self.out.append(f"{self.indent(level)}}}{self.nl}")

    def message_list(self, name: str, value: ListValue, level: int, tail: list[str]) -> None:
        """``name: [{..}, {..}]`` as the repeated field written out; a comment on the line of
        an item's ``}`` stays there, the lines between two items stay between the blocks."""
        blocks = [item for item in value.items if isinstance(item, Block)]
        above = comment_lines(blocks[0].open.pre)
        for index, item in enumerate(blocks):
            self.comment_lines(level, above)
            if index < len(value.commas):
                gap = value.commas[index].pre + blocks[index + 1].open.pre
                same, above = _same_line_and_after(gap)
                self.block(name, item, level, same)
            else:
                self.block(name, item, level, comment_lines(value.close.pre) + tail)

    def scalar_list(self, name: str, value: ListValue, level: int, tail: list[str]) -> None:
        """A list of scalars with comments in it: one item per line, each item's comments
        kept with it (the one on its line at its end, the lines above it above it)."""
        items = [item for item in value.items if isinstance(item, Scalar)]
        gaps = [item.parts[0].pre for item in items] + [value.close.pre]
        opener, above = _same_line_and_after(gaps[0])
        self.line(level, f"{name}: [", opener)
        for index, item in enumerate(items):
            self.comment_lines(level + 1, above)
            inside = [c for part in item.parts[1:] for c in comment_lines(part.pre)]
            last = index == len(items) - 1
            comma_pre = "" if last else value.commas[index].pre
            same, above = _same_line_and_after(gaps[index + 1])
            item_tail = inside + comment_lines(comma_pre) + same
            self.line(level + 1, item.raw + ("" if last else ","), item_tail)
        self.comment_lines(level + 1, above)
        self.line(level, "]", tail)


def block_ends_line(block: Block) -> bool:
    """Whether the text before the closing brace starts at the beginning of a line."""
    if block.fields:
        return block.fields[-1].trailing.endswith("\n")
    return block.open_trailing.endswith("\n")


def format_tree(doc: Tree) -> str:
    """The canonical text of ``doc`` (comments kept in order, values as written)."""
    fmt = _Formatter(doc)
    fmt.fields(doc.fields, 0, True)
    at_start = doc.fields[-1].trailing.endswith("\n") if doc.fields else True
    tail = _lines_with_blanks(doc.end, at_start)
    fmt.comment_lines(0, _squeeze(tail, drop_leading=not doc.fields, drop_trailing=True))
    return "".join(fmt.out)


_BOM = "\ufeff"


def format_text(text: str, name: str = "<string>") -> str:
    """``text`` in canonical layout (``protoedit format``), with run-time safety nets: the
    result holds the same fields, the same comments in the same order, and formatting it
    again changes nothing (a failure is a formatter bug, raised as a :class:`ProtoeditError`
    naming ``name``).  Invalid text is a :class:`~protoedit.syntax.ParseError`.

    The nets cost no second parse (:mod:`protoedit.syntax.canonical`), and nothing at all
    when the text is already canonical: a result equal to the input parses to the input's
    own tree, so it holds what the input holds and a second pass gives the same result."""
    tree = parse(text, name)
    bom = _BOM if text.startswith(_BOM) else ""  # the formatter drops leading trivia
    formatted = bom + format_tree(tree)
    if formatted == text:
        return formatted
    problem = canonical.problem(tree, formatted[len(bom) :], detect_newline(tree.source))
    if problem is not None:
        raise ProtoeditError(
            f"formatting {problem}; this is a formatter bug, the file was left as is",
            Location(name),
        )
    return formatted
