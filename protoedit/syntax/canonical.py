"""Run-time proof that a formatter result is right, without parsing it again.

``protoedit format`` promises three things about its output (see :func:`problem`): the same
content (field names, values and nesting, up to the layout the formatter normalises), the same
comments in the same order, and that a second pass changes nothing.  Checking them by parsing
the output and formatting it again costs two more passes over a large file; here they take a
walk of the input tree, a scan of the output (in C) and one regular expression:

- content: the output's tokens equal the canonical token sequence of the input tree (names,
  ``:`` before scalars and lists, ``{``/``}`` for every message, list commas; no separators).
  With no comment on either side the output's lines are compared first (:func:`content_lines`:
  fewer, larger strings; equal lines mean equal tokens), the tokens only when they differ;
- comments: the output's comments equal the input's, in order (one pass over each);
- stability: the output is in canonical layout (see :func:`_patterns`), line by line: each
  line one of the formatter's line forms, indented two spaces per open bracket, at most one
  blank line in a row and none after an opening or before a closing line or at either end of
  the file, ``name {}`` for an empty message with no comment, one item per line only in a
  list with a comment in it, comments with no trailing whitespace, the file's line ending
  throughout.  The formatter writes canonical text back unchanged (the tests format every
  output again to show it), so canonical output is stable.
"""

from __future__ import annotations

import re
from functools import lru_cache

from protoedit.syntax.parser import token_patterns
from protoedit.syntax.printer import comment_lines
from protoedit.syntax.tree import Block, Field, Scalar, Tree


def problem(tree: Tree, formatted: str, nl: str) -> str | None:
    """What is wrong with ``formatted`` as the canonical text of ``tree`` (``nl``: the line
    ending it must use), in the words of the format error; ``None`` when nothing is."""
    words, layout = _patterns(nl)
    plain = "#" not in tree.source and "#" not in formatted  # no comment on either side
    lines = [line.lstrip(" ") for line in formatted.split(nl) if line] if plain else None
    if lines is None or lines != content_lines(tree):  # tokens tell content from layout
        found = words.findall(formatted)
        tokens, expected_comments = content(tree, "#" in tree.source)
        out_comments: list[str] = []
        if "#" in formatted:
            out_comments = [word.rstrip() for word in found if word[0] == "#"]
            found = [word for word in found if word[0] != "#"]
        if found != tokens:
            return "would change the content"
        if out_comments != expected_comments:
            return "would lose or reorder comments"
    if layout.fullmatch(formatted) is None:
        return "is not stable (a second pass would change the result)"
    return None


def content(tree: Tree, with_comments: bool = True) -> tuple[list[str], list[str]]:
    """(the canonical tokens of ``tree``, its comments in document order): what any layout of
    it holds.  A list of messages counts as the repeated field written out, ``<>`` as ``{}``.
    ``with_comments=False`` skips collecting comments (for a source with no ``#``)."""
    tokens: list[str] = []
    trivia: list[str] = []
    _walk(tree.fields, tokens, trivia if with_comments else None)
    if with_comments:
        trivia.append(tree.end)
    found: list[str] = []
    for text in trivia:
        if "#" in text:
            found += comment_lines(text)
    return tokens, found


def content_lines(tree: Tree) -> list[str]:
    """The content of a tree with no comments as the lines of its canonical text, without
    indentation or blank lines: ``name: value``, ``name: [a, b]``, ``name {``, ``}`` and
    ``name {}``.  Equal lines mean equal tokens (a line of tokens and single separators
    tokenizes back to them), for far less work than a token list."""
    lines: list[str] = []
    _lines(tree.fields, lines)
    return lines


def _lines(fields: list[Field], lines: list[str]) -> None:
    add = lines.append
    for field in fields:
        value = field.value
        name = field.name.text
        if isinstance(value, Scalar):
            parts = value.parts
            add(f"{name}: {parts[0].text}" if len(parts) == 1 else f"{name}: {value.raw}")
            continue
        blocks = [value] if isinstance(value, Block) else value.items
        if blocks and isinstance(blocks[0], Block):  # a list of messages: the repeated field
            for block in blocks:
                inner = block.fields if isinstance(block, Block) else []
                if inner:
                    add(f"{name} {{")
                    _lines(inner, lines)
                    add("}")
                else:
                    add(f"{name} {{}}")
        else:
            add(f"{name}: [{', '.join(item.raw for item in blocks if isinstance(item, Scalar))}]")


