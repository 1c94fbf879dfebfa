"""``format_text``: the canonical layout of a text, with the run-time proof that it holds
the same fields and comments and is stable (a failure is a formatter bug, never written)."""

from __future__ import annotations

from protoedit.errors import Location, ProtoeditError
from protoedit.syntax import canonical
from protoedit.syntax.formatter import format_tree
from protoedit.syntax.parser import parse
from protoedit.syntax.tree import detect_newline

_BOM = "\ufeff"


def format_text(text: str, name: str) -> str:
    """Canonical text for ``text``, with run-time safety nets (a failure is a formatter bug,
    reported as an error before anything is written): the result holds the same fields, the
    same comments in the same order, and formatting it again changes nothing.

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
