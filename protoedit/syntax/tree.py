"""The lossless tree of a protobuf text-format file.

Every byte of the input is owned by exactly one place in the tree, so printing an untouched
tree gives the input back byte for byte.  Whitespace and comments ("trivia") are attached by
these rules:

- ``Field.leading``: everything between the previous field's line and this field's name: the
  comment block above the field and its indentation (blank lines included);
- ``Field.trailing``: after the field's last token, the rest of that line (spaces, a comment)
  through its newline;
- ``Block.open_trailing``: the same, after an opening brace;
- ``Block.close.pre``: the lines before a closing brace (comments there belong to the brace);
- ``Tok.pre``: trivia between two tokens of one field (e.g. around ``:``);
- ``Tree.end``: what follows the last field's line.

The syntax layer knows nothing about Caffe.
"""

from __future__ import annotations


class Tok:
    """One token: its raw text, the trivia just before it, and its offset in the source."""

    __slots__ = ("pos", "pre", "text")

    def __init__(self, text: str, pre: str = "", pos: int = -1) -> None:
        self.text = text
        self.pre = pre
        self.pos = pos  # -1 for tokens made by an edit

    def __repr__(self) -> str:
        return f"Tok({self.text!r})"


class Scalar:
    """A scalar value: a number, an identifier, or one or more adjacent string literals."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[Tok]) -> None:
        self.parts = parts

    @property
    def pos(self) -> int:
        """Offset of the value's first token."""
        return self.parts[0].pos

    @property
    def raw(self) -> str:
        """The value as written, adjacent strings joined by single spaces."""
        return " ".join(part.text for part in self.parts)

    def is_string(self) -> bool:
        """True for a (possibly concatenated) string literal."""
        return self.parts[0].text[:1] in ("'", '"')


class Block:
    """A message value: ``{ fields }`` or ``< fields >``."""

    __slots__ = ("close", "fields", "open", "open_trailing")

    def __init__(self, open: Tok, fields: list[Field], close: Tok, open_trailing: str = "") -> None:
        self.open = open
        self.fields = fields
        self.close = close
        self.open_trailing = open_trailing

    @property
    def pos(self) -> int:
        """Offset of the opening bracket."""
        return self.open.pos


class ListValue:
    """A bracketed list ``[a, b]`` of scalars or blocks (text format's repeated-field shorthand)."""

    __slots__ = ("close", "commas", "items", "open")

    def __init__(
        self, open: Tok, items: list[Scalar | Block], commas: list[Tok], close: Tok
    ) -> None:
        self.open = open
        self.items = items
        self.commas = commas  # len(items) - 1 of them (none for an empty list)
        self.close = close

    @property
    def pos(self) -> int:
        """Offset of the ``[``."""
        return self.open.pos


Value = Scalar | Block | ListValue


class Field:
    """``name: value``, ``name { ... }`` or ``name: [ ... ]``, with its own trivia."""

    __slots__ = ("colon", "leading", "name", "sep", "trailing", "value")

    def __init__(
        self,
        name: Tok,
        value: Value,
        colon: Tok | None = None,
        sep: Tok | None = None,
        leading: str = "",
        trailing: str = "",
    ) -> None:
        self.name = name
        self.value = value
        self.colon = colon
        self.sep = sep
        self.leading = leading
        self.trailing = trailing

    @property
    def pos(self) -> int:
        """Offset of the field name."""
        return self.name.pos

    @property
    def is_message(self) -> bool:
        """True when the value is a block (or a list of blocks)."""
        value = self.value
        if isinstance(value, ListValue):
            return bool(value.items) and isinstance(value.items[0], Block)
        return isinstance(value, Block)

    def __repr__(self) -> str:
        return f"Field({self.name.text!r})"


class Tree:
    """A parsed file: top-level fields, the trivia after them, and the source for locations."""

    __slots__ = ("_line_starts", "end", "fields", "path", "source")

    def __init__(self, fields: list[Field], end: str, source: str, path: str) -> None:
        self.fields = fields
        self.end = end
        self.source = source
        self.path = path
        self._line_starts: list[int] | None = None

    def line_col(self, pos: int) -> tuple[int, int]:
        """1-based line and column of a source offset (0, 0 for nodes made by an edit)."""
        if pos < 0:
            return (0, 0)
        if self._line_starts is None:
            starts = [0]
            find = self.source.find
            i = find("\n")
            while i >= 0:
                starts.append(i + 1)
                i = find("\n", i + 1)
            self._line_starts = starts
        from bisect import bisect_right

        line = bisect_right(self._line_starts, pos)
        return line, pos - self._line_starts[line - 1] + 1


def detect_newline(source: str) -> str:
    """The file's line ending: CRLF when most lines end with it, else LF."""
    crlf = source.count("\r\n")
    return "\r\n" if crlf and crlf * 2 >= source.count("\n") else "\n"