def _walk(fields: list[Field], tokens: list[str], trivia: list[str] | None) -> None:
    """Append the canonical tokens of ``fields`` (and, if asked, every trivia string in order).
    Recursive, one frame per nesting level (bounded by the parser's depth limit)."""
    add = tokens.append
    for field in fields:
        value = field.value
        name = field.name.text
        if trivia is not None:
            trivia += [field.leading, field.name.pre]
            if field.colon is not None:
                trivia.append(field.colon.pre)
        if isinstance(value, Scalar):
            add(name)
            add(":")
            for part in value.parts:
                add(part.text)
                if trivia is not None:
                    trivia.append(part.pre)
        elif isinstance(value, Block):
            add(name)
            add("{")
            if trivia is not None:
                trivia += [value.open.pre, value.open_trailing]
            _walk(value.fields, tokens, trivia)
            add("}")
            if trivia is not None:
                trivia.append(value.close.pre)
        elif value.items and isinstance(value.items[0], Block):  # written out as repeated fields
            if trivia is not None:
                trivia.append(value.open.pre)
            for index, item in enumerate(value.items):
                add(name)
                add("{")
                if isinstance(item, Block):
                    if trivia is not None:
                        trivia += [item.open.pre, item.open_trailing]
                    _walk(item.fields, tokens, trivia)
                    if trivia is not None:
                        trivia.append(item.close.pre)
                add("}")
                if trivia is not None and index < len(value.commas):
                    trivia.append(value.commas[index].pre)
            if trivia is not None:
                trivia.append(value.close.pre)
        else:
            add(name)
            add(":")
            add("[")
            if trivia is not None:
                trivia.append(value.open.pre)
            for index, item in enumerate(value.items):
                if index:
                    add(",")
                    if trivia is not None:
                        trivia.append(value.commas[index - 1].pre)
                if isinstance(item, Scalar):
                    for part in item.parts:
                        add(part.text)
                        if trivia is not None:
                            trivia.append(part.pre)
            add("]")
            if trivia is not None:
                trivia.append(value.close.pre)
        if trivia is not None:
            if field.sep is not None:
                trivia.append(field.sep.pre)
            trivia.append(field.trailing)


@lru_cache(maxsize=2)
def _patterns(nl: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(the scan for tokens and comments, the canonical layout) for line ending ``nl``."""
    terminals = token_patterns()
    name, number, string = terminals["NAME"], terminals["NUMBER"], terminals["STRING"]
    token = "|".join(f"(?:{regexp})" for regexp in terminals.values())
    words = re.compile(f"#[^\n]*|{token}")
    n = re.escape(nl)
    c = r"(?>#(?:[^\n]*\S)?)"  # a comment, without trailing whitespace
    t = f"(?:  {c})?"  # a comment at the end of the line
    # A scalar as written.  Atomic, like every line below: a number can match its digits in
    # several ways, and a failure far down must not retry each combination (exponential).
    sc = f"(?>(?:{number})|(?:{name})|(?:{string})(?: (?:{string}))*)"
    d = "(?P=d)"
    below = f"{d}[A-Za-z_#]"  # a line at the same level that is not a closing line
    after = f"{n}(?:(?={below}|(?P=e)\\}}|\\Z)|{n}(?={below}))"  # one blank line at most
    item = f"(?>{d}  {sc},{t}{n})"
    cline = f"(?>{d}  {c}{n})"
    last = f"(?>{d}  {sc}{t}{n})(?:{cline})*"
    has_comment = f"(?:  #|{n}(?:{d}  {sc},?{n})*{d}  (?:#|{sc},?  #))"
    lines = "|".join(
        [
            f"(?:{name}): {sc}{t}{after}",  # name: value
            f"(?:{name}) \\{{\\}}{t}{after}",  # name {}
            f"(?:{name}): \\[(?:{sc}(?:, {sc})*)?\\]{t}{after}",  # name: [a, b]
            f"(?:{name}) \\{{  {c}{n}(?={d}  [A-Za-z_#]|{d}\\}})",  # name {  # comment
            f"(?:{name}) \\{{{n}(?={d}  [A-Za-z_#])",  # name {
            f"\\}}{t}{after}",  # }
            f"{c}{after}",  # a comment line
            # a list with comments in it: one item per line
            f"(?:{name}): \\[(?={has_comment}){t}{n}"
            f"(?:(?:(?:{cline})*{item})+(?:{cline})*{last}|(?:{cline})*(?:{last})?)"
            f"{d}\\]{t}{after}",
        ]
    )
    indent = "(?P<d>(?:(?P<e> *)  )?)(?! )"  # d: the indentation, e: one level less
    layout = re.compile(f"(?=[A-Za-z_#]|\\Z)(?:{indent}(?:{lines}))*+")
    return words, layout
